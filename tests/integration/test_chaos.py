"""Chaos: a real batch of clips prepared while worker processes and dfewd
itself are killed at random moments, then the invariants that must hold
whatever happened; and a batch whose outputs fill their disk midway.

Not a benchmark and not a test of any one fault (test_faults.py has those):
this one throws many faults, in an order no one chose, at the whole path from
`dfewctl submit` to the files on disk.

The batch: copies of the shared MEAD videos, remuxed with a distinct tag so
that each is a movie of its own (dfew deduplicates by content), each with a
clip list of short clips (two copies of a video get the same list, so their
clips must come out byte-identical), a copy of no_face.mp4 (unusable clips)
and a copy without a list (a segment job). Half is submitted before dfewd
starts, the rest one movie after each kill, also while dfewd is down.

The kills, from a seeded RNG (the seed is printed, and named by any failure):
SIGKILL of a worker (a busy one when there is one), SIGKILL of dfewd (its
workers die with it) and a restart, SIGKILL of dfewd while it starts up, and
SIGTERM (a drain) and a restart. A seed replays the schedule (which kill,
after what pause, which worker); where in a job each kill lands depends on
the machine's load. Every planned kill must land on work (a busy worker, a
dfewd with jobs to do): the last movies are held back until the last kills,
a kill that hit nothing is drawn again, a batch that ran dry before
its kills landed (a fast machine) gets a spare copy of a MEAD video, and
the test fails when fewer landed. [queue] max_attempts is above the number of kills, so
kills alone never make a job dead.

The invariants, checked once everything is done and dfewd has drained:
- every job done (a dead one is reported with its reason: kills alone must
  not make a job dead); none leased, queued or waiting;
  no lease left on a row; a job's last event is its state; attempts within
  max_attempts;
- no job with two `done` events; one prep job per clip; every listed clip
  recorded, and recorded as its job's result says;
- usable clips' outputs complete (docs/formats.md: 01..16.png, clip.u8,
  faces.bin version 2 with the size its header gives, aligned.u8), unusable
  clips none; nothing else under outputs/clips; the clips of two copies of a
  video identical byte for byte;
- no temporary files anywhere in the home (outputs/clips/.tmp-*, *.tmp-*,
  downloads/.partial-*);
- `PRAGMA integrity_check` ok, no foreign key violation;
- dfewd back after every kill, its drain at the end clean (exit 0, no
  sanitizer report), and no worker of any of its lives left running.

The disk-full cases (root only: a tmpfs; skipped with the reason otherwise):
- DiskFullTest: HOME/outputs is a small tmpfs, mostly taken by a filler
  file, so the batch fills it midway. The jobs that cannot write fail with
  "the disk is full", are retried after their backoff, and die after
  max_attempts; meanwhile every outputs/clips/<id> is complete or absent, no
  temporary directory is left, the database is intact and dfewd serves on.
  Then the filler goes, `dfewctl retry` brings the dead jobs back, and every
  clip is prepared.
- FullHomeDiskTest: the whole home (the database and its WAL too) on the
  tmpfs, filled to the last byte mid-batch: dfewd cannot lease, renew or
  record, says why ("database or disk is full"), keeps running, and
  finishes the batch once there is room; a running job keeps its lease
  through renewals that failed (it is not handed to a second worker).
- LeftoverTest: what a killed worker was writing under temporary names
  (what the chaos test found: the landmark cache's copy; a job's files) is
  removed by dfewd.

Usage (meson runs the CI version; python3 from the source tree works too):
  python3 tests/integration/test_chaos.py                # CI: 10 movies, 35 clips, 8 kills
  python3 tests/integration/test_chaos.py --long         # by hand: 34 movies, ~200 clips, 60 kills
  python3 tests/integration/test_chaos.py --seed 1234    # replay a run's schedule
  python3 tests/integration/test_chaos.py --kills 20     # more or fewer kills (with --long too)
  python3 tests/integration/test_chaos.py ChaosTest      # one class (meson: chaos = ChaosTest
                                                         # LeftoverTest, disk_full = the other two)
Environment: DFEW_CHAOS_SEED (as --seed), DFEW_BUILD_DIR (default: build/
beside tests/), DFEW_TESTDATA (default: ../shared/testdata)."""
import argparse
import errno
import hashlib
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

from dfewtest import SLOW, Home, main, video

MEAD = ['mead_eamm/happy.mp4', 'mead_eamm/fear.mp4', 'mead_eamm/disgusted.mp4', 'mead_eamm/surprised.mp4']
PNG_START, PNG_END = b'\x89PNG\r\n\x1a\n', b'IEND\xaeB`\x82'
OPTS = argparse.Namespace(long=False, seed=None, kills=None)
TERMINATED = []  # the signal that ended the run (meson's timeout sends SIGTERM)


def on_terminate(signum, _frame):
    """SIGTERM: the test in progress ends with an error and its tearDown runs
    (dfewd killed, the tmpfs unmounted); the tests after it do not start."""
    TERMINATED.append(signum)
    raise SystemExit(128 + signum)


def check_not_terminated():
    if TERMINATED:
        raise unittest.SkipTest('the run was stopped by signal %d' % TERMINATED[0])


def parse_options():
    """Takes this file's options out of sys.argv (the rest is unittest's)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument('--long', action='store_true')
    p.add_argument('--seed', type=int)
    p.add_argument('--kills', type=int)
    opts, rest = p.parse_known_args()
    sys.argv[1:] = rest
    if opts.seed is None and os.environ.get('DFEW_CHAOS_SEED'):
        opts.seed = int(os.environ['DFEW_CHAOS_SEED'])
    return opts


def pid_alive(pid):
    """Running, and not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (FileNotFoundError, ProcessLookupError):
        return False


def children(pid):
    """Pids of the processes whose parent is pid."""
    out = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open('/proc/%s/stat' % name) as f:
                    if int(f.read().rsplit(')', 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    return out


def make_movie(src, dest, tag):
    """A copy of src that differs in content only by a metadata tag: the same
    frames, another movie to dfew."""
    subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-y', '-i', src, '-map', '0', '-c', 'copy',
                    '-metadata', 'comment=dfew chaos copy %s' % tag, dest], check=True, timeout=60)
    return dest


def clip_list(rng, duration, n):
    """n clips of 0.5-1.4 s, at random places in their n equal parts of [0, duration - 0.1)."""
    part = (duration - 0.1) / n
    rows = []
    for k in range(n):
        length = round(rng.uniform(0.5, min(1.4, part)), 2)
        start = round(k * part + rng.uniform(0, part - length), 2)
        rows.append((start, round(start + length, 2)))
    return rows


def file_sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


# --- invariants: each returns a list of problems (empty: holds) ---

def tensor_problems(path, frames, size):
    """A clip.u8-format tensor (docs/formats.md) of frames x size x size x 3
    (frames None: not known yet, any count)."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 32 or data[:8] != b'DFEWCLIP':
        return ['%s: no clip.u8 header (%d bytes)' % (path, len(data))]
    version, hsize, t, h, w, c = struct.unpack_from('<6I', data, 8)
    out = []
    if frames is None:
        frames = t
    if (version, hsize, t, h, w, c) != (1, 32, frames, size, size, 3):
        out.append('%s: header %s, expected (1, 32, %d, %d, %d, 3)' % (path, (version, hsize, t, h, w, c), frames,
                                                                        size, size))
    if len(data) != hsize + t * h * w * c:
        out.append('%s: %d bytes, its header says %d' % (path, len(data), hsize + t * h * w * c))
    return out


def found_records(data, hsize, rsize, n):
    """Of a faces.bin's n records, those with the face found (flag bit 0)."""
    return sum(struct.unpack_from('<I', data, hsize + i * rsize + 4)[0] & 1 for i in range(n))


def faces_problems(path, frames_total, frames_face):
    """faces.bin version 2 (docs/formats.md): header, size, found flags
    (against the clip row's counts; None: not recorded yet, not compared)."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 64 or data[:8] != b'DFEWFACE':
        return ['%s: no faces.bin header (%d bytes)' % (path, len(data))]
    version, hsize, rsize, nland, _w, _h, n = struct.unpack_from('<6IQ', data, 8)
    nothers = struct.unpack_from('<I', data, 60)[0]
    out = []
    if (version, hsize, rsize, nland) != (2, 64, 584, 68):
        return ['%s: header %s, expected (2, 64, 584, 68)' % (path, (version, hsize, rsize, nland))]
    if len(data) != hsize + n * rsize + 32 * nothers:
        return ['%s: %d bytes, its header says %d' % (path, len(data), hsize + n * rsize + 32 * nothers)]
    if frames_total is not None and n != frames_total:
        out.append('%s: %d records, the clip has %d frames' % (path, n, frames_total))
    found = found_records(data, hsize, rsize, n)
    if frames_face is not None and found != frames_face:
        out.append('%s: %d frames with the face, the clip row says %d' % (path, found, frames_face))
    return out


def faces_found(path):
    """The frames a faces.bin marks as found, or None when it is not whole."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 64 or data[:8] != b'DFEWFACE':
        return None
    _version, hsize, rsize, _nland, _w, _h, n = struct.unpack_from('<6IQ', data, 8)
    if len(data) < hsize + n * rsize:
        return None
    return found_records(data, hsize, rsize, n)


def clip_dir_problems(d, clip):
    """The files of a usable clip's output directory, complete."""
    if not os.path.isdir(d):
        return ['clip %d is usable but %s is missing' % (clip['id'], d)]
    frames, size = clip['out_frames'], clip['out_size']
    digits = 2 if frames < 100 else 3 if frames < 1000 else 4
    want = {'%0*d.png' % (digits, k) for k in range(1, frames + 1)} | {'clip.u8', 'faces.bin', 'aligned.u8'}
    have = set(os.listdir(d))
    out = []
    if have != want:
        out.append('%s: missing %s, unexpected %s' % (d, sorted(want - have), sorted(have - want)))
    for name in sorted(have & want):
        p = os.path.join(d, name)
        if name.endswith('.png'):
            with open(p, 'rb') as f:
                data = f.read()
            if not (data.startswith(PNG_START) and data.endswith(PNG_END)):
                out.append('%s: not a complete PNG (%d bytes)' % (p, len(data)))
        elif name == 'clip.u8':
            out += tensor_problems(p, frames, size)
        elif name == 'aligned.u8':
            # one aligned face per face frame: the row's count, or (not
            # recorded yet) the faces.bin beside it
            face = clip['frames_face']
            if face is None and 'faces.bin' in have:
                face = faces_found(os.path.join(d, 'faces.bin'))
            out += tensor_problems(p, face, size)
        elif name == 'faces.bin':
            out += faces_problems(p, clip['frames_total'], clip['frames_face'])
    return out


def outputs_problems(home, final=True):
    """Usable clips complete, the others without a directory, nothing else
    under outputs/clips. final=False (while jobs may run): a .tmp-* directory
    of a running attempt is allowed."""
    root = os.path.join(home.dir, 'outputs', 'clips')
    left = set(os.listdir(root)) if os.path.isdir(root) else set()
    out = []
    for c in home.query('SELECT id, state, output_dir, frames_total, frames_face, out_frames, out_size FROM clips'):
        d = os.path.join(root, str(c['id']))
        left.discard(str(c['id']))
        if c['state'] == 'usable':
            if c['output_dir'] != d:
                out.append('clip %d: output_dir %r, expected %r' % (c['id'], c['output_dir'], d))
            out += clip_dir_problems(d, c)
        else:
            if c['output_dir'] is not None:
                out.append('clip %d is %s with an output_dir' % (c['id'], c['state']))
            if os.path.exists(d):
                if final or c['state'] != 'pending':
                    out.append('clip %d is %s but %s exists' % (c['id'], c['state'], d))
                else:
                    # a pending clip's directory: from an earlier run (none
                    # here), or published just now by a job whose result is
                    # on its way (or cannot be recorded: the database's disk
                    # is full); whole either way. Its row has no counts yet
                    # (frames_total, frames_face None: not compared)
                    out += clip_dir_problems(d, dict(c, out_frames=16, out_size=112))
    for name in sorted(left):
        if final or not name.startswith('.tmp-'):
            out.append('%s: no usable clip owns it' % os.path.join(root, name))
    return out


def temp_file_problems(home):
    """Temporary files anywhere in the home: a writer that died left them."""
    out = []
    for dirpath, dirnames, filenames in os.walk(home.dir):
        for name in dirnames + filenames:
            if '.tmp-' in name or name.startswith('.partial-'):
                out.append('left behind: %s' % os.path.join(dirpath, name))
    return out


def database_problems(home):
    out = []
    con = home.db()
    try:
        rows = [r[0] for r in con.execute('PRAGMA integrity_check')]
        if rows != ['ok']:
            out.append('PRAGMA integrity_check: %s' % '; '.join(map(str, rows[:10])))
        fk = con.execute('PRAGMA foreign_key_check').fetchall()
        if fk:
            out.append('PRAGMA foreign_key_check: %d violations, e.g. %s' % (len(fk), tuple(fk[0])))
    finally:
        con.close()
    return out


def job_problems(home, allow_dead=False):
    """The queue at rest: every job done (or dead with a reason), its
    events consistent with its row."""
    out = []
    for j in home.query('SELECT id, kind, state, error, attempts, max_attempts, lease_token, lease_owner, '
                        'lease_expires, finished_at FROM jobs ORDER BY id'):
        what = 'job %d (%s)' % (j['id'], j['kind'])
        if j['state'] == 'dead':
            if not allow_dead:
                out.append('%s is dead: %s' % (what, j['error']))
            if not (j['error'] or '').strip():
                out.append('%s is dead without a reason' % what)
        elif j['state'] != 'done':
            out.append('%s is %s at the end' % (what, j['state']))
        if j['lease_token'] is not None or j['lease_owner'] is not None or j['lease_expires'] is not None:
            out.append('%s still holds a lease (%s, %s)' % (what, j['lease_owner'], j['lease_expires']))
        if j['state'] in ('done', 'dead') and j['finished_at'] is None:
            out.append('%s is %s without finished_at' % (what, j['state']))
        if j['attempts'] > j['max_attempts']:
            out.append('%s: %d attempts of %d' % (what, j['attempts'], j['max_attempts']))
        trail = home.trail(j['id'])
        if not trail or trail[-1] != j['state']:
            out.append('%s is %s, its last event says %s' % (what, j['state'], trail[-1:] or 'nothing'))
        if trail.count('done') != (j['state'] == 'done'):
            out.append('%s has %d done events: %s' % (what, trail.count('done'), trail))
    for r in home.query("SELECT clip_id, count(*) AS n FROM jobs WHERE kind = 'prep' GROUP BY clip_id HAVING n > 1"):
        out.append('clip %s has %d prep jobs' % (r['clip_id'], r['n']))
    # each clip as its (done) prep job's result says, recorded once
    for r in home.query("SELECT c.id, c.state, c.frames_total, c.frames_face, j.result, j.state AS job_state, j.id AS job "
                        "FROM clips c LEFT JOIN jobs j ON j.kind = 'prep' AND j.clip_id = c.id"):
        if r['job'] is None:
            out.append('clip %d (%s) has no prep job' % (r['id'], r['state']))
        elif r['job_state'] == 'done':
            res = home.query("SELECT json_extract(?1, '$.state') AS state, json_extract(?1, '$.frames_total') AS ft, "
                             "json_extract(?1, '$.frames_face') AS ff", r['result'])[0]
            if (res['state'], res['ft'], res['ff']) != (r['state'], r['frames_total'], r['frames_face']):
                out.append('clip %d is %s %s/%s, its job %d says %s %s/%s' % (
                    r['id'], r['state'], r['frames_face'], r['frames_total'], r['job'], res['state'], res['ff'],
                    res['ft']))
        elif r['state'] != 'pending':
            out.append('clip %d is %s, its job %d %s' % (r['id'], r['state'], r['job'], r['job_state']))
    return out


def same_bytes_problems(home, copies):
    """Clips of the same range in copies of one video: the same files, byte
    for byte (a job gives the same bytes however often it was interrupted).
    copies: movie id -> the source video's name."""
    groups = {}
    for c in home.query("SELECT id, movie_id, start_s, end_s, output_dir FROM clips WHERE state = 'usable' AND "
                        "origin = 'list'"):
        if c['movie_id'] in copies:
            groups.setdefault((copies[c['movie_id']], c['start_s'], c['end_s']), []).append(c)
    out = []
    compared = 0
    for key, clips in sorted(groups.items()):
        if len(clips) < 2:
            continue
        ref = clips[0]
        names = sorted(os.listdir(ref['output_dir']))
        for other in clips[1:]:
            compared += 1
            for name in names:
                a, b = os.path.join(ref['output_dir'], name), os.path.join(other['output_dir'], name)
                if not os.path.exists(b) or file_sha(a) != file_sha(b):
                    out.append('clips %d and %d (%s %.2f-%.2f s): %s differs' % (ref['id'], other['id'], key[0],
                                                                                key[1], key[2], name))
    return out, compared


def mount_tmpfs(test, path, options):
    """Mounts a tmpfs on path for test (test.mounted = True), or cleans up
    test.home and skips the test with the reason."""
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', path], capture_output=True, text=True)
    if r.returncode != 0:
        test.home.cleanup()
        test.skipTest('cannot mount a tmpfs (no CAP_SYS_ADMIN in this container?): %s' % r.stderr.strip())
    test.mounted = True


class Batch:
    """The movies of a run: distinct copies of the test videos with their
    clip lists, made in a temporary folder outside the home."""

    def __init__(self, rng, copies, clips_per_movie):
        self.dir = tempfile.mkdtemp(prefix='dfew-chaos-movies-')
        self.movies = []  # (path, clip list path or None, source name, clip rows)
        self.srcs = [video(n) for n in MEAD]
        self.per_movie = clips_per_movie
        self.n = 0
        for c in range(copies):
            for k in range(len(MEAD)):
                self.add_copy(rng, k)
        no_face = video('no_face.mp4')
        self.add(rng, make_movie(no_face, self.next_path(), self.n), 'no_face.mp4', clip_list(rng, 3.9, 2))
        self.add(rng, make_movie(self.srcs[0], self.next_path(), self.n), MEAD[0], None)
        rng.shuffle(self.movies)

    def next_path(self):
        self.n += 1
        return os.path.join(self.dir, 'm%02d.mp4' % (self.n - 1))

    def add_copy(self, rng, k):
        """Another copy of MEAD video k, with that video's clip list (the
        same for every copy, so that their clips can be compared)."""
        durations = [5.64, 8.72, 8.15, 12.44]  # SOURCES.md
        self.add(rng, make_movie(self.srcs[k], self.next_path(), self.n), MEAD[k],
                 clip_list(random.Random(MEAD[k]), durations[k], self.per_movie))
        return self.movies[-1]

    def spare(self, rng):
        """One more movie for a batch that ran dry before its kills landed
        (a fast machine finishes the planned movies between kills)."""
        return self.add_copy(rng, rng.randrange(len(MEAD)))

    def copy_comparisons(self):
        """How many clips same_bytes_problems compares: every listed clip of
        every copy of a MEAD video after its first."""
        count = {}
        for m in self.movies:
            if m[2] in MEAD and m[3]:
                count[m[2]] = count.get(m[2], 0) + 1
        return sum(self.per_movie * (c - 1) for c in count.values())

    def add(self, rng, path, name, rows):
        lst = None
        if rows is not None:
            lst = path[:-4] + '.csv'
            with open(lst, 'w') as f:
                f.writelines('%.2f,%.2f\n' % r for r in rows)
        self.movies.append((path, lst, name, rows))

    def listed_clips(self):
        return sum(len(m[3]) for m in self.movies if m[3])

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def chaos_config(max_attempts):
    return ('[daemon]\nrespawn_min_seconds = 0.05\nrespawn_max_seconds = 1\ndrain_seconds = 1\n'
            '[queue]\nmax_attempts = %d\nretry_base_seconds = 0.2\nretry_max_seconds = 1\n'
            '[segment]\nmax_clips = 2\n' % max_attempts)


class ChaosTest(unittest.TestCase):
    def setUp(self):
        check_not_terminated()
        self.seed = OPTS.seed if OPTS.seed is not None else random.SystemRandom().randrange(1, 2 ** 31)
        self.kills = OPTS.kills if OPTS.kills is not None else (60 if OPTS.long else 8)
        print('\nchaos: seed %d, %d kills%s (replay: test_chaos.py --seed %d --kills %d%s)' % (
            self.seed, self.kills, ', long' if OPTS.long else '', self.seed, self.kills,
            ' --long' if OPTS.long else ''), flush=True)
        self.rng = random.Random(self.seed)
        self.batch = None
        self.home = Home(chaos_config(self.kills + 3), workers=2, prep=True)
        self.actions = []
        self.daemon_pids = []

    def tearDown(self):
        if self.home.proc is not None and self.home.proc.poll() is None:
            self.home.proc.kill()
            self.home.proc.wait()
            self.home.proc = None
        self.home.cleanup()
        if self.batch:
            self.batch.cleanup()

    def fail_with(self, problems, what):
        if problems:
            self.fail('%s (seed %d, replay with --seed %d --kills %d%s):\n  %s\nactions: %s\nlog tail:\n%s' % (
                what, self.seed, self.seed, self.kills, ' --long' if OPTS.long else '',
                '\n  '.join(problems[:40]), '; '.join(self.actions), self.home.log()[-3000:]))

    # --- the kills ---
    def start(self):
        self.home.start()
        self.daemon_pids.append(self.home.proc.pid)

    def our_workers(self):
        """(pid, job) of the workers of the running dfewd (its children: never
        another process)."""
        kids = set(children(self.home.proc.pid))
        try:
            ws = self.home.daemon_status()['workers']
        except Exception:
            return []  # not answering (yet): nothing to pick
        return [(w['pid'], w.get('job')) for w in ws if w.get('pid') in kids]

    # Each returns whether the kill landed: on a worker with a job, or on a
    # dfewd with jobs left to do (not on an idle pool or a finished batch).
    def kill_worker(self):
        ws = self.our_workers()
        busy = [w for w in ws if w[1]]
        pool = sorted(busy or ws)
        if not pool:
            self.actions.append('worker: none running')
            return False
        pid, job = pool[self.rng.randrange(len(pool))]
        os.kill(pid, signal.SIGKILL)
        self.actions.append('SIGKILL worker %d (job %s)' % (pid, job))
        return job is not None

    def kill_daemon(self, pause):
        pid, work = self.home.proc.pid, self.unfinished()
        self.home.kill9()
        self.actions.append('SIGKILL dfewd %d, down %.2f s' % (pid, pause))
        time.sleep(pause)
        return work > 0

    def kill_starting_daemon(self, after):
        pid, work = self.home.proc.pid, self.unfinished()
        self.home.kill9()
        self.home.start(wait_ready=False)
        self.daemon_pids.append(self.home.proc.pid)
        time.sleep(after)
        self.home.kill9()
        self.actions.append('SIGKILL dfewd %d, then the next %.2f s into its start' % (pid, after))
        return work > 0

    def drain_daemon(self):
        pid, work = self.home.proc.pid, self.unfinished()
        rc = self.home.stop(signal.SIGTERM)
        self.actions.append('SIGTERM dfewd %d (exit %s)' % (pid, rc))
        self.assertEqual(rc, 0, 'dfewd drained with exit %s (seed %d)' % (rc, self.seed))
        return work > 0

    def unfinished(self):
        return self.home.scalar("SELECT count(*) FROM jobs WHERE state NOT IN ('done', 'dead', 'cancelled')")

    def submit(self, movie):
        path, lst, _name, _rows = movie
        args = ['submit', path] + (['--clips', lst] if lst else [])
        out = self.home.ctl_json(*args)
        f = out['files'][0]
        self.assertEqual(f['status'], 'queued', 'not a new movie: %s' % out)
        return f['movie_id']

    def test_batch_survives_random_kills(self):
        try:
            self.run_batch()
        except AssertionError as e:
            if 'replay with --seed' in str(e):
                raise
            raise AssertionError('%s\n(seed %d: replay with --seed %d --kills %d%s; actions: %s)' % (
                e, self.seed, self.seed, self.kills, ' --long' if OPTS.long else '', '; '.join(self.actions))) from None

    def run_batch(self):
        copies, per_movie = (8, 6) if OPTS.long else (2, 4)
        t0 = time.time()
        self.batch = Batch(self.rng, copies, per_movie)
        movies = list(self.batch.movies)
        planned = len(movies)
        sources = {}  # movie id -> the video it copies

        def submit_next():
            m = movies[len(sources)]
            sources[self.submit(m)] = m[2]

        while len(sources) < len(movies) // 2:
            submit_next()
        self.start()
        # Every planned kill must land on work: the rest of the movies is held
        # back so that the last ones go in only as the last kills land (one
        # after each kill once no more kills are left than movies), and one
        # more goes in whenever the queue ran dry; a kill that found nothing
        # to hit (an idle pool, jobs waiting out a backoff) is drawn again,
        # up to four tries per planned kill.
        landed = tries = 0
        while landed < self.kills and tries < 4 * self.kills:
            tries += 1
            time.sleep(self.rng.uniform(0.1, 1.5))
            if self.home.proc.poll() is not None:
                self.fail_with(['dfewd %d exited by itself (%s)' % (self.home.proc.pid, self.home.proc.returncode)],
                               'dfewd died')
            if not self.unfinished():
                if len(sources) == len(movies):
                    # the planned movies are done and kills are left: a
                    # spare copy keeps the batch going (up to one per kill)
                    if len(movies) - planned >= self.kills:
                        self.actions.append('(the batch ended before kill %d)' % (landed + 1))
                        break
                    movies.append(self.batch.spare(self.rng))
                    self.actions.append('(a spare movie: the batch ran dry)')
                submit_next()
            r = self.rng.random()
            if r < 0.6:
                hit = self.kill_worker()
            elif r < 0.8:
                hit = self.kill_daemon(self.rng.uniform(0, 0.5))
            elif r < 0.9:
                hit = self.kill_starting_daemon(self.rng.uniform(0, 0.4))
            else:
                hit = self.drain_daemon()
            landed += hit
            if not hit:
                self.actions[-1] += ' (missed)'
            if hit and len(movies) - len(sources) > self.kills - landed:
                submit_next()  # also while dfewd is down
            if self.home.proc is None:
                self.start()
        while len(sources) < len(movies):
            submit_next()
        self.assertEqual(landed, self.kills, 'kills that landed on work, of %d planned, in %d tries (seed %d; '
                         'actions: %s)' % (self.kills, tries, self.seed, '; '.join(self.actions)))
        self.home.wait_for(lambda: not self.unfinished(), 300 if OPTS.long else 120, 'the batch to finish')
        rc = self.home.stop(signal.SIGTERM)
        print('chaos: %d movies, %d clips, %d jobs in %.1f s; %s' % (
            len(movies), self.home.scalar('SELECT count(*) FROM clips'), self.home.scalar('SELECT count(*) FROM jobs'),
            time.time() - t0, '; '.join(self.actions)), flush=True)
        self.assertEqual(rc, 0, 'dfewd exited %s on SIGTERM' % rc)

        # no worker of any of dfewd's lives is left (they die with it)
        left = [p for d in self.daemon_pids for p in children(d)] + [p for p in self.daemon_pids if pid_alive(p)]
        self.fail_with(['process %d still running' % p for p in left], 'processes left')
        self.fail_with(database_problems(self.home), 'the database is damaged')
        self.fail_with(job_problems(self.home), 'the queue is not at rest')
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), len(movies))
        self.assertEqual(self.home.scalar("SELECT count(*) FROM clips WHERE origin = 'list'"),
                         self.batch.listed_clips(), 'listed clips lost or doubled')
        self.assertGreater(self.home.scalar("SELECT count(*) FROM clips WHERE origin = 'segment'"), 0,
                           'the segment job chose no clip')
        states = {r['state'] for r in self.home.query('SELECT DISTINCT state FROM clips')}
        self.assertEqual(states, {'usable', 'unusable'})
        self.fail_with(outputs_problems(self.home), 'outputs incomplete')
        self.fail_with(temp_file_problems(self.home), 'temporary files left')
        problems, compared = same_bytes_problems(self.home, sources)
        self.fail_with(problems, 'copies of a clip differ')
        self.assertEqual(compared, self.batch.copy_comparisons(), 'clips of copies compared')


class LeftoverTest(unittest.TestCase):
    """What the chaos test found: files a killed worker was writing, under
    temporary names nothing removed. dfewd now removes them when the worker
    dies (and the landmark cache's when it starts); the same here without
    waiting for a kill to land in the right second."""

    def setUp(self):
        check_not_terminated()
        self.home = Home('[daemon]\nrespawn_min_seconds = 0.05\n[queue]\nmax_attempts = 1\n', workers=1,
                         prep=True)
        self.cache = os.path.join(self.home.dir, 'cache')
        self.movie = None

    def tearDown(self):
        if self.home.proc is not None and self.home.proc.poll() is None:
            self.home.stop()
        self.home.cleanup()
        if self.movie:
            shutil.rmtree(os.path.dirname(self.movie), ignore_errors=True)

    def leftover(self, d, name):
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name)
        with open(p, 'wb') as f:
            f.write(b'half a file')
        return p

    def test_landmark_cache_copy_of_a_dead_writer_is_removed(self):
        # (a worker loads the model, and the first writes the cache, at its
        # first prep job: often right after a restart, when kills land)
        kept = self.leftover(self.cache, 'shape-predictor-1-2-3.flat')  # a finished copy (by name) stays
        before = self.leftover(self.cache, 'shape-predictor-1-2-3.flat.tmp-AbC123')
        self.home.start()
        self.assertFalse(os.path.exists(before), 'left by a worker of an earlier dfewd')
        self.assertIn('removed %s' % before, self.home.log())
        during = self.leftover(self.cache, 'shape-predictor-1-2-3.flat.tmp-XyZ789')
        pid = self.home.daemon_status()['workers'][0]['pid']
        os.kill(pid, signal.SIGKILL)
        self.home.wait_for(lambda: not os.path.exists(during), 20, 'the dead worker\'s leftover to go')
        self.home.wait_for(lambda: self.home.ready_workers() == 1, 20, 'the worker to be respawned')
        self.assertTrue(os.path.exists(kept))
        self.assertEqual(self.home.stop(), 0)

    def test_job_dead_with_its_worker_leaves_no_temporary_files(self):
        # A prep job killed on its last attempt: no attempt comes to remove
        # its .tmp-<clip>-<pid> directory. And what write_file_atomic leaves
        # (NAME.tmp-<pid>-<random>: a segment job's segments.json, ...), here put in
        # the job's out_dir under the worker's pid.
        tmp = tempfile.mkdtemp(prefix='dfew-chaos-movies-')
        self.movie = make_movie(video('mead_eamm/surprised.mp4'), os.path.join(tmp, 'm.mp4'), 'leftover')
        with open(os.path.join(tmp, 'clips.csv'), 'w') as f:
            f.write('0,12\n')  # 310 frames: seconds of work to be killed in
        self.home.start()
        self.home.ctl('submit', self.movie, '--clips', os.path.join(tmp, 'clips.csv'))
        clips = os.path.join(self.home.dir, 'outputs', 'clips')
        self.home.wait_for(lambda: os.path.isdir(clips) and any(n.startswith('.tmp-') for n in os.listdir(clips)),
                           60, 'the prep job to write')
        job, clip = [(r['id'], r['clip_id']) for r in self.home.query("SELECT id, clip_id FROM jobs WHERE kind = 'prep'")][0]
        pid = [w['pid'] for w in self.home.daemon_status()['workers'] if w.get('job') == job][0]
        atomic = self.leftover(os.path.join(clips, str(clip)), 'clip.u8.tmp-%d-q7Rk2LmPz0aB' % pid)
        os.kill(pid, signal.SIGKILL)
        r = self.home.ctl('wait', '--timeout', '60', job, check=False)
        self.assertEqual(r.returncode, 1, 'the job did not die with its worker: %s' % r.stdout)
        self.assertEqual(os.listdir(os.path.join(clips, str(clip))), [], 'left: %s' % atomic)
        self.assertEqual([n for n in os.listdir(clips) if n.startswith('.tmp-')], [])
        self.assertIn('which died in job %d' % job, self.home.log())
        self.assertEqual(self.home.stop(), 0)


class DiskFullTest(unittest.TestCase):
    """HOME/outputs on a small tmpfs that the batch fills midway."""
    FREE_MB = 6  # about three clips' outputs (1.9 MB each for a 1 s clip)

    def setUp(self):
        check_not_terminated()
        if os.geteuid() != 0:
            self.skipTest('needs root to mount a tmpfs (running as uid %d)' % os.geteuid())
        self.batch = None
        self.home = Home(chaos_config(2), workers=2, prep=True)
        self.mnt = os.path.join(self.home.dir, 'outputs')
        os.mkdir(self.mnt)
        mount_tmpfs(self, self.mnt, 'size=64m,mode=0755')

    def tearDown(self):
        if self.home.proc is not None and self.home.proc.poll() is None:
            self.home.proc.kill()
            self.home.proc.wait()
            self.home.proc = None
        if self.mounted:
            subprocess.run(['umount', '-l', self.mnt])
        self.home.cleanup()
        if self.batch:
            self.batch.cleanup()

    def free_mb(self):
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize / 2 ** 20

    def test_full_outputs_disk_fails_jobs_then_retry_completes(self):
        filler = os.path.join(self.mnt, 'filler')
        with open(filler, 'wb') as f:
            f.write(b'\0' * int((self.free_mb() - self.FREE_MB) * 2 ** 20))
        self.assertLess(self.free_mb(), self.FREE_MB + 1)
        rng = random.Random(0)
        self.batch = Batch(rng, 1, 4)  # 4 movies x 4 clips = ~30 MB of outputs
        for path, lst, _name, _rows in self.batch.movies:
            self.home.ctl('submit', path, *(['--clips', lst] if lst else []))
        self.home.start()
        r = self.home.ctl('wait', '--timeout', str(600 * SLOW), check=False, timeout=700)
        self.assertEqual(r.returncode, 1, 'no job died: did the disk fill? %s' % r.stdout)

        # full: the jobs that could not write failed with the reason, were
        # retried after their backoff, and died; the rest is whole
        dead = self.home.query("SELECT id, kind, error FROM jobs WHERE state = 'dead'")
        self.assertTrue(dead)
        for j in dead:
            self.assertIn('the disk is full', j['error'], 'job %d (%s)' % (j['id'], j['kind']))
            msgs = [m['message'] for m in self.home.query('SELECT message FROM events WHERE job_id = ? ORDER BY id',
                                                          j['id'])]
            self.assertTrue(any(m.startswith('failed (attempt 1 of 2), retry in') and 'the disk is full' in m
                                for m in msgs), msgs)
        self.assertTrue(self.home.ping(), 'dfewd stopped serving when the disk filled')
        self.assertEqual(outputs_problems(self.home), [])
        self.assertEqual(temp_file_problems(self.home), [])
        self.assertEqual(database_problems(self.home), [])
        self.assertEqual(job_problems(self.home, allow_dead=True), [])
        usable_before = self.home.scalar("SELECT count(*) FROM clips WHERE state = 'usable'")

        # space again: every dead job retried completes
        os.unlink(filler)
        for j in dead:
            self.home.ctl('retry', j['id'])
        self.home.ctl('wait', '--timeout', str(600 * SLOW), timeout=700)
        self.assertEqual(self.home.stop(signal.SIGTERM), 0)
        self.assertEqual(job_problems(self.home), [])
        self.assertEqual(outputs_problems(self.home), [])
        self.assertEqual(temp_file_problems(self.home), [])
        self.assertEqual(database_problems(self.home), [])
        self.assertGreater(self.home.scalar("SELECT count(*) FROM clips WHERE state = 'usable'"), usable_before)
        self.assertEqual(self.home.scalar("SELECT count(*) FROM clips WHERE state = 'pending'"), 0)


class FullHomeDiskTest(unittest.TestCase):
    """The whole home on a tmpfs: the database, its WAL and the landmark
    cache fill up with the outputs."""

    def setUp(self):
        check_not_terminated()
        if os.geteuid() != 0:
            self.skipTest('needs root to mount a tmpfs (running as uid %d)' % os.geteuid())
        self.batch = None
        self.mounted = False
        self.home = Home(workers=2, prep=True)
        mount_tmpfs(self, self.home.dir, 'size=112m,mode=0700')
        # dfewd's log off the disk that fills: on it, the log's last page
        # fills too and the messages the test waits for may be lost (in
        # production the log goes to the journal)
        self.home.log_dir = tempfile.mkdtemp(prefix='dfew-it-log-')
        self.addCleanup(shutil.rmtree, self.home.log_dir, True)

    def fill(self):
        """Takes every byte left on the tmpfs; returns the filler's path."""
        filler = os.path.join(self.home.dir, 'filler')
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:  # unbuffered: no data left to fail at close; a short write fills the last page
            while True:
                os.write(fd, b'\0' * 65536)
        except OSError as e:
            self.assertEqual(e.errno, errno.ENOSPC)
        finally:
            os.close(fd)
        return filler

    def tearDown(self):
        if self.home.proc is not None and self.home.proc.poll() is None:
            self.home.proc.kill()
            self.home.proc.wait()
            self.home.proc = None
        logs = self.home.log() if self.mounted else ''
        if self.mounted:
            subprocess.run(['umount', '-l', self.home.dir])
        self.home.cleanup()
        if self.batch:
            self.batch.cleanup()
        self.log = logs

    def test_lease_kept_while_renewals_fail(self):
        # What the full disk below showed: dfewd could not renew the lease of
        # a running job, and once the disk had room again its own sweep
        # found the lease expired and gave the job, still running, to the
        # other worker. A job of 8 s, a lease of 3 s (renewed every second),
        # the disk full from its start until the lease has run out.
        self.home.write_config('[queue]\nlease_seconds = 3\nsweep_seconds = 0.1\n')
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '8000')['first_id']
        self.home.wait_for(lambda: self.home.scalar('SELECT state FROM jobs WHERE id = ?', job) == 'leased', 20,
                           'the job to start')
        filler = self.fill()
        self.home.wait_for(lambda: 'cannot renew the lease' in self.home.log() and
                           self.home.scalar('SELECT lease_expires FROM jobs WHERE id = ?', job) < time.time(), 20,
                           'the lease to run out')
        os.unlink(filler)
        self.home.ctl('wait', '--timeout', '60', job)
        self.assertEqual(self.home.trail(job), ['queued', 'leased', 'done'], self.home.log()[-3000:])
        self.assertEqual(self.home.scalar('SELECT attempts FROM jobs WHERE id = ?', job), 1)
        self.assertEqual(self.home.stop(), 0)

    def test_full_disk_under_the_database(self):
        self.home.write_config(chaos_config(1000) + '[queue]\nlease_seconds = 1\nsweep_seconds = 0.2\n')
        self.batch = Batch(random.Random(1), 1, 4)
        self.home.start()
        for path, lst, _name, _rows in self.batch.movies:
            self.home.ctl('submit', path, *(['--clips', lst] if lst else []))
        self.home.wait_for(lambda: self.home.scalar("SELECT count(*) FROM clips WHERE state = 'usable'") >= 3,
                           120, 'three clips prepared')
        # mid-batch (dfewd paused: work is left for when it is full), the
        # disk fills up to the last byte
        self.home.proc.send_signal(signal.SIGSTOP)
        try:
            self.assertGreater(self.home.scalar("SELECT count(*) FROM jobs WHERE state = 'queued'"), 0)
            filler = self.fill()
        finally:
            self.home.proc.send_signal(signal.SIGCONT)
        self.home.wait_for(lambda: 'database or disk is full' in self.home.log(), 60, 'the database to be full')
        log = self.home.log()
        self.assertNotIn('no transaction is active', log)  # the reason, not the rollback's complaint
        self.assertTrue(self.home.ping(), 'dfewd stopped serving when the disk filled')
        self.assertEqual(database_problems(self.home), [])
        self.assertEqual(outputs_problems(self.home, final=False), [])

        # space again: everything is prepared
        os.unlink(filler)
        self.home.ctl('wait', '--timeout', str(600 * SLOW), timeout=700)
        self.assertEqual(self.home.stop(signal.SIGTERM), 0)
        self.assertEqual(job_problems(self.home), [])
        self.assertEqual(outputs_problems(self.home), [])
        self.assertEqual(temp_file_problems(self.home), [])
        self.assertEqual(database_problems(self.home), [])
        self.assertEqual(self.home.scalar("SELECT count(*) FROM clips WHERE state = 'pending'"), 0)


if __name__ == '__main__':
    OPTS = parse_options()
    signal.signal(signal.SIGTERM, on_terminate)
    main()
