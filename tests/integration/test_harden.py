"""Integration: the defects of issue 13 (hardening), each against a real
dfewd or dfewctl: a movie file overwritten between submit and probe, a
symbolic link planted at dfewctl's temporary output name, the database's
file modes, finished results while another process holds the database,
config files that cannot be read or are ambiguous, and label files that are
not UTF-8 or hold huge fields."""
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import threading
import time

from dfewtest import BUILD, SLOW, HomeTest, main, video
from labeltest import add_clips, add_movies, init_db, write_text


class HardenTest(HomeTest):
    config = '[queue]\nretry_base_seconds = 0.2\nretry_max_seconds = 0.5\n'

    def test_file_changed_between_submit_and_probe(self):
        x = os.path.join(self.home.dir, 'x.mp4')
        shutil.copy(video('single_face.mp4'), x)
        first = self.home.ctl_json('submit', x)['files'][0]
        # overwritten with another video before dfewd runs
        shutil.copy(video('no_face.mp4'), x)
        self.home.start()
        r = self.home.ctl('wait', '--timeout', '60', check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        job = self.home.query('SELECT * FROM jobs WHERE id = ?', first['job_id'])[0]
        self.assertEqual(job['state'], 'dead')
        self.assertIn('changed since it was submitted', job['error'])
        self.assertEqual(job['attempts'], 1, 'a changed file is not retried')
        movie = self.home.query('SELECT * FROM movies WHERE id = ?', first['movie_id'])[0]
        self.assertIsNone(movie['probed_at'])
        self.assertIsNone(movie['width'], 'no probe facts of the other file')
        # the first video, submitted again from elsewhere, is probed from there
        y = os.path.join(self.home.dir, 'y.mp4')
        shutil.copy(video('single_face.mp4'), y)
        again = self.home.ctl_json('submit', y)['files'][0]
        self.assertEqual(again['movie_id'], first['movie_id'])
        self.home.ctl('wait', '--timeout', '60')
        movie = self.home.query('SELECT * FROM movies WHERE id = ?', first['movie_id'])[0]
        self.assertEqual((movie['path'], movie['width'], movie['frame_count']), (y, 640, 72))
        # and what x.mp4 holds now is a movie of its own
        third = self.home.ctl_json('submit', x)['files'][0]
        self.assertNotEqual(third['movie_id'], first['movie_id'])
        self.home.ctl('wait', '--timeout', '60')
        self.assertEqual(self.home.scalar('SELECT path FROM movies WHERE id = ?', third['movie_id']), x)

    def test_touched_file_with_the_same_content_is_probed(self):
        x = os.path.join(self.home.dir, 'x.mp4')
        shutil.copy(video('single_face.mp4'), x)
        first = self.home.ctl_json('submit', x)['files'][0]
        os.utime(x, (1, 1))  # a new mtime, the same bytes: the hash decides
        self.home.start()
        self.home.ctl('wait', '--timeout', '60')
        self.assertEqual(self.home.scalar('SELECT frame_count FROM movies WHERE id = ?', first['movie_id']), 72)

    def test_sheet_does_not_follow_a_planted_link(self):
        rel = os.path.join(self.home.dir, 'release')
        os.makedirs(os.path.join(rel, 'Annotation'))
        write_text(os.path.join(rel, 'Annotation/annotation.csv'),
                   'vote_happy,vote_sad,vote_neutral,vote_angry,vote_surprise,vote_disgust,vote_fear,clip_name,'
                   'annotation\n8,1,1,0,0,0,0,1,1\n')
        frames = os.path.join(rel, 'Clip/clip_112x112_16f/00001')
        os.makedirs(frames)
        subprocess.run(['ffmpeg', '-loglevel', 'error', '-i', video('single_face.mp4'), '-vf', 'scale=112:112',
                        '-frames:v', '16', os.path.join(frames, '%d.jpg')], check=True)
        self.home.ctl('import', 'dfew', rel, '--no-tensors')
        target = os.path.join(self.home.dir, 'target')
        write_text(target, 'precious\n')
        out = os.path.join(self.home.dir, 'sheet.png')
        # the link at the name dfewctl used to write first (OUT.tmp-<its pid>): exec keeps the pid
        r = subprocess.run(['sh', '-c', 'ln -s "$1" "$2.tmp-$$" && exec "$3" --home "$4" sheet 1 -o "$2"', 'sh',
                            target, out, os.path.join(BUILD, 'dfewctl'), self.home.dir],
                           capture_output=True, text=True, timeout=120 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(target) as f:
            self.assertEqual(f.read(), 'precious\n')
        with open(out, 'rb') as f:
            self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')
        self.assertFalse(os.path.islink(out))
        # only the planted link is left beside it, no temporary of ours
        left = sorted(n for n in os.listdir(self.home.dir) if n.startswith('sheet.png.tmp-'))
        self.assertEqual(len(left), 1)
        self.assertTrue(os.path.islink(os.path.join(self.home.dir, left[0])))

    def test_database_files_are_private(self):
        os.umask(0o022)
        self.home.ctl('noop')
        self.home.start()
        self.home.ctl('wait', '--timeout', '30')
        for name in ('dfew.db', 'dfew.db-wal', 'dfew.db-shm'):
            p = os.path.join(self.home.dir, name)
            self.assertTrue(os.path.exists(p), name)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600, name)

    def test_results_survive_a_long_writer(self):
        self.home.write_config('[queue]\nlease_seconds = 3\nsweep_seconds = 0.5\n')
        self.home.start()
        job = self.home.ctl_json('noop', '--sleep-ms', '500')['first_id']
        self.home.wait_for(lambda: self.home.scalar('SELECT state FROM jobs WHERE id = ?', job) == 'leased', 10,
                           'the job to start')
        con = sqlite3.connect(self.home.db_path, timeout=30, isolation_level=None)
        con.execute('BEGIN IMMEDIATE')  # what a long `labels import` does
        try:
            held = time.time()
            answered_while_kept = 0
            while time.time() - held < 8:  # longer than the lease and than dfewd's busy timeout
                kept = 'kept until the database is free' in self.home.log()
                self.assertTrue(self.home.ping(), 'dfewd answers while the database is held')
                # a loop blocked on the database would answer nothing between keeping the
                # result and the writer's COMMIT (an order of events, not a time limit)
                answered_while_kept += kept
                time.sleep(0.2)
        finally:
            con.execute('COMMIT')
            con.close()
        self.assertGreaterEqual(answered_while_kept, 1, 'no ping answered while the result waited for the database')
        self.home.wait_for(lambda: self.home.scalar('SELECT state FROM jobs WHERE id = ?', job) == 'done', 20,
                           'the result to be recorded')
        row = self.home.query('SELECT * FROM jobs WHERE id = ?', job)[0]
        self.assertEqual(row['attempts'], 1, self.home.log()[-3000:])
        self.assertEqual(self.home.trail(job), ['queued', 'leased', 'done'])
        self.assertNotIn('the lease will expire and the job run again', self.home.log())
        self.assertIn('kept until the database is free', self.home.log())

    def test_unreadable_config(self):
        self.home.write_config('[queue]\nmax_attempts = 7\n')
        self.home.start()
        conf = os.path.join(self.home.dir, 'dfew.conf')
        os.rename(conf, conf + '.away')
        os.mkdir(conf)  # a directory where dfew.conf should be
        self.home.proc.send_signal(signal.SIGHUP)
        self.home.wait_for(lambda: 'config not reloaded' in self.home.log(), 10, 'the reload to be refused')
        self.assertIn('keeping the current one', self.home.log())
        self.assertIn('Is a directory', self.home.log())
        self.assertNotIn('config reloaded', self.home.log())
        self.assertTrue(self.home.ping())
        self.home.stop()
        r = subprocess.run([os.path.join(BUILD, 'dfewd'), '--foreground', '--home', self.home.dir],
                           capture_output=True, text=True, timeout=30 * SLOW)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('dfew.conf', r.stderr + r.stdout)
        os.rmdir(conf)
        # a key set twice, a comment longer than a line buffer
        for text, msg in (('[queue]\nmax_attempts = 4\n\n[queue]\nmax_attempts = 5\n',
                           ":5: 'max_attempts' in [queue] is set twice, on line 2 and on line 5"),
                          ('[queue]\n# ' + 'x' * 4094 + ' max_attempts = 9\n', ':2: the line is 4113 bytes long')):
            write_text(conf, text)
            r = subprocess.run([os.path.join(BUILD, 'dfewd'), '--foreground', '--home', self.home.dir],
                               capture_output=True, text=True, timeout=30 * SLOW)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(msg, r.stderr + r.stdout)

    def test_labels_must_be_utf8_and_short(self):
        init_db(self.home)
        movie = add_movies(self.home, 1)[0]
        clip = add_clips(self.home, [{'movie': movie}])[0]
        bad = os.path.join(self.home.dir, 'votes.csv')
        with open(bad, 'wb') as f:
            f.write(b'clip,annotator,emotion\n%d,anna,happy\n%d,M\xfcller,sad\n' % (clip, clip))
        r = self.home.ctl('labels', 'import', bad, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('votes.csv:3: not UTF-8 at column 4 (byte 0xfc)', r.stderr)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM votes'), 0)
        with open(bad, 'wb') as f:
            f.write(b'clip,annotator,emotion\n%d,%s,happy\n' % (clip, b'a' * (10 << 20)))
        r = self.home.ctl('labels', 'import', bad, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('votes.csv:2: the line is', r.stderr)
        with open(bad, 'wb') as f:
            f.write(b'clip,annotator,emotion\n%d,%s,happy\n' % (clip, b'a' * 200))
        r = self.home.ctl('labels', 'import', bad, check=False)
        self.assertIn('votes.csv:2: the annotator name is 200 bytes long, more than 128', r.stderr)
        with open(bad, 'wb') as f:
            f.write('clip,annotator,emotion\n{},Müller,sad\n'.format(clip).encode())
        self.home.ctl('labels', 'import', bad)
        self.assertEqual(self.home.scalar('SELECT annotator FROM votes'), 'Müller')

    def test_paths_must_be_utf8(self):
        """Movie paths for submit and a release's path for import dfew go into
        the database as text: one that is not UTF-8 (a Latin-1 file name) is
        refused with a clear message and nothing is stored."""
        init_db(self.home)
        latin1 = os.fsdecode(b'M\xfcller')  # what a Latin-1 system names Müller
        folder = os.path.join(self.home.dir, 'movies')
        os.makedirs(folder)
        movie = os.path.join(folder, latin1 + '.mp4')
        with open(movie, 'wb') as f:  # refused on its name, before its content is looked at
            f.write(b'\0' * 4096)
        r = self.home.ctl('submit', movie, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn('movies/M\\xfcller.mp4: the path is not valid UTF-8 (byte 0xfc at character', r.stderr)
        self.assertIn('rename it', r.stderr)
        # found in a folder
        r = self.home.ctl('--json', 'submit', folder, check=False)
        self.assertNotEqual(r.returncode, 0)
        out = json.loads(r.stdout)
        errors = [f for f in out['files'] if f['status'] == 'error']
        self.assertTrue(any(f['path'].endswith('movies/M\\xfcller.mp4') and 'not valid UTF-8' in f['detail']
                            for f in errors), out)
        # a folder above it that is not UTF-8
        above = os.path.join(self.home.dir, latin1)
        os.makedirs(above)
        with open(os.path.join(above, 'ok.mp4'), 'wb') as f:
            f.write(b'\0' * 4096)
        r = self.home.ctl('submit', os.path.join(above, 'ok.mp4'), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('not valid UTF-8', r.stderr)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), 0)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM jobs'), 0)
        # import dfew of a release under a Latin-1 name, checked before its files
        release = os.path.join(self.home.dir, 'DFEW-' + latin1)
        os.makedirs(os.path.join(release, 'Annotation'))
        r = self.home.ctl('import', 'dfew', release, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('DFEW-M\\xfcller: the path is not valid UTF-8 (byte 0xfc at character', r.stderr)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), 0)


if __name__ == '__main__':
    main()
