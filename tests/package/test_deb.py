"""The Debian package, end to end (root only; skipped with the reason
otherwise): builds it with `dpkg-buildpackage -b -us -uc` from a clean copy
of the checkout (the files git tracks or would track), checks it with
lintian (no errors), installs it with dpkg, runs dfewd the way
dfewd.service does (its ExecStart line, User, Group, UMask and Environment,
without systemd) on /var/lib/dfew, submits a real video as the dfew user
and waits for its clips, then purges the package and checks that nothing
it installed or made is left except the dfew system user, as Debian keeps
system users.

It changes the system (a package, a user, /var/lib/dfew), so it refuses to
run where dfew is already installed or /var/lib/dfew already exists.
With DFEW_REQUIRE_PACKAGE=1 in the environment (.ci/run sets it) every
reason to skip (not root, a tool or the test video missing, dfew installed
already) is a failure with that reason instead: CI cannot pass without it.
Building takes minutes: scripts/test.sh runs it once (suite 'package'), not
in the sanitizer pass."""
import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
from dfewtest import SOURCE, main, video  # noqa: E402

STATE = '/var/lib/dfew'
UNIT = '/lib/systemd/system/dfewd.service'
# Where files may appear or vanish for reasons of their own while the test runs.
SNAPSHOT_ROOTS = ['/etc', '/usr', '/var/lib', '/opt', '/srv']
NOT_OURS = ('/var/lib/dpkg', '/var/lib/apt', '/var/lib/ucf', '/var/lib/man-db', '/var/lib/systemd/timers',
            '/var/lib/systemd/catalog', '/etc/ld.so.cache', '/usr/lib/python3')
# systemd-sysusers keeps a backup of each account file it changes: part of
# the dfew user, which stays.
USER_FILES = {'/etc/passwd-', '/etc/group-', '/etc/shadow-', '/etc/gshadow-'}


def sh(*argv, check=True, timeout=600, **kw):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError('%s exited %d:\n%s\n%s' % (' '.join(argv), r.returncode, r.stdout[-4000:],
                                                       r.stderr[-4000:]))
    return r


def read(path):
    with open(path, errors='replace') as f:
        return f.read()


def snapshot():
    paths = set()
    for root in SNAPSHOT_ROOTS:
        for d, dirs, files in os.walk(root):
            if d.startswith(NOT_OURS):
                dirs[:] = []
                continue
            for n in dirs + files:
                p = os.path.join(d, n)
                if not p.startswith(NOT_OURS) and '__pycache__' not in p:
                    paths.add(p)
    return paths


def unit_service(path):
    """The [Service] settings of a unit file that running its ExecStart by
    hand needs: ExecStart, User, Group, UMask and Environment."""
    svc, env = {}, {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith('['):
                section = line
            elif section == '[Service]' and '=' in line and not line.startswith('#'):
                k, v = line.split('=', 1)
                if k == 'Environment':
                    for item in shlex.split(v):
                        ek, ev = item.split('=', 1)
                        env[ek] = ev
                else:
                    svc[k] = v
    svc['Environment'] = env
    return svc


def cannot_run(reason):
    """Skip with the reason, or fail with it when DFEW_REQUIRE_PACKAGE=1."""
    if os.environ.get('DFEW_REQUIRE_PACKAGE') == '1':
        raise AssertionError('DFEW_REQUIRE_PACKAGE=1 and the package test cannot run: ' + reason)
    raise unittest.SkipTest(reason)


class DebTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.proc, cls.installed = None, None, False

    def setUp(self):
        # skips here, not in setUpClass: a class-level skip runs no test,
        # and the harness would report that as passed rather than skipped
        cls = type(self)
        if os.geteuid() != 0:
            cannot_run('needs root: it installs and purges the dfew package')
        # man (man-db): the installed pages are read back as man shows them
        for tool in ('dpkg-buildpackage', 'lintian', 'setpriv', 'git', 'man'):
            if not shutil.which(tool):
                cannot_run('%s is missing (scripts/setup-deps.sh installs it)' % tool)
        if sh('dpkg-query', '-W', '-f=${Status}', 'dfew', check=False).stdout.startswith('install'):
            cannot_run('the dfew package is installed here already; this test installs and purges it')
        if os.path.exists(STATE):
            cannot_run('%s exists (a dfew home in use?); this test would purge it' % STATE)
        for p in ('/usr/bin/dfewd', '/usr/bin/dfewctl'):
            if os.path.exists(p):
                cannot_run('%s exists (a meson install?); the package would replace it' % p)
        try:
            cls.movie = video('single_face.mp4')
        except unittest.SkipTest as e:
            cannot_run(str(e))
        cls.tmp = tempfile.mkdtemp(prefix='dfew-deb-')
        os.chmod(cls.tmp, 0o755)  # the dfew user reads the movie from here

    @classmethod
    def tearDownClass(cls):
        if cls.proc is not None and cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()
        if cls.installed:  # a test failed half-way: leave the system as it was
            sh('dpkg', '--purge', 'dfew', check=False)
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def build(self):
        """A clean copy of the checkout (what git tracks or would track) and
        dpkg-buildpackage in it; the .deb's path."""
        files = sh('git', '-C', SOURCE, 'ls-files', '-z', '--cached', '--others', '--exclude-standard').stdout
        src = os.path.join(self.tmp, 'dfew')
        for rel in filter(None, files.split('\0')):
            a = os.path.join(SOURCE, rel)
            if not os.path.lexists(a):
                continue  # deleted in the work tree
            b = os.path.join(src, rel)
            os.makedirs(os.path.dirname(b), exist_ok=True)
            if os.path.islink(a):
                os.symlink(os.readlink(a), b)
            else:
                shutil.copy2(a, b)
        self.assertTrue(os.path.islink(os.path.join(src, 'debian')), 'debian/ should link to packaging/debian')
        t = time.monotonic()
        env = dict(os.environ, DEB_BUILD_OPTIONS='parallel=%d' % (os.cpu_count() or 1), LC_ALL='C.UTF-8')
        for k in ('MESON_TEST_ITERATION', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'DFEW_SANITIZE', 'MALLOC_PERTURB_'):
            env.pop(k, None)
        r = sh('dpkg-buildpackage', '-b', '-us', '-uc', cwd=src, env=env, check=False, timeout=1500)
        log = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, 'dpkg-buildpackage failed:\n' + log[-6000:])
        print('dpkg-buildpackage: %.0f s' % (time.monotonic() - t))
        debs = [f for f in os.listdir(self.tmp) if f.startswith('dfew_') and f.endswith('.deb')]
        self.assertEqual(len(debs), 1, os.listdir(self.tmp))
        changes = [f for f in os.listdir(self.tmp) if f.endswith('.changes')]
        return os.path.join(self.tmp, debs[0]), os.path.join(self.tmp, changes[0])

    def lintian(self, changes):
        r = sh('lintian', '--fail-on', 'error', '--tag-display-limit', '0', changes, check=False,
               timeout=600)
        print('lintian:\n' + (r.stdout or '(nothing to say)'))
        errors = [ln for ln in r.stdout.split('\n') if ln.startswith('E:')]
        self.assertEqual(errors, [], 'lintian errors')
        self.assertEqual(r.returncode, 0, r.stderr)

    def check_installed(self, deb):
        contents = sh('dpkg-deb', '--contents', deb).stdout
        for p in ('./usr/bin/dfewd', './usr/bin/dfewctl', './usr/bin/dfew-worker', './usr/bin/dfew-web',
                  '/dfew/train/dfew-train-cpu.so',
                  './usr/share/dfew/schema/0001_init.sql', './usr/share/dfew/schema/README.md',
                  './usr/share/dfew/dfew.conf.sample', './lib/systemd/system/dfewd.service',
                  './lib/systemd/system/dfew-batch.service', './lib/systemd/system/dfew-batch.timer',
                  './lib/systemd/system/dfew-web.service',
                  './usr/lib/sysusers.d/dfew.conf', './etc/default/dfew', './usr/share/man/man1/dfewctl.1.gz',
                  './usr/share/man/man8/dfewd.8.gz', './usr/share/man/man5/dfew.conf.5.gz',
                  './usr/share/man/man8/dfew-worker.8.gz', './usr/share/man/man8/dfew-web.8.gz',
                  './usr/share/bash-completion/completions/dfewctl'):
            self.assertIn(p, contents)
        u = pwd.getpwnam('dfew')
        self.assertLess(u.pw_uid, 1000, 'dfew should be a system user')
        self.assertEqual(u.pw_dir, STATE)
        st = os.stat(STATE)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (u.pw_uid, grp.getgrnam('dfew').gr_gid,
                                                                           0o750))
        # dfewd.service enabled (deb-systemd-helper keeps the links' state
        # without systemd too), the nightly timer and dfew-web not
        wants = '/var/lib/systemd/deb-systemd-helper-enabled/'
        self.assertTrue(os.path.exists(wants + 'multi-user.target.wants/dfewd.service'))
        self.assertFalse(os.path.exists(wants + 'timers.target.wants/dfew-batch.timer'))
        self.assertFalse(os.path.exists(wants + 'multi-user.target.wants/dfew-web.service'))
        with open('/etc/default/dfew') as f:
            self.assertIn('DFEW_INCOMING=', f.read())
        # the trainer backend loads and has its entry point
        so = [ln.split()[-1].lstrip('.') for ln in contents.split('\n') if ln.endswith('dfew-train-cpu.so')][0]
        import ctypes
        self.assertTrue(hasattr(ctypes.CDLL(so), 'dfew_train_backend_entry'))
        self.assertRegex(sh('/usr/bin/dfewd', '--version').stdout, r'^dfewd \d+\.\d+')
        # the man pages are the installed programs' own help, found by man
        # where the package put them (setUp made sure man is here)
        for name, words in (('dfewd', ['--foreground']), ('dfewctl', ['submit', '--home']),
                            ('dfew-worker', ['--preload', '--one-job', '--check-storage']),
                            ('dfew-web', ['--listen']), ('dfew.conf', ['[limits]'])):
            page = sh('man', '-P', 'cat', name, env=dict(os.environ, MANWIDTH='200', LC_ALL='C.UTF-8')).stdout
            page = re.sub(r'.\x08', '', page).replace('\u2010', '-').replace('\u2212', '-')
            for w in words:
                self.assertIn(w, page, 'man %s does not say %s' % (name, w))

    def as_dfew(self, svc):
        user, group = svc.get('User', 'root'), svc.get('Group', svc.get('User', 'root'))
        self.assertEqual(user, 'dfew')
        return ['setpriv', '--reuid=' + user, '--regid=' + group, '--init-groups', '--']

    def run_service(self):
        """Starts dfewd by dfewd.service's ExecStart as its User, submits a
        real video as that user, waits until its work is done."""
        svc = unit_service(UNIT)
        argv = shlex.split(svc['ExecStart'].lstrip('-@:+!'))
        self.assertEqual(argv[0], '/usr/bin/dfewd')
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C.UTF-8'}
        env.update(svc['Environment'])
        umask = int(svc.get('UMask', '0022'), 8)
        log = open(os.path.join(self.tmp, 'dfewd.log'), 'w')
        prefix = self.as_dfew(svc)
        type(self).proc = subprocess.Popen(prefix + argv, env=env, cwd='/', stdout=log, stderr=subprocess.STDOUT,
                                           preexec_fn=lambda: os.umask(umask))
        sock = os.path.join(STATE, 'dfewd.sock')
        end = time.monotonic() + 60
        while not os.path.exists(sock):
            self.assertIsNone(self.proc.poll(), 'dfewd exited: ' + read(log.name))
            self.assertLess(time.monotonic(), end, 'no control socket after 60 s')
            time.sleep(0.2)
        movie = os.path.join(self.tmp, 'movie.mp4')
        shutil.copyfile(self.movie, movie)
        os.chmod(movie, 0o644)
        ctl = prefix + ['/usr/bin/dfewctl', '--home', STATE]
        sh(*ctl, 'submit', movie, env=env, cwd='/')
        r = sh(*ctl, 'wait', '--timeout', '300', env=env, cwd='/', check=False, timeout=360)
        self.assertEqual(r.returncode, 0, 'dfewctl wait: %s %s\n%s' % (r.stdout, r.stderr, read(log.name)))
        jobs = sh(*ctl, 'jobs', env=env, cwd='/').stdout
        db = sqlite3.connect('file:%s/dfew.db?mode=ro' % STATE, uri=True)
        kinds = dict(db.execute("SELECT kind, count(*) FROM jobs WHERE state = 'done' GROUP BY kind").fetchall())
        clips = db.execute('SELECT count(*) FROM clip_status').fetchone()[0]
        db.close()
        self.assertIn('probe', kinds, jobs)
        self.assertIn('prep', kinds, jobs)
        self.assertGreater(clips, 0)
        # the outputs are the service user's, with the unit's umask
        u = pwd.getpwnam('dfew')
        for d, dirs, files in os.walk(STATE):
            for n in dirs + files:
                st = os.lstat(os.path.join(d, n))
                self.assertEqual(st.st_uid, u.pw_uid, os.path.join(d, n))
                self.assertEqual(stat.S_IMODE(st.st_mode) & umask, 0, os.path.join(d, n))
        self.assertTrue(any(f == 'clip.u8' for _, _, fs in os.walk(os.path.join(STATE, 'outputs')) for f in fs))
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=60), 0, read(log.name))
        log.close()

    def test_build_install_run_purge(self):
        deb, changes = self.build()
        self.lintian(changes)
        before = snapshot()
        r = sh('dpkg', '-i', deb, check=False, env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'))
        type(self).installed = True
        self.assertEqual(r.returncode, 0, 'dpkg -i: ' + r.stdout + r.stderr)
        if os.path.isdir('/run/systemd/system'):  # systemd started the service: this test runs it by hand
            sh('systemctl', 'stop', 'dfewd.service')
        owned = [p for p in sh('dpkg', '-L', 'dfew').stdout.split('\n') if p and not os.path.isdir(p)]
        self.check_installed(deb)
        self.run_service()

        r = sh('dpkg', '--purge', 'dfew', check=False, env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'))
        self.assertEqual(r.returncode, 0, 'dpkg --purge: ' + r.stdout + r.stderr)
        type(self).installed = False
        self.assertFalse(sh('dpkg-query', '-W', '-f=${Status}', 'dfew', check=False).stdout.startswith('install'))
        for p in owned + [STATE, '/etc/default/dfew']:
            self.assertFalse(os.path.lexists(p), '%s is left after purge' % p)
        left = sorted(p for p in snapshot() - before if p not in USER_FILES)
        self.assertEqual(left, [], 'purge left these behind')
        pwd.getpwnam('dfew')  # the system user stays (Debian keeps system users)


if __name__ == '__main__':
    main()
