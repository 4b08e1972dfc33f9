#!/usr/bin/env python3
"""Benchmark: the dataset commands at DFEW's size (16,372 clips, 10 votes each,
1,500 movies), in a temporary home, with real dfewctl processes.

Baselines run in the same run: a plain bulk load of the same vote rows with
Python's csv + sqlite3 (no validation, one executemany), and the same kappa
work done in Python (read clip_labels, statsmodels' fleiss_kappa on all clips
and on the single-labelled). Each timing is the
median of --repeat runs; the ratios are ours / baseline.

  python3 bench/dataset_scale.py [--build build] [--clips 16372] [--repeat 3]
"""
import argparse
import csv
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time


def run(ctl, home, *args):
    t0 = time.perf_counter()
    r = subprocess.run([ctl, '--home', home] + list(args), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit('dfewctl %s failed: %s' % (' '.join(args), r.stderr))
    return dt


def median_of(n, fn):
    return statistics.median(fn() for _ in range(n))


def write_votes(path, clips, seed=1):
    """DFEW-sized synthetic data: a long-format vote CSV at path (10 annotators
    a0..a9 per clip, 80 % of them agreeing on a dominant emotion), and the
    rows for 1,500 movies and the clips (97 % usable). Returns (per-clip vote
    counts, movie hashes, clip rows)."""
    rng = random.Random(seed)
    table = []
    with open(path, 'w') as f:
        f.write('clip,annotator,emotion\n')
        for c in range(1, clips + 1):
            dom, row = rng.randrange(7), [0] * 7
            for k in range(10):
                e = dom if rng.random() < 0.8 else rng.randrange(7)
                row[e] += 1
                f.write('%d,a%d,%d\n' % (c, k, e + 1))
            table.append(row)
    movies = [os.urandom(32).hex() for _ in range(1500)]
    clip_rows = [(1 + rng.randrange(1500), i * 10.0, i * 10.0 + 0.5 + rng.random() * 8,
                  'usable' if rng.random() > 0.03 else 'unusable') for i in range(clips)]
    return table, movies, clip_rows


def fill_home(home, movies, clip_rows):
    """Adds the movies and clips of write_votes to the database of an existing home."""
    con = sqlite3.connect(os.path.join(home, 'dfew.db'))
    with con:
        con.executemany("INSERT INTO movies (sha256, source, added_at) VALUES (?, 'm', 0)", [(m,) for m in movies])
        con.executemany("INSERT INTO clips (movie_id, start_s, end_s, state, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, 0, 0)", clip_rows)
    con.close()


def make_home(ctl, home, clips=16372):
    """A dfew home at DFEW's size (clips, 10 votes each through dfewctl labels
    import, 1,500 movies); for other benchmarks (bench/web_load.py)."""
    run(ctl, home, 'report')
    votes = os.path.join(home, 'votes.csv')
    _, movies, clip_rows = write_votes(votes, clips)
    fill_home(home, movies, clip_rows)
    run(ctl, home, 'labels', 'import', votes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default=os.path.join(os.path.dirname(__file__), '..', 'build'))
    ap.add_argument('--clips', type=int, default=16372)
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    ctl = os.path.abspath(os.path.join(a.build, 'dfewctl'))
    tmp = tempfile.mkdtemp(prefix='dfew-bench-')
    try:
        votes = os.path.join(tmp, 'votes.csv')
        table, movies, clip_rows = write_votes(votes, a.clips)

        def fresh_home():
            home = tempfile.mkdtemp(dir=tmp)
            run(ctl, home, 'report')
            fill_home(home, movies, clip_rows)
            return home

        times = {}
        homes = [fresh_home() for _ in range(a.repeat)]
        times['labels import (long, %d rows)' % (10 * a.clips)] = statistics.median(
            run(ctl, h, 'labels', 'import', votes) for h in homes)
        home = homes[0]
        times['labels import again (no change)'] = median_of(a.repeat, lambda: run(ctl, home, 'labels', 'import',
                                                                                    votes))
        times['labels kappa'] = median_of(a.repeat, lambda: run(ctl, home, 'labels', 'kappa'))
        times['report'] = median_of(a.repeat, lambda: run(ctl, home, 'report'))
        times['report table2'] = median_of(a.repeat, lambda: run(ctl, home, 'report', 'table2'))
        times['folds make --k 5'] = median_of(a.repeat, lambda: run(ctl, home, 'folds', 'make', '--replace'))
        times['folds make --k 5 --by-movie'] = median_of(
            a.repeat, lambda: run(ctl, home, 'folds', 'make', '--by-movie', '--replace'))
        rel = os.path.join(tmp, 'rel')
        times['export --format dfew --no-frames'] = median_of(
            a.repeat, lambda: run(ctl, home, 'export', '--format', 'dfew', '--no-frames', '--force', rel))
        imp = [tempfile.mkdtemp(dir=tmp) for _ in range(a.repeat)]
        times['import dfew (labels, votes, folds)'] = statistics.median(run(ctl, h, 'import', 'dfew', rel)
                                                                        for h in imp)
        times['import dfew again (no change)'] = median_of(a.repeat, lambda: run(ctl, imp[0], 'import', 'dfew', rel))

        def bulk_load():
            db = os.path.join(tmp, 'plain.db')
            if os.path.exists(db):
                os.unlink(db)
            t0 = time.perf_counter()
            con = sqlite3.connect(db)
            con.execute('CREATE TABLE votes (clip_id INTEGER, annotator TEXT, emotion INTEGER, '
                        'PRIMARY KEY (clip_id, annotator)) WITHOUT ROWID')
            with open(votes, newline='') as f, con:
                rd = csv.reader(f)
                next(rd)
                con.executemany('INSERT INTO votes VALUES (?, ?, ?)', ((int(c), w, int(e)) for c, w, e in rd))
            con.close()
            return time.perf_counter() - t0
        base_load = median_of(a.repeat, bulk_load)
        base_kappa = None
        try:
            import numpy
            from statsmodels.stats.inter_rater import fleiss_kappa

            def sm():
                # the same work as dfewctl labels kappa: read the distributions
                # from clip_labels, then kappa over all and the single-labelled
                t0 = time.perf_counter()
                con = sqlite3.connect(os.path.join(home, 'dfew.db'))
                rows = con.execute('SELECT happy, sad, neutral, angry, surprise, disgust, fear, label IS NOT NULL '
                                   'FROM clip_labels ORDER BY clip_id').fetchall()
                con.close()
                fleiss_kappa(numpy.array([r[:7] for r in rows]))
                fleiss_kappa(numpy.array([r[:7] for r in rows if r[7]]))
                return time.perf_counter() - t0
            base_kappa = median_of(a.repeat, sm)
        except ImportError:
            pass
        print('dfewctl at DFEW size: %d clips, %d votes, 1500 movies; median of %d runs' % (a.clips, 10 * a.clips,
                                                                                             a.repeat))
        for k, v in times.items():
            print('  %-42s %7.3f s' % (k, v))
        key = 'labels import (long, %d rows)' % (10 * a.clips)
        print('baseline: plain csv + sqlite3 bulk load of the same votes %.3f s; ratio %.2f' % (
            base_load, times[key] / base_load))
        if base_kappa is not None:
            print('baseline: Python reads clip_labels + statsmodels fleiss_kappa on both subsets %.3f s; '
                  'ratio %.2f (dfewctl includes starting the process)' % (
                      base_kappa, times['labels kappa'] / base_kappa))
        else:
            print('baseline: statsmodels not importable here; kappa baseline skipped')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
