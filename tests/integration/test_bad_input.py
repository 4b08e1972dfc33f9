"""Integration: bad inputs get a clear reason, nothing half-recorded, and the
daemon keeps serving: zero-byte file, text named .mp4, truncated mp4, a
missing path, a directory without videos, a still image, a non-video of
Debian's (the dog video is a good video: it must probe fine)."""
import os
import shutil

from dfewtest import DEBIAN_DOG, HomeTest, SOURCE, TESTDATA, main, need_file, video


class BadInputTest(HomeTest):
    def make(self, name, data):
        p = os.path.join(self.home.dir, name)
        with open(p, 'wb') as f:
            f.write(data)
        return p

    def dead_error(self, job_id):
        row = self.home.query('SELECT state, error, attempts FROM jobs WHERE id = ?', job_id)[0]
        self.assertEqual(row['state'], 'dead', row)
        # permanent problems are not retried
        self.assertEqual(row['attempts'], 1, row)
        return row['error']

    def test_bad_files_fail_clearly_and_daemon_keeps_serving(self):
        good = video('single_face.mp4')
        with open(good, 'rb') as f:
            data = f.read()
        zero = self.make('zero.mp4', b'')
        text = self.make('text.mp4', b'This is a text file, not a movie.\n' * 20)
        trunc = self.make('truncated.mp4', data[:len(data) // 3])
        self.home.start()
        out = self.home.ctl_json('submit', zero, text, trunc)
        self.assertEqual(out['queued'], 3)
        jobs = {os.path.basename(f['path']): f['job_id'] for f in out['files']}
        r = self.home.ctl('wait', '--timeout', '60', check=False)
        self.assertEqual(r.returncode, 1, 'wait must report the dead jobs')
        self.assertIn('3 dead', r.stdout)
        err = self.dead_error(jobs['zero.mp4'])
        self.assertIn('empty (0 bytes)', err)
        self.assertIn('zero.mp4', err)
        err = self.dead_error(jobs['text.mp4'])
        self.assertIn('cannot read it as a video', err)
        err = self.dead_error(jobs['truncated.mp4'])
        self.assertRegex(err, 'damaged|truncated')
        self.assertIn('moov atom not found', err)
        # Nothing half-recorded: no probe facts for the bad movies.
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies WHERE probed_at IS NOT NULL'), 0)
        # The reason shows where a user looks.
        shown = self.home.ctl('movies').stdout
        self.assertIn('empty (0 bytes)', shown)
        # Still serving: a good video right after.
        g = self.home.ctl_json('submit', good)
        self.home.ctl('wait', '--timeout', '60', g['files'][0]['job_id'])
        self.assertEqual(self.home.scalar('SELECT frame_count FROM movies WHERE id = ?', g['files'][0]['movie_id']),
                         72)
        self.assertIsNone(self.home.proc.poll())

    def test_missing_path_and_empty_directory(self):
        self.home.start()
        missing = os.path.join(self.home.dir, 'no-such-movie.mp4')
        r = self.home.ctl('submit', missing, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no-such-movie.mp4', r.stderr)
        self.assertIn('no such file', r.stderr)
        empty = os.path.join(self.home.dir, 'empty-dir')
        os.makedirs(os.path.join(empty, 'sub'))
        self.make('empty-dir/sub/readme.txt', b'hello')
        r = self.home.ctl('submit', empty, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no videos found', r.stderr)
        self.assertIn('1 file looked at', r.stderr)
        # nothing recorded
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), 0)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM jobs'), 0)
        # only http(s) URLs are fetched; other schemes are refused with a reason
        r = self.home.ctl('submit', 'ftp://example.org/movie.mkv', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('URL', r.stderr)
        self.assertTrue(self.home.ping())

    def test_still_image_and_mixed_arguments(self):
        img = os.path.join(TESTDATA, 'images', 'obama.jpg')
        need_file(img, 'shared test data')
        self.home.start()
        out = self.home.ctl_json('submit', img, video('single_face.mp4'), os.path.join(self.home.dir, 'nope.mp4'),
                                 check=False)
        self.assertEqual(out['queued'], 2)
        self.assertEqual(out['errors'], 1)
        jobs = {os.path.basename(f['path']): f.get('job_id') for f in out['files']}
        self.home.ctl('wait', '--timeout', '60', check=False)
        self.assertIn('still image', self.dead_error(jobs['obama.jpg']))
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', jobs['single_face.mp4']), 'done')

    def test_debian_dog_video_probes(self):
        dog = need_file(DEBIAN_DOG, 'Debian package forensics-samples-files')
        self.home.start()
        out = self.home.ctl_json('submit', dog)
        self.home.ctl('wait', '--timeout', '60')
        m = self.home.query('SELECT * FROM movies WHERE id = ?', out['files'][0]['movie_id'])[0]
        self.assertEqual((m['width'], m['height'], m['frame_count']), (1920, 1080, 41))

    def test_moved_file_fails_with_hint(self):
        src = os.path.join(self.home.dir, 'movie.mp4')
        shutil.copy(video('single_face.mp4'), src)
        out = self.home.ctl_json('submit', src)  # daemon down: the job waits
        os.unlink(src)
        self.home.start()
        self.home.ctl('wait', '--timeout', '60', check=False)
        err = self.dead_error(out['files'][0]['job_id'])
        self.assertIn('moved or deleted', err)


if __name__ == '__main__':
    main()
