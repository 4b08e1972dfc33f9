"""Integration: faults. A worker killed mid-job, dfewd killed and restarted,
SIGTERM drains, retries with backoff, dead jobs, job timeouts, cancel of a
running job, lease renewal and expiry, SIGHUP reload, a second daemon."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from dfewtest import BUILD, Home, HomeTest, SLOW, main, video

LANDMARK_MODEL = '/usr/share/dlib/shape_predictor_68_face_landmarks.dat'


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive for our purposes
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


class WorkerDeathTest(HomeTest):
    config = '[daemon]\nrespawn_min_seconds = 0.05\n'
    workers = 1

    def busy_worker(self, job_id):
        self.home.wait_for(lambda: any(w.get('job') == job_id for w in self.home.daemon_status()['workers']), 20,
                           'job %d to run' % job_id)
        return [w for w in self.home.daemon_status()['workers'] if w.get('job') == job_id][0]

    def test_worker_sigkill_mid_job_then_done_exactly_once(self):
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '1500')['first_id']
        w = self.busy_worker(job)
        os.kill(w['pid'], signal.SIGKILL)
        self.home.ctl('wait', '--timeout', '60', job)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')
        self.assertEqual(self.home.done_events(job), 1)
        self.assertEqual(self.home.trail(job), ['queued', 'leased', 'queued', 'leased', 'done'])
        msg = self.home.scalar("SELECT message FROM events WHERE job_id = ? AND to_state = 'queued' AND "
                               "from_state = 'leased'", job)
        self.assertIn('killed by signal 9', msg)
        self.assertEqual(self.home.scalar('SELECT attempts FROM jobs WHERE id = ?', job), 2)
        # respawned: a different process serves now
        self.home.wait_for(lambda: self.home.ready_workers() == 1, 20, 'respawn')
        self.assertNotEqual(self.home.daemon_status()['workers'][0]['pid'], w['pid'])
        self.assertIn('job=%d' % job, self.home.log())

    def test_worker_dying_on_every_attempt_ends_dead(self):
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '2000', '--max-attempts', '2')['first_id']
        for attempt in (1, 2):
            self.home.wait_for(lambda: self.home.scalar('SELECT attempts FROM jobs WHERE id = ?', job) == attempt and
                               any(w.get('job') == job for w in self.home.daemon_status()['workers']), 20,
                               'attempt %d' % attempt)
            os.kill(self.busy_worker(job)['pid'], signal.SIGKILL)
        r = self.home.ctl('wait', '--timeout', '30', job, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'dead')
        self.assertTrue(self.home.ping())

    def test_timeout_kills_the_worker(self):
        self.home.write_config('[daemon]\nrespawn_min_seconds = 0.05\n[timeouts]\nnoop = 0.3s\n')
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '5000', '--max-attempts', '2')['first_id']
        r = self.home.ctl('wait', '--timeout', '60', job, check=False)
        self.assertEqual(r.returncode, 1)
        row = self.home.query('SELECT state, attempts, error FROM jobs WHERE id = ?', job)[0]
        self.assertEqual((row['state'], row['attempts']), ('dead', 2))
        self.assertIn('timeout', row['error'])

    def test_cancel_running_job_stops_its_worker(self):
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '30000')['first_id']
        w = self.busy_worker(job)
        out = self.home.ctl_json('cancel', job)
        self.assertEqual(out['was'], 'leased')
        self.assertIs(out['worker_stopped'], True)
        self.home.wait_for(lambda: not pid_alive(w['pid']), 10, 'the worker to stop')
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'cancelled')
        # serving again; the cancelled job can be retried
        nxt = self.home.ctl_json('noop')['first_id']
        self.home.ctl('wait', '--timeout', '30', nxt)
        self.home.ctl('retry', job)
        self.assertIn(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), ('queued', 'leased'))
        self.home.ctl('cancel', job)


class WorkerQuitDuringPreloadTest(unittest.TestCase):
    """dfewd can tell a worker to quit while its models still load (a drain
    right after start). The worker must wait for the loading thread before
    main() returns: exit's destructors under that thread crashed it (ASan
    caught a SEGV in CI)."""

    def test_quit_right_after_start_waits_for_the_preload(self):
        if not os.path.exists(LANDMARK_MODEL):
            self.skipTest('%s is absent: install libdlib-data (scripts/setup-deps.sh)' % LANDMARK_MODEL)
        cache = tempfile.mkdtemp(prefix='dfew-preload-')
        self.addCleanup(shutil.rmtree, cache, True)
        env = dict(os.environ, DFEW_CACHE_DIR=cache)
        # "quit" is on stdin before the worker reads it: it quits at once,
        # long before the landmark model (about a second) has loaded
        p = subprocess.run([os.path.join(BUILD, 'dfew-worker'), '--preload', LANDMARK_MODEL], input='quit\n',
                           env=env, capture_output=True, text=True, timeout=120 * SLOW)
        Home.check_sanitizer(p.stderr, 'dfew-worker')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith('hello '), p.stdout)
        # the load finished (and said so) before the process ended
        self.assertIn('before the first job', p.stderr)
        self.assertRegex(p.stderr, r'landmark model \S+ loaded in [0-9.]+ s')


class DaemonDeathTest(HomeTest):
    workers = 2

    def test_sigkill_daemon_and_restart_loses_nothing(self):
        self.home.start()
        out = self.home.ctl_json('noop', '--count', '20', '--sleep-ms', '150')
        ids = list(range(out['first_id'], out['last_id'] + 1))
        self.home.wait_for(lambda: self.home.scalar("SELECT count(*) FROM jobs WHERE state = 'done'") >= 4, 30,
                           'some jobs to finish')
        workers = [w['pid'] for w in self.home.daemon_status()['workers']]
        self.home.kill9()
        # its workers die with it (no orphan keeps running a job)
        self.home.wait_for(lambda: not any(pid_alive(p) for p in workers), 10, 'orphaned workers to exit')
        leased = self.home.scalar("SELECT count(*) FROM jobs WHERE state = 'leased'")
        self.home.start()
        self.home.ctl('wait', '--timeout', '60')
        self.assertEqual(self.home.scalar('SELECT count(*) FROM jobs'), 20)
        for j in ids:
            self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', j), 'done')
            self.assertEqual(self.home.done_events(j), 1)
        if leased:
            self.assertIn('leased by a previous dfewd went back to the queue', self.home.log())

    def test_sigterm_drains_running_job(self):
        self.home.write_config('[daemon]\ndrain_seconds = 20\n')
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '1000')['first_id']
        queued = self.home.ctl_json('noop', '--count', '3', '--sleep-ms', '1000', '--priority', '-1')
        self.home.wait_for(lambda: self.home.scalar('SELECT state FROM jobs WHERE id = ?', job) == 'leased', 20,
                           'the job to start')
        t0 = time.time()
        self.assertEqual(self.home.stop(signal.SIGTERM), 0)
        self.assertLess(time.time() - t0, 15 * SLOW)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')
        # nothing new started during the drain; the rest waits, unharmed
        for j in range(queued['first_id'], queued['last_id'] + 1):
            self.assertIn(self.home.scalar('SELECT state FROM jobs WHERE id = ?', j), ('queued', 'done'))
        self.assertEqual(self.home.scalar("SELECT count(*) FROM jobs WHERE state = 'leased'"), 0)
        self.assertFalse(os.path.exists(self.home.sock))
        self.assertIn('draining', self.home.log())

    def test_sigterm_deadline_requeues_without_using_an_attempt(self):
        self.home.write_config('[daemon]\ndrain_seconds = 0.3\n')
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '20000')['first_id']
        self.home.wait_for(lambda: self.home.scalar('SELECT state FROM jobs WHERE id = ?', job) == 'leased', 20,
                           'the job to start')
        self.assertEqual(self.home.stop(signal.SIGTERM), 0)
        row = self.home.query('SELECT state, attempts FROM jobs WHERE id = ?', job)[0]
        self.assertEqual((row['state'], row['attempts']), ('queued', 0))
        self.assertIn('attempt not counted', self.home.scalar('SELECT group_concat(message) FROM events WHERE job_id = ?',
                                                              job))

    def test_ctrl_c_on_the_terminal_drains_instead_of_killing_jobs(self):
        # dfewd -f in a terminal: Ctrl-C sends SIGINT to the whole foreground
        # process group; the workers must not die with the running job.
        self.home.start(new_session=True)
        job = self.home.ctl_json('noop', '--sleep-ms', '1000')['first_id']
        self.home.wait_for(lambda: self.home.scalar('SELECT state FROM jobs WHERE id = ?', job) == 'leased', 20,
                           'the job to start')
        os.killpg(self.home.proc.pid, signal.SIGINT)
        self.assertEqual(self.home.proc.wait(timeout=30 * SLOW), 0)
        self.home.stop()
        self.assertEqual(self.home.trail(job), ['queued', 'leased', 'done'])
        self.assertIn('SIGINT: draining', self.home.log())

    def test_second_daemon_refused(self):
        self.home.start()
        r = subprocess.run([os.path.join(BUILD, 'dfewd'), '--foreground', '--home', self.home.dir],
                           capture_output=True, text=True, timeout=20 * SLOW)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('already running', r.stderr)
        self.assertIn(str(self.home.proc.pid), r.stderr)
        self.assertTrue(self.home.ping())

    def test_background_mode_starts_and_reports_ready(self):
        r = subprocess.run([os.path.join(BUILD, 'dfewd'), '--home', self.home.dir, '--workers', '1'],
                           capture_output=True, text=True, timeout=20 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('dfewd started (pid', r.stdout)
        pid = int(r.stdout.split('pid ')[1].split(')')[0])
        try:
            self.assertTrue(self.home.ping())  # ready means the socket answers at once
            job = self.home.ctl_json('submit', video('single_face.mp4'))['files'][0]['job_id']
            self.home.ctl('wait', '--timeout', '60', job)
        finally:
            os.kill(pid, signal.SIGTERM)
            self.home.wait_for(lambda: not pid_alive(pid), 30, 'background dfewd to stop')
        with open(os.path.join(self.home.dir, 'dfewd.log')) as f:
            log = f.read()
        Home.check_sanitizer(log, 'dfewd (background)')
        self.assertIn('job=%d probe done' % job, log)


class RetryTest(HomeTest):
    config = '[queue]\nretry_base_seconds = 0.2\nretry_max_seconds = 0.5\n'

    def test_transient_failure_retries_with_backoff_then_succeeds(self):
        self.home.start()
        job = self.home.ctl_json('noop', '--fail', 'transient', '--fail-attempts', '2')['first_id']
        self.home.ctl('wait', '--timeout', '30', job)
        self.assertEqual(self.home.trail(job), ['queued', 'leased', 'failed', 'queued', 'leased', 'failed', 'queued',
                                                'leased', 'done'])
        # backoff: 0.2 s after the first failure, 0.4 s after the second
        times = [r['at'] for r in self.home.query('SELECT at FROM events WHERE job_id = ? ORDER BY id', job)]
        self.assertGreaterEqual(times[3] - times[2], 0.19)
        self.assertGreaterEqual(times[6] - times[5], 0.39)

    def test_always_failing_job_is_dead_after_max_attempts(self):
        self.home.start()
        job = self.home.ctl_json('noop', '--fail', 'transient', '--max-attempts', '3')['first_id']
        r = self.home.ctl('wait', '--timeout', '30', job, check=False)
        self.assertEqual(r.returncode, 1)
        row = self.home.query('SELECT state, attempts, error FROM jobs WHERE id = ?', job)[0]
        self.assertEqual((row['state'], row['attempts']), ('dead', 3))
        self.assertIn('asked to fail', row['error'])
        self.assertEqual(self.home.trail(job).count('failed'), 2)
        # retry brings it back with fresh attempts
        self.home.ctl('retry', job)
        self.assertIn(self.home.scalar('SELECT attempts FROM jobs WHERE id = ?', job), (0, 1))
        self.assertEqual(self.home.trail(job)[9], 'queued')


class LeaseTest(HomeTest):
    config = '[queue]\nlease_seconds = 1\nsweep_seconds = 0.2\n'
    workers = 1

    def test_running_job_keeps_its_lease(self):
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '3000')['first_id']
        self.home.ctl('wait', '--timeout', '30', job)
        # three lease lengths long, one attempt: the daemon renewed it
        self.assertEqual(self.home.trail(job), ['queued', 'leased', 'done'])

    def test_expired_lease_of_a_lost_holder_returns_to_queue(self):
        self.home.start()
        con = self.home.db()
        now = time.time()
        with con:
            con.execute("INSERT INTO jobs (kind, state, args, attempts, lease_token, lease_owner, lease_expires, "
                        "created_at, updated_at) VALUES ('noop', 'leased', '{}', 1, 'gone', 'a lost daemon', ?, ?, ?)",
                        (now - 5, now - 10, now - 10))
            job = con.execute('SELECT max(id) FROM jobs').fetchone()[0]
        con.close()
        self.home.ctl('wait', '--timeout', '30', job)
        msgs = self.home.scalar('SELECT group_concat(message, " | ") FROM events WHERE job_id = ?', job)
        self.assertIn('lease expired', msgs)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')


class ProgressTest(HomeTest):
    config = '[queue]\nlease_seconds = 1\n'  # renewals (and progress flushes) every 1/3 s
    workers = 1

    def test_last_progress_report_reaches_the_database(self):
        # Five reports within 50 ms: the database takes one a second, so the
        # rest wait; the last must show while the job then stays quiet.
        self.home.start()
        job = self.home.ctl_json('noop', '--progress', '5', '--sleep-ms', '4000')['first_id']

        def last_step_shown():
            rows = self.home.query('SELECT progress_msg FROM jobs WHERE id = ?', job)
            return rows[0]['progress_msg'] == 'step 5 of 5'

        self.home.wait_for(last_step_shown, 3, 'the last progress report in the database')
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'leased')
        self.home.ctl('wait', '--timeout', '30', job)


class ReloadTest(HomeTest):
    workers = 0  # from the config

    def test_sighup_reloads_config(self):
        self.home.write_config('[daemon]\nworkers = 1\n')
        self.home.start()
        self.assertEqual(len(self.home.daemon_status()['workers']), 1)
        self.home.write_config('[daemon]\nworkers = 3\n')
        self.home.proc.send_signal(signal.SIGHUP)
        self.home.wait_for(lambda: self.home.ready_workers() == 3, 20, '3 workers after SIGHUP')
        self.home.write_config('[daemon]\nworkers = 2\n')
        self.home.proc.send_signal(signal.SIGHUP)
        self.home.wait_for(lambda: len(self.home.daemon_status()['workers']) == 2, 20, '2 workers after SIGHUP')
        # a broken config is refused and the daemon keeps its current one
        self.home.write_config('[daemon]\nworkers = lots\n')
        self.home.proc.send_signal(signal.SIGHUP)
        self.home.wait_for(lambda: 'config not reloaded' in self.home.log(), 10, 'the reload error')
        self.assertIn('workers wants a whole number', self.home.log())
        self.assertEqual(self.home.daemon_status()['workers_target'], 2)
        # dfewctl refuses to queue work under a config it cannot read...
        r = self.home.ctl('noop', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('dfew.conf:2: workers wants a whole number', r.stderr)
        # ...and the daemon still serves with the config it kept.
        self.home.write_config('[daemon]\nworkers = 2\n')
        job = self.home.ctl_json('noop')['first_id']
        self.home.ctl('wait', '--timeout', '30', job)


if __name__ == '__main__':
    main()
