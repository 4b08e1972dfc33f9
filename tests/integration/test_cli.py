"""Integration: dfewctl's commands and outputs (tables, --json, exit codes),
the public views, the control socket, schema migration of an old database
made with the sqlite3 tool, refusal of a newer one, and an idle daemon."""
import json
import os
import sqlite3
import stat
import subprocess
import time

from dfewtest import BUILD, SLOW, SOURCE, HomeTest, main, video


class CliTest(HomeTest):
    def test_wait_exit_codes_and_selection(self):
        self.home.start()
        ok = self.home.ctl_json('noop')['first_id']
        bad = self.home.ctl_json('noop', '--fail', 'permanent')['first_id']
        self.assertEqual(self.home.ctl('wait', '--timeout', '30', ok).returncode, 0)
        r = self.home.ctl('wait', '--timeout', '30', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('1 dead', r.stdout)
        out = json.loads(self.home.ctl('--json', 'wait', '--timeout', '30', check=False).stdout)
        self.assertEqual((out['done'], out['dead'], out['unfinished']), (1, 1, 0))
        # a job far longer than any wait below: a wait that outlived its
        # --timeout 0.5 would take 120 s, so the bound can leave a slow
        # machine (or a sanitizer build) all the time it needs
        slow = self.home.ctl_json('noop', '--sleep-ms', '120000')['first_id']
        t0 = time.time()
        r = self.home.ctl('wait', '--timeout', '0.5', slow, check=False)
        self.assertEqual(r.returncode, 124)
        self.assertLess(time.time() - t0, 20 * SLOW)
        self.assertEqual(self.home.ctl('wait', '999999', check=False).returncode, 2)
        self.assertEqual(self.home.ctl('wait', 'abc', check=False).returncode, 2)
        self.home.ctl('cancel', slow)
        self.assertEqual(self.home.ctl('wait', '--timeout', '10', slow).returncode, 0)
        del bad

    def test_jobs_show_cancel_retry(self):
        # daemon down: jobs stay queued where we can look at them
        a = self.home.ctl_json('noop', '--count', '3')
        first = a['first_id']
        table = self.home.ctl('jobs').stdout.splitlines()
        self.assertTrue(table[0].split()[:3] == ['id', 'kind', 'state'])
        self.assertEqual(len(table), 4)
        self.assertEqual([j['id'] for j in self.home.ctl_json('jobs', '--state', 'queued')], [first + 2, first + 1,
                                                                                             first])
        self.assertEqual(self.home.ctl_json('jobs', '--state', 'done'), [])
        self.assertEqual(len(self.home.ctl_json('jobs', '--limit', '1')), 1)
        self.assertEqual(self.home.ctl('jobs', '--state', 'bogus', check=False).returncode, 2)
        c = self.home.ctl_json('cancel', first)
        self.assertEqual((c['was'], c['state']), ('queued', 'cancelled'))
        r = self.home.ctl('cancel', first, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('already cancelled', r.stderr)
        shown = self.home.ctl_json('show', first)
        self.assertEqual(shown['job']['state'], 'cancelled')
        self.assertEqual([e['to'] for e in shown['events']], ['queued', 'cancelled'])
        self.assertEqual(shown['job']['args'], {'sleep_ms': 0})
        text = self.home.ctl('show', 'job', first).stdout
        self.assertIn('events:', text)
        self.assertIn('cancelled by dfewctl', text)
        self.home.ctl('retry', first)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', first), 'queued')
        r = self.home.ctl('retry', first, check=False)
        self.assertIn('still queued', r.stderr)
        self.assertEqual(self.home.ctl('show', '424242', check=False).returncode, 1)
        self.assertEqual(self.home.ctl('show', 'banana', '1', check=False).returncode, 2)
        self.home.start()
        self.home.ctl('wait', '--timeout', '30')
        r = self.home.ctl('retry', first, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('is done', r.stderr)

    def test_movies_clips_show_movie_and_status(self):
        self.home.start()
        out = self.home.ctl_json('submit', video('single_face.mp4'))
        self.home.ctl('wait', '--timeout', '60')
        movie = out['files'][0]['movie_id']
        table = self.home.ctl('movies').stdout
        self.assertIn('640x360', table)
        self.assertIn('single_face.mp4', table)
        mj = self.home.ctl_json('movies')
        self.assertEqual(mj[0]['frame_count'], 72)
        sm = self.home.ctl_json('show', 'movie', movie)
        self.assertEqual(sm['movie']['probe_state'], 'done')
        self.assertEqual(len(sm['jobs']), 1)
        self.assertEqual(sm['clips'], [])
        self.assertIn('no clips yet', self.home.ctl('clips').stdout)
        self.assertEqual(self.home.ctl_json('clips'), [])
        st = self.home.ctl_json('status')
        self.assertEqual(st['daemon']['pid'], self.home.proc.pid)
        self.assertEqual(st['queue'], [{'kind': 'probe', 'state': 'done', 'jobs': 1}])
        self.assertEqual(st['movies'][0]['probed'], 1)
        # piped: plain lines, once, no terminal control codes
        plain = self.home.ctl('status').stdout
        self.assertIn('dfewd: running (pid %d)' % self.home.proc.pid, plain)
        self.assertRegex(plain, r'probe\s+0\s+0\s+0\s+1\s+0\s+0')
        self.assertNotIn('\033', plain)
        self.home.stop()
        self.assertIn('not running', self.home.ctl('status').stdout)

    def test_views_answer_documented_queries(self):
        self.home.start()
        self.home.ctl('submit', video('single_face.mp4'))
        self.home.ctl('noop', '--fail', 'permanent')
        self.home.ctl('wait', '--timeout', '60', check=False)
        rows = self.home.query('SELECT kind, state, jobs FROM queue_summary ORDER BY kind')
        self.assertEqual([(r['kind'], r['state'], r['jobs']) for r in rows], [('noop', 'dead', 1), ('probe', 'done', 1)])
        log = self.home.query("SELECT to_state FROM job_log WHERE kind = 'probe' ORDER BY event_id")
        self.assertEqual([r['to_state'] for r in log], ['queued', 'leased', 'done'])
        r = subprocess.run(['sqlite3', self.home.db_path, 'SELECT width, height, frame_count FROM movie_status'],
                           capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), '640|360|72')

    def test_control_socket_is_private(self):
        self.home.start()
        mode = stat.S_IMODE(os.stat(self.home.sock).st_mode)
        self.assertEqual(mode, 0o600)
        self.assertTrue(stat.S_ISSOCK(os.stat(self.home.sock).st_mode))
        self.assertEqual(stat.S_IMODE(os.stat(self.home.dir).st_mode) & 0o077, 0)

    def test_idle_daemon_uses_no_cpu(self):
        self.home.start()
        self.home.ctl('noop')
        self.home.ctl('wait', '--timeout', '30')
        time.sleep(0.5)

        def ticks():
            with open('/proc/%d/stat' % self.home.proc.pid) as f:
                fields = f.read().split(')')[-1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        before = ticks()
        time.sleep(3)
        # no busy polling: at most a few clock ticks (10 ms each) in 3 s
        self.assertLessEqual(ticks() - before, 3)

    def test_usage_errors(self):
        ctl = os.path.join(BUILD, 'dfewctl')
        r = subprocess.run([ctl, 'frobnicate'], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'frobnicate'", r.stderr)
        r = subprocess.run([ctl, '--help'], capture_output=True, text=True)
        for cmd in ('submit', 'status', 'jobs', 'clips', 'show', 'cancel', 'retry', 'wait'):
            self.assertIn(cmd, r.stdout)
        self.assertEqual(self.home.ctl('submit', check=False).returncode, 2)
        r = self.home.ctl('status', check=False)
        self.assertEqual(r.returncode, 0)  # a fresh home is fine


class ConfigTest(HomeTest):
    config = '[queue]\nmax_attempts = 5\n[batch]\nincoming = %s\n'

    def setUp(self):
        super().setUp()
        self.incoming = os.path.join(self.home.dir, 'incoming')
        os.makedirs(self.incoming)
        self.home.write_config(self.config % self.incoming)

    def test_max_attempts_and_batch_incoming_from_config(self):
        with open(video('single_face.mp4'), 'rb') as f:
            data = f.read()
        with open(os.path.join(self.incoming, 'a.mp4'), 'wb') as f:
            f.write(data)
        with open(os.path.join(self.incoming, 'notes.txt'), 'w') as f:
            f.write('not a video')
        r = self.home.ctl('submit', '--batch')  # no path: [batch] incoming
        self.assertIn('1 queued, 0 already known, 1 skipped', r.stdout)
        self.assertEqual(self.home.scalar("SELECT max_attempts FROM jobs WHERE kind = 'probe'"), 5)
        self.assertEqual(self.home.ctl_json('noop')['count'], 1)
        self.assertEqual(self.home.scalar("SELECT max_attempts FROM jobs WHERE kind = 'noop'"), 5)
        # the nightly run again: nothing new, the text file is still skipped (from the cache)
        with open(os.path.join(self.incoming, 'b.mp4'), 'wb') as f:
            f.write(data + b'another movie')
        r = self.home.ctl('submit', '--batch')
        self.assertIn('1 queued, 1 already known, 1 skipped', r.stdout)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM seen_files'), 3)
        # without [batch] incoming, --batch needs a path
        self.home.write_config('')
        r = self.home.ctl('submit', '--batch', check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn('[batch] incoming', r.stderr)


class SchemaTest(HomeTest):
    def schema_sql(self, name):
        with open(os.path.join(SOURCE, 'schema', name)) as f:
            return f.read()

    def test_old_database_is_migrated_with_its_rows(self):
        # A version-1 database as an older dfew left it, made with the sqlite3 tool.
        sql = self.schema_sql('0001_init.sql') + """
            PRAGMA user_version = 1;
            INSERT INTO movies (sha256, source, path, size_bytes, added_at)
                VALUES ('%s', 'old.mp4', '/nowhere/old.mp4', 5, 1700000000);
            INSERT INTO jobs (kind, movie_id, state, args, created_at, updated_at)
                VALUES ('probe', 1, 'dead', '{}', 1700000000, 1700000000);
        """ % ('b' * 64)
        r = subprocess.run(['sqlite3', self.home.db_path], input=sql, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        movies = self.home.ctl_json('movies')
        self.assertEqual(movies[0]['source'], 'old.mp4')
        self.assertEqual(movies[0]['probe_state'], 'dead')
        version = self.home.scalar('PRAGMA user_version')
        self.assertGreaterEqual(version, 2)
        self.assertEqual(self.home.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'clip_status'"), 1)
        self.assertEqual(self.home.scalar('PRAGMA journal_mode'), 'wal')

    def test_newer_database_is_refused(self):
        # A newer dfew's database, in rollback-journal mode: refused, and not
        # even switched to WAL.
        con = sqlite3.connect(self.home.db_path)
        con.execute('CREATE TABLE future (x)')
        con.execute('PRAGMA user_version = 999')
        con.close()
        r = self.home.ctl('jobs', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('schema version 999', r.stderr)
        self.assertIn('newer dfew', r.stderr)
        d = subprocess.run([os.path.join(BUILD, 'dfewd'), '-f', '--home', self.home.dir], capture_output=True,
                           text=True, timeout=20)
        self.assertNotEqual(d.returncode, 0)
        self.assertIn('newer dfew', d.stderr)
        self.assertEqual(self.home.scalar('PRAGMA user_version'), 999)  # untouched
        self.assertEqual(self.home.scalar('PRAGMA journal_mode'), 'delete')


if __name__ == '__main__':
    main()
