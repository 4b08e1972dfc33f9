"""Harness for dfew's integration tests: a temporary dfew home with a real
dfewd process (foreground, its log captured), dfewctl run as a subprocess,
and the real SQLite database read with Python's sqlite3. No mocks.

Environment (set by tests/integration/meson.build):
  DFEW_BUILD_DIR   where dfewd, dfewctl and dfew-worker are
  DFEW_SOURCE_DIR  the source tree (schema/ lives there)
  DFEW_TESTDATA    ../shared/testdata (tests that need it skip without it)
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get('DFEW_BUILD_DIR', os.path.join(os.path.dirname(__file__), '..', '..', 'build'))
SOURCE = os.environ.get('DFEW_SOURCE_DIR', os.path.join(os.path.dirname(__file__), '..', '..'))
TESTDATA = os.environ.get('DFEW_TESTDATA', os.path.join(SOURCE, '..', 'shared', 'testdata'))
DEBIAN_HELLO = '/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4'
DEBIAN_DOG = '/usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4'
# Sanitizer builds are slower; give them more time.
SLOW = 4 if os.environ.get('DFEW_SANITIZE') else 1


def _die_with_test():
    """In the child before exec: dfewd gets SIGTERM when the test process
    dies (killed by a timeout, interrupted), so no daemon outlives its test."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def video(name):
    """Path of a shared test video; skips the test (visibly) when absent."""
    p = os.path.join(TESTDATA, 'videos', name)
    if not os.path.exists(p):
        raise unittest.SkipTest('test data missing: %s (../shared/testdata is not beside the checkout)' % p)
    return p


def need_file(p, why):
    if not os.path.exists(p):
        raise unittest.SkipTest('%s missing (%s)' % (p, why))
    return p


class Home:
    """A fresh dfew home; optionally with a dfew.conf; starts/stops dfewd."""

    def __init__(self, config=None, workers=2, prep=False):
        self.dir = tempfile.mkdtemp(prefix='dfew-it-')
        self.workers = workers
        self.prep = prep
        self.proc = None
        self.logs = []
        self.log_dir = self.dir  # where dfewd's output is kept (a test may keep it off a disk it fills)
        if config or not prep:
            self.write_config(config or '')

    # --- files ---
    @property
    def db_path(self):
        return os.path.join(self.dir, 'dfew.db')

    @property
    def sock(self):
        return os.path.join(self.dir, 'dfewd.sock')

    def write_config(self, text):
        # Without prep=True a submitted movie is only probed: dlib on every
        # frame of every test video would make unrelated tests slow.
        if not self.prep:
            text += '\n[prep]\nwhole_movie = no\n'
        with open(os.path.join(self.dir, 'dfew.conf'), 'w') as f:
            f.write(text)

    # --- dfewctl ---
    def ctl(self, *args, check=True, timeout=120):
        cmd = [os.path.join(BUILD, 'dfewctl'), '--home', self.dir] + [str(a) for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW)
        self.check_sanitizer(r.stderr, 'dfewctl ' + ' '.join(map(str, args)))
        if check and r.returncode != 0:
            raise AssertionError('%s exited %d\nstdout: %s\nstderr: %s' % (' '.join(cmd), r.returncode, r.stdout,
                                                                         r.stderr))
        return r

    def ctl_json(self, *args, check=True):
        r = self.ctl('--json', *args, check=check)
        return json.loads(r.stdout)

    # --- dfewd ---
    def start(self, *extra, wait_ready=True, new_session=False):
        assert self.proc is None
        path = os.path.join(self.log_dir, 'dfewd.test.log.%d' % len(self.logs))
        self.logs.append(path)
        args = [os.path.join(BUILD, 'dfewd'), '--foreground', '--home', self.dir]
        if self.workers:
            args += ['--workers', str(self.workers)]
        # O_APPEND, and read back by path: never share a file offset with the daemon
        with open(path, 'ab') as log:
            self.proc = subprocess.Popen(args + list(extra), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=new_session, preexec_fn=_die_with_test)
        if wait_ready:
            self.wait_for(lambda: self.ping() and self.ready_workers() >= 1, 20, 'dfewd to start')
        return self.proc

    def ping(self):
        r = subprocess.run([os.path.join(BUILD, 'dfewctl'), '--home', self.dir, '--json', 'status', '--once'],
                           capture_output=True, text=True)
        return r.returncode == 0 and json.loads(r.stdout).get('daemon') is not None

    def daemon_status(self):
        return self.ctl_json('status', '--once')['daemon']

    def ready_workers(self):
        d = self.daemon_status()
        return 0 if not d else sum(1 for w in d['workers'] if w['state'] in ('idle', 'busy'))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * SLOW)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.check_sanitizer(self.log(), 'dfewd')
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def log(self):
        out = []
        for path in self.logs:
            with open(path, errors='replace') as f:
                out.append(f.read())
        return ''.join(out)

    @staticmethod
    def check_sanitizer(text, who):
        for marker in ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'):
            if marker in text:
                raise AssertionError('%s: sanitizer report:\n%s' % (who, text[-4000:]))

    # --- database ---
    def db(self):
        con = sqlite3.connect(self.db_path, timeout=30)
        con.row_factory = sqlite3.Row
        return con

    def query(self, sql, *args):
        con = self.db()
        try:
            return [dict(r) for r in con.execute(sql, args)]
        finally:
            con.close()

    def scalar(self, sql, *args):
        con = self.db()
        try:
            return con.execute(sql, args).fetchone()[0]
        finally:
            con.close()

    def wait_for(self, cond, timeout, what):
        end = time.time() + timeout * SLOW
        while time.time() < end:
            if cond():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError('dfewd exited (%s) while waiting for %s\n%s' % (self.proc.returncode, what,
                                                                                    self.log()[-3000:]))
            time.sleep(0.05)
        raise AssertionError('timed out waiting for %s\n%s' % (what, self.log()[-3000:]))

    def done_events(self, job_id):
        return self.scalar("SELECT count(*) FROM events WHERE job_id = ? AND to_state = 'done'", job_id)

    def trail(self, job_id):
        return [r['to_state'] for r in self.query('SELECT to_state FROM events WHERE job_id = ? ORDER BY id', job_id)]

    def cleanup(self):
        if self.proc is not None:
            self.stop(signal.SIGKILL if self.proc.poll() is None else signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)


class HomeTest(unittest.TestCase):
    """A test case with self.home created and cleaned up per test."""
    config = None
    workers = 2
    prep = False  # True: movies without --clips get their whole-movie prep job

    def setUp(self):
        self.home = Home(self.config, self.workers, self.prep)

    def tearDown(self):
        if self.home.proc is not None and self.home.proc.poll() is None:
            # A test that left the daemon running: stop it cleanly to catch leaks.
            self.home.stop()
        self.home.cleanup()


def prep_clip_list(test, movie, clips, config='', timeout=300):
    """Preps one movie with a clip list ("start,end" lines) in a fresh home
    (2 workers, [prep] min_face_ratio = 0 so every clip keeps its faces.bin,
    then config); returns the home (stopped, removed after the test) and the
    clips' clip_status + clip_prep rows by start time."""
    home = Home(config='[prep]\nmin_face_ratio = 0\n' + config, workers=2, prep=True)
    test.addCleanup(home.cleanup)
    lst = os.path.join(home.dir, 'clips.csv')
    with open(lst, 'w') as f:
        f.write(clips)
    home.ctl('submit', movie, '--clips', lst)
    home.start()
    home.ctl('wait', '--timeout', str(timeout * SLOW), timeout=timeout * SLOW + 60)
    rows = home.query('SELECT * FROM clip_status JOIN clip_prep USING (clip_id) ORDER BY start_s')
    home.stop()
    return home, rows


class SharedHomeTest(unittest.TestCase):
    """A test case whose tests share one home, cls.home, made by the subclass's
    setUpClass; its daemon is stopped and the home removed after the last test."""
    home = None

    @classmethod
    def submit_and_wait(cls, *paths):
        """Submits paths to cls.home's running daemon and waits until all its work is done; submit's JSON."""
        out = cls.home.ctl_json('submit', *paths)
        cls.home.ctl('wait', '--timeout', str(600 * SLOW), timeout=700)
        return out

    @classmethod
    def tearDownClass(cls):
        if cls.home is None:
            return
        if cls.home.proc is not None:
            cls.home.stop()
        cls.home.cleanup()


def main():
    r = unittest.main(exit=False, verbosity=2).result
    if not r.wasSuccessful():
        sys.exit(1)
    # a skip in setUpClass runs no test and shows up in r.skipped as a
    # placeholder, not a TestCase: count only tests that really ran (a
    # skipped subTest is part of a test that ran)
    ran = r.testsRun - sum(isinstance(t, unittest.TestCase) and type(t).__name__ != '_SubTest'
                           for t, _ in r.skipped)
    if r.skipped and ran == 0:
        sys.exit(77)  # meson: skipped
    sys.exit(0)
