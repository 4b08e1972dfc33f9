"""Integration: submit real videos to a real dfewd and check the probe facts
recorded in the database against what ffprobe reports for them."""
import os
import shutil

from dfewtest import DEBIAN_HELLO, HomeTest, main, need_file, video


class ProbeTest(HomeTest):
    def probe_row(self, movie_id):
        return self.home.query('SELECT * FROM movie_status WHERE movie_id = ?', movie_id)[0]

    def submit_and_wait(self, *paths):
        out = self.home.ctl_json('submit', *paths)
        self.home.ctl('wait', '--timeout', '60')
        return out

    def test_single_face(self):
        self.home.start()
        out = self.submit_and_wait(video('single_face.mp4'))
        self.assertEqual(out['queued'], 1)
        m = self.probe_row(out['files'][0]['movie_id'])
        self.assertEqual(m['probe_state'], 'done')
        self.assertEqual((m['width'], m['height']), (640, 360))
        self.assertAlmostEqual(m['avg_fps'], 30.0, places=3)
        self.assertAlmostEqual(m['real_fps'], 30.0, places=3)
        self.assertEqual(m['frame_count'], 72)
        self.assertEqual(m['video_codec'], 'h264')
        self.assertIn('mp4', m['container'])
        self.assertAlmostEqual(m['duration_s'], 2.4, places=2)
        self.assertEqual(m['rotation'], 0)
        self.assertEqual(len(m['sha256']), 64)

    def test_debian_sample_and_hamilton(self):
        hello = need_file(DEBIAN_HELLO, 'Debian package forensics-samples-files')
        self.home.start()
        out = self.submit_and_wait(hello, video('short_hamilton_clip.mp4'), video('no_face.mp4'))
        ids = {os.path.basename(f['path']): f['movie_id'] for f in out['files']}
        m = self.probe_row(ids['movie-hello.mp4'])
        # ffprobe -count_frames: 249 frames (250 packets, one discarded by the edit list)
        self.assertEqual((m['width'], m['height'], m['frame_count']), (1280, 720, 249))
        self.assertAlmostEqual(m['real_fps'], 30.0, places=3)
        self.assertAlmostEqual(m['avg_fps'], 2500 / 83, places=3)
        self.assertAlmostEqual(m['start_time_s'], 0.033008, places=4)
        h = self.probe_row(ids['short_hamilton_clip.mp4'])
        self.assertEqual((h['width'], h['height'], h['frame_count']), (640, 360, 275))
        self.assertAlmostEqual(h['start_time_s'], 0.852, places=3)
        self.assertAlmostEqual(h['avg_fps'], 29.97, places=2)
        n = self.probe_row(ids['no_face.mp4'])
        self.assertEqual((n['width'], n['height'], n['frame_count']), (960, 540, 95))

    def test_same_content_twice_is_not_duplicated(self):
        src = video('single_face.mp4')
        copy = os.path.join(self.home.dir, 'renamed copy.mkv')
        shutil.copy(src, copy)
        self.home.start()
        a = self.submit_and_wait(src)
        b = self.home.ctl_json('submit', src, copy)
        self.assertEqual(b['queued'], 0)
        self.assertEqual(b['known'], 2)
        self.assertEqual({f['movie_id'] for f in b['files']}, {a['files'][0]['movie_id']})
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), 1)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM jobs'), 1)
        text = self.home.ctl('submit', copy).stdout
        self.assertIn('known', text)
        self.assertIn('same content as', text)

    def test_directory_recognises_videos_by_content(self):
        d = os.path.join(self.home.dir, 'incoming')
        os.makedirs(os.path.join(d, 'nested', 'deeper'))
        shutil.copy(video('single_face.mp4'), os.path.join(d, 'nested', 'deeper', 'clip.dat'))
        with open(os.path.join(d, 'movie.mp4'), 'w') as f:
            f.write('not a video, despite the name\n')
        with open(os.path.join(d, 'notes.txt'), 'w') as f:
            f.write('hello\n')
        self.home.start()
        out = self.submit_and_wait(d)
        self.assertEqual(out['queued'], 1)
        self.assertEqual(out['skipped'], 2)
        self.assertTrue(out['files'][0]['path'].endswith('clip.dat'))
        self.assertEqual(self.home.scalar("SELECT frame_count FROM movies"), 72)

    def test_submit_while_daemon_down(self):
        out = self.home.ctl_json('submit', video('single_face.mp4'))
        self.assertIs(out['daemon_running'], False)
        job = out['files'][0]['job_id']
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'queued')
        text = self.home.ctl('submit', video('no_face.mp4')).stdout
        self.assertIn('dfewd is not running', text)
        self.home.start()
        self.home.ctl('wait', '--timeout', '60', job)
        self.assertEqual(self.home.trail(job), ['queued', 'leased', 'done'])
        self.assertEqual(self.home.scalar('SELECT width FROM movies WHERE id = ?', out['files'][0]['movie_id']), 640)


if __name__ == '__main__':
    main()
