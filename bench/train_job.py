#!/usr/bin/env python3
"""bench/train_job: what OPENBLAS_CORETYPE is worth to a train job in
dfew-worker (see bench/README.md).

dlib is linked into dfew-worker and loads OpenBLAS when the worker starts,
before any trainer code runs, so only the worker's environment can choose
OpenBLAS's kernels; dfewd sets OPENBLAS_CORETYPE from the CPU's features for
the workers it spawns. This runs the same train job (one fold, one epoch of
3D ResNet-18 at --width, 16 x 112 x 112, batch 4, CPU backend) through a real
dfewd twice per repetition, alternating the order:

  baseline: dfewd started with OPENBLAS_CORETYPE=<what OpenBLAS picks by
            itself on this CPU> (asked from libopenblas without the variable),
            i.e. the worker as it was before dfewd set the variable;
  dfewd:    dfewd started without the variable: it sets it for its workers.

Reports the training throughput (clips/s, from run_folds.clips_per_s), the
kernels the worker ran (run_folds.blas_core), medians over --reps and the
ratio dfewd / baseline.

usage: bench/train_job.py [--build DIR] [--reps N] [--clips N] [--width W]"""
import argparse
import ctypes
import json
import os
import random
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def openblas_own_choice():
    """The kernels libopenblas picks on this CPU without OPENBLAS_CORETYPE."""
    code = ('import ctypes; l = ctypes.CDLL("libopenblas.so.0"); l.openblas_get_corename.restype = ctypes.c_char_p; '
            'print(l.openblas_get_corename().decode())')
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_CORETYPE'}
    return subprocess.run([sys.executable, '-c', code], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_home(build, work, nclips):
    """A home with nclips synthetic 16 x 112 x 112 clip tensors (smooth random
    patterns), 7 labels round robin, split into 2 folds."""
    home = tempfile.mkdtemp(prefix='dfew-bench-train-', dir=work)
    ctl = [os.path.join(build, 'dfewctl'), '--home', home]
    subprocess.run(ctl + ['report'], check=True, capture_output=True)
    rng = random.Random(3)
    con = sqlite3.connect(os.path.join(home, 'dfew.db'))
    with con:
        movie = con.execute("INSERT INTO movies (sha256, source, added_at) VALUES (?, 'synthetic', 0)",
                            (os.urandom(32).hex(),)).lastrowid
        votes = ['clip,happy,sad,neutral,angry,surprise,disgust,fear']
        for i in range(nclips):
            d = os.path.join(home, 'clips', str(i))
            os.makedirs(d)
            base = bytes(rng.randrange(256) for _ in range(112 * 3))
            with open(os.path.join(d, 'clip.u8'), 'wb') as f:
                f.write(b'DFEWCLIP' + struct.pack('<IIIIII', 1, 32, 16, 112, 112, 3))
                for t in range(16):
                    for y in range(112):
                        f.write(base[(y + t) % 112 * 3:] + base[:(y + t) % 112 * 3])
            cid = con.execute("INSERT INTO clips (movie_id, start_s, end_s, state, output_dir, created_at, updated_at) "
                              "VALUES (?, ?, ?, 'usable', ?, 0, 0)", (movie, i, i + 0.5, d)).lastrowid
            counts = [0] * 7
            counts[i % 7] = 10
            votes.append('%d,%s' % (cid, ','.join(map(str, counts))))
    con.close()
    with open(os.path.join(home, 'votes.csv'), 'w') as f:
        f.write('\n'.join(votes) + '\n')
    subprocess.run(ctl + ['labels', 'import', os.path.join(home, 'votes.csv')], check=True, capture_output=True)
    subprocess.run(ctl + ['folds', 'make', '--k', '2', '--name', 'b'], check=True, capture_output=True)
    return home


def one_run(build, home, env_core, width):
    """Starts dfewd (OPENBLAS_CORETYPE=env_core, or unset), trains fold 1 for
    one epoch, returns (clips/s, kernels, train seconds)."""
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_CORETYPE'}
    if env_core:
        env['OPENBLAS_CORETYPE'] = env_core
    ctl = [os.path.join(build, 'dfewctl'), '--home', home]
    log = open(os.path.join(home, 'dfewd.bench.log'), 'ab')
    d = subprocess.Popen([os.path.join(build, 'dfewd'), '--foreground', '--home', home, '--workers', '1'], env=env,
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        out = subprocess.run(ctl + ['--json', 'train', '--split', 'b', '--folds', '1', '--epochs', '1', '--batch', '4',
                                    '--width', str(width), '--backend', 'cpu', '--loss', 'ce'],
                             check=True, capture_output=True, text=True).stdout
        run = json.loads(out)['run_id']
        subprocess.run(ctl + ['wait', '--timeout', '3600'], check=True, capture_output=True)
        con = sqlite3.connect(os.path.join(home, 'dfew.db'))
        row = con.execute('SELECT clips_per_s, blas_core, train_s FROM run_folds WHERE run_id = ?', (run,)).fetchone()
        con.close()
        return row
    finally:
        d.terminate()
        d.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default=os.path.join(SRC, 'build'))
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--clips', type=int, default=24)
    ap.add_argument('--width', type=float, default=0.5)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    own = openblas_own_choice()
    work = tempfile.mkdtemp(prefix='dfew-bench-')
    try:
        home = make_home(build, work, a.clips)
        res = {'baseline': [], 'dfewd': []}
        for rep in range(a.reps):
            order = ['baseline', 'dfewd'] if rep % 2 == 0 else ['dfewd', 'baseline']
            for mode in order:
                cps, core, secs = one_run(build, home, own if mode == 'baseline' else None, a.width)
                res[mode].append((cps, core, secs))
                print('rep %d %-8s %6.3f clips/s  %-9s %.1f s  (load %.2f)' % (rep + 1, mode, cps, core, secs,
                                                                                os.getloadavg()[0]), flush=True)
        med = {m: statistics.median(r[0] for r in v) for m, v in res.items()}
        print('\nOpenBLAS by itself on this CPU: %s; dfewd gives the workers: %s' % (own, res['dfewd'][0][1]))
        print('train job, r3d18 width %g, 16x112x112, batch 4, %d training clips, CPU backend:' % (a.width,
                                                                                                    a.clips // 2))
        print('  baseline (%s): %.3f clips/s (median of %d)' % (own, med['baseline'], a.reps))
        print('  dfewd    (%s): %.3f clips/s' % (res['dfewd'][0][1], med['dfewd']))
        print('  ratio dfewd / baseline: %.2f (medians); per repetition: %s' % (
            med['dfewd'] / med['baseline'],
            ', '.join('%.2f' % (d[0] / b[0]) for d, b in zip(res['dfewd'], res['baseline']))))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
