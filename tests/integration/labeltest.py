"""Helpers for the labels, folds, export and import tests: clip rows put into
a real dfew database (the preprocessing stage is not needed to test labels),
real frame images made with the ffmpeg CLI from a real test video, vote files,
database dumps to prove that a rejected command changed nothing,
statsmodels' Fleiss' kappa as a second implementation, and a list reader
that behaves like the dataset code of public DFER training code."""
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from dfewtest import video

EMOTIONS = ['happy', 'sad', 'neutral', 'angry', 'surprise', 'disgust', 'fear']


def init_db(home):
    """Creates and migrates the home's database through dfewctl itself."""
    home.ctl('report')


def add_movies(home, n):
    con = home.db()
    with con:
        ids = []
        for i in range(n):
            cur = con.execute("INSERT INTO movies (sha256, source, added_at) VALUES (?, ?, 0)",
                              (os.urandom(32).hex(), 'movie%d.mkv' % i))
            ids.append(cur.lastrowid)
    con.close()
    return ids


def add_clips(home, specs):
    """specs: list of dicts with movie, duration, state (default usable),
    output_dir, name. Returns the clip ids in order."""
    con = home.db()
    ids = []
    with con:
        start = {}
        for s in specs:
            if s['movie'] not in start:
                start[s['movie']] = con.execute('SELECT coalesce(max(end_s) + 1, 0) FROM clips WHERE movie_id = ?',
                                                (s['movie'],)).fetchone()[0]
            t0 = start[s['movie']]
            start[s['movie']] = t0 + s.get('duration', 3.0) + 1
            cur = con.execute(
                "INSERT INTO clips (movie_id, start_s, end_s, state, output_dir, name, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
                (s['movie'], t0, t0 + s.get('duration', 3.0), s.get('state', 'usable'), s.get('output_dir'),
                 s.get('name')))
            ids.append(cur.lastrowid)
    con.close()
    return ids


def dump(home):
    """Every row of the main database, as SQL text."""
    con = sqlite3.connect(home.db_path)
    try:
        return '\n'.join(con.iterdump())
    finally:
        con.close()


def random_counts(rng, raters=10, p_agree=0.75):
    """A 7-vote distribution with a dominant emotion: often single-labelled."""
    dom = rng.randrange(7)
    c = [0] * 7
    for _ in range(raters):
        c[dom if rng.random() < p_agree else rng.randrange(7)] += 1
    return c


def write_wide(path, rows):
    """rows: (clip, counts[7])"""
    with open(path, 'w') as f:
        f.write('clip,' + ','.join(EMOTIONS) + '\n')
        for clip, counts in rows:
            f.write('%s,%s\n' % (clip, ','.join(map(str, counts))))


def write_text(path, text):
    with open(path, 'w') as f:
        f.write(text)


_frames = {}


def frames_of(name, size=112, n=16):
    """A folder of n real PNG frames (size x size) from a test video, made
    once per run with the ffmpeg CLI."""
    key = (name, size, n)
    if key not in _frames:
        src = video(name)
        d = tempfile.mkdtemp(prefix='dfew-frames-')
        subprocess.run(['ffmpeg', '-loglevel', 'error', '-i', src, '-vf', 'scale=%d:%d' % (size, size),
                        '-frames:v', str(n), os.path.join(d, '%02d.png')], check=True)
        _frames[key] = d
    return _frames[key]


def copy_frames(src, dst):
    os.makedirs(dst, exist_ok=True)
    for f in sorted(os.listdir(src)):
        if os.path.isfile(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))


def cleanup_frames():
    for d in _frames.values():
        shutil.rmtree(d, ignore_errors=True)
    _frames.clear()


def rgb(path):
    """Decoded pixels of an image (ffmpeg CLI), as bytes of RGB24."""
    r = subprocess.run(['ffmpeg', '-loglevel', 'error', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
                       capture_output=True, check=True)
    return r.stdout


def statsmodels_kappa(tables):
    """statsmodels' fleiss_kappa of each table (a list of rows of counts).
    Uses Debian's python3-statsmodels; when this interpreter cannot import it
    (a virtualenv), asks /usr/bin/python3. Skips the test when neither can."""
    try:
        import numpy
        from statsmodels.stats.inter_rater import fleiss_kappa
        return [float(fleiss_kappa(numpy.array(t))) for t in tables]
    except ImportError:
        pass
    code = ('import json, sys, numpy\nfrom statsmodels.stats.inter_rater import fleiss_kappa\n'
            'print(json.dumps([float(fleiss_kappa(numpy.array(t))) for t in json.load(sys.stdin)]))')
    if os.path.exists('/usr/bin/python3'):
        r = subprocess.run(['/usr/bin/python3', '-c', code], input=json.dumps(tables), capture_output=True,
                           text=True)
        if r.returncode == 0:
            return json.loads(r.stdout)
    raise unittest.SkipTest('statsmodels is not installed (apt-get install python3-statsmodels; '
                            'scripts/setup-deps.sh does it)')


def read_dfer_list(root, list_file):
    """Reads a train/test list the way the video datasets of Former-DFER and
    DFER-CLIP do, from root as the working directory (the lists' paths are
    relative to the export): lines split on ' ' into [path, num_frames,
    label]; the frames are glob('*.jpg') (Former-DFER; DFER-CLIP globs '*')
    of the path, sorted, and their test-time indices (8 segments of 2 frames)
    must lie inside num_frames. Returns [(frame paths, num_frames, label)]
    and raises AssertionError where those loaders would fail or read the
    wrong files."""
    here = os.getcwd()
    os.chdir(root)
    try:
        out = []
        with open(list_file) as f:
            rows = [x.strip().split(' ') for x in f]
        for row in rows:
            path, n, label = row[0], int(row[1]), int(row[2])
            jpgs = sorted(glob.glob(os.path.join(path, '*.jpg')))
            everything = sorted(glob.glob(os.path.join(path, '*')))
            assert jpgs == everything, '%s holds files that are not frames: %s' % (path, set(everything) - set(jpgs))
            assert len(jpgs) == n, '%s: %d frames on disk, %d in the list' % (path, len(jpgs), n)
            segments, duration = 8, 2
            if n > segments + duration - 1:
                tick = (n - duration + 1) / float(segments)
                offsets = [int(tick / 2.0 + tick * x) for x in range(segments)]
            else:
                offsets = [0] * segments
            for p in offsets:
                for _ in range(duration):
                    jpgs[p]  # IndexError where the loader would raise it
                    if p < n - 1:
                        p += 1
            assert 0 <= label <= 6, label
            out.append(([os.path.abspath(j) for j in jpgs], n, label))
        return out
    finally:
        os.chdir(here)
