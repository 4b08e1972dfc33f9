"""Integration: a long clip scanned in time ranges, one thread each (issue 12,
"use the cores when the queue is short"; workers/prep_ranges.c), through a
real dfewd on real footage.

Two homes with one worker (a job alone gets every core), whole-movie clips,
[prep] min_face_ratio = 0 (every clip keeps its faces.bin): one with
`[prep] range_min = 1s`, so that even these short test videos are split,
one with `range_min = 0` (never split: the decoding thread beside the
tracker). On four testdata videos (a 256x256 speaker, a 640x360 webcam
speaker, multi-shot stage footage whose face comes and goes, 1080p footage
of 2-4 people walking):

- the split home's prep jobs ran in 2 or more ranges (2 at the start; a
  range that finishes first lets another split again), the other's in 1;
- the same frames (count and times) and the same usable decision;
- the subject's per-frame face decisions agree on at least 99.5 % of the
  frames, and where both find it the landmarks are within 2 % of the
  inter-ocular distance on average (issue 12's fidelity figures);
- one person stays one track across the join: on the one-speaker videos
  the split clip has the unsplit clip's tracks and its face in every frame;
  on every video, wherever both find the subject it is the same face (the
  boxes overlap by more than half), and no clip's subject box ever jumps
  between detections, across misses too;
- the join keeps the tracker's gap rule: two real speakers side by side
  (test_subject's composite), the larger one hidden from 1.6 to 2.4 s, the
  range boundary at 2.0 s: with the default track_gap (0.5 s) he is not
  taken up again after the hidden stretch (one scan would not), so the
  clip's subject has no face after it.

The split home gives each job 2 threads (`[daemon] threads_per_job = 2`),
so it runs 2 ranges on any machine of 2 or more cores.
`[daemon] threads_per_job = 1` (every job one thread) leaves a long clip in
one range whatever range_min says. With range_min = 0 a clip's faces.bin is
the same bytes on one thread and on two."""
import math
import os
import subprocess
import unittest

from dfewtest import SLOW, Home, main, video
from test_prep import read_faces
from test_subject import centre, composite, jumps

WHOLE = '[segment]\nmode = whole\n[prep]\nmin_face_ratio = 0\nkeep_aligned = no\n'
VIDEOS = ['mead_eamm/surprised.mp4', 'single_face.mp4', 'short_hamilton_clip.mp4', 'crowd_1080p.mp4']
ONE_SPEAKER = ['mead_eamm/surprised.mp4', 'single_face.mp4']


def iod(pts):
    """Distance between the eye centres (points 36-41 and 42-47)."""
    lx = sum(pts[2 * i] for i in range(36, 42)) / 6
    ly = sum(pts[2 * i + 1] for i in range(36, 42)) / 6
    rx = sum(pts[2 * i] for i in range(42, 48)) / 6
    ry = sum(pts[2 * i + 1] for i in range(42, 48)) / 6
    return math.hypot(rx - lx, ry - ly)


def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    i = w * h
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)


class RangesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if len(os.sched_getaffinity(0)) < 2:
            raise unittest.SkipTest('one core: a clip is never split (os.sched_getaffinity)')
        cls.paths = [video(v) for v in VIDEOS]
        cls.split = cls.run_home('[prep]\nrange_min = 1s\n[daemon]\nthreads_per_job = 2\n')
        cls.whole = cls.run_home('[prep]\nrange_min = 0\n')

    @classmethod
    def run_home(cls, extra):
        home = Home(config=WHOLE + extra, workers=1, prep=True)
        try:
            home.start()
            home.ctl_json('submit', *cls.paths)
            home.ctl('wait', '--timeout', str(600 * SLOW), timeout=700 * SLOW)
            rows = home.query("SELECT m.path, c.state, c.output_dir, c.frames_total, c.frames_face, "
                              "json_extract(j.result, '$.ranges') AS ranges, "
                              "json_extract(j.result, '$.tracks') AS tracks, "
                              "json_extract(j.result, '$.threads') AS threads "
                              "FROM clip_status c JOIN movies m ON m.id = c.movie_id "
                              "JOIN jobs j ON j.kind = 'prep' AND j.clip_id = c.clip_id")
            out = {}
            for r in rows:
                others = []
                r['faces'] = read_faces(os.path.join(r['output_dir'], 'faces.bin'), others)
                r['others'] = others
                out[os.path.realpath(r['path'])] = r
            home.stop()
        finally:
            home.cleanup()
        return out

    def pair(self, name):
        p = os.path.realpath(video(name))
        return self.split[p], self.whole[p]

    def test_split_into_ranges_only_when_asked(self):
        for name in VIDEOS:
            s, w = self.pair(name)
            self.assertEqual(s['threads'], 2, name)
            # 2 at the start; a range that finishes first frees a thread, and
            # the other then splits again when it has twice range_min to go
            self.assertGreaterEqual(s['ranges'], 2, name)
            self.assertEqual(w['ranges'], 1, name)

    def test_same_frames_and_usable_decision(self):
        for name in VIDEOS:
            s, w = self.pair(name)
            self.assertEqual(s['frames_total'], w['frames_total'], name)
            self.assertEqual([r['t'] for r in s['faces'][1]], [r['t'] for r in w['faces'][1]], name)
            self.assertEqual(s['state'], w['state'], name)

    def test_same_faces(self):
        agree = total = 0
        dists = []
        for name in VIDEOS:
            s, w = self.pair(name)
            a = b = 0
            for rs, rw in zip(s['faces'][1], w['faces'][1]):
                total += 1
                agree += rs['found'] == rw['found']
                a += rs['found'] == rw['found']
                b += 1
                if rs['found'] and rw['found']:
                    d = iod(rw['pts'])
                    if d > 0:
                        dists.append(sum(math.hypot(rs['pts'][2 * i] - rw['pts'][2 * i],
                                                    rs['pts'][2 * i + 1] - rw['pts'][2 * i + 1])
                                         for i in range(68)) / 68 / d)
            print('\n  %s: %d of %d subject decisions the same; faces %d split, %d whole'
                  % (name, a, b, s['frames_face'], w['frames_face']))
        mean = 100 * sum(dists) / len(dists)
        print('  all: %.2f %% of %d the same; landmarks %.3f %% IOD on average' % (100 * agree / total, total, mean))
        self.assertGreaterEqual(agree / total, 0.995)
        self.assertGreater(len(dists), 500)
        self.assertLessEqual(mean, 2.0)

    def test_one_person_stays_one_track(self):
        for name in ONE_SPEAKER:
            s, w = self.pair(name)
            self.assertEqual(s['tracks'], w['tracks'], name)
            self.assertEqual(s['frames_face'], s['frames_total'], name)
        for name in VIDEOS:
            s, w = self.pair(name)
            both = [(rs, rw) for rs, rw in zip(s['faces'][1], w['faces'][1]) if rs['found'] and rw['found']]
            other = [rs['index'] for rs, rw in both if iou(rs['box'], rw['box']) <= 0.5]
            self.assertGreater(len(both), 0, name)
            self.assertEqual(other, [], '%s: the split clip follows another face than the unsplit one' % name)
            self.assertEqual(jumps(s['faces'][1]), [], '%s: the subject jumps' % name)


class GapAcrossTheJoinTest(unittest.TestCase):

    def test_hidden_across_the_join_is_not_taken_up(self):
        home = Home(config=WHOLE + '[prep]\nrange_min = 1s\nsubject = largest_first\ndetect_interval = 0.5s\n'
                    '[daemon]\nthreads_per_job = 2\n', workers=1, prep=True)
        self.addCleanup(home.cleanup)
        path = os.path.join(home.dir, 'hidden.mp4')
        composite(path, hide=(1.6, 2.4))
        home.start()
        home.ctl_json('submit', path)
        home.ctl('wait', '--timeout', str(300 * SLOW), timeout=400 * SLOW)
        r = home.query("SELECT c.output_dir, json_extract(j.result, '$.ranges') AS ranges FROM clip_status c "
                       "JOIN jobs j ON j.kind = 'prep' AND j.clip_id = c.clip_id")[0]
        home.stop()
        self.assertGreaterEqual(r['ranges'], 2)  # the first two meet at 2.0 s (later splits cut the second)
        others = []
        _, recs = read_faces(os.path.join(r['output_dir'], 'faces.bin'), others)
        found = [f for f in recs if f['found']]
        print('\n  subject in %d of %d frames, last at %.2f s' % (len(found), len(recs), found[-1]['t']))
        self.assertGreaterEqual(len(found), 30)
        self.assertTrue(all(centre(f['box'])[0] < 480 for f in found), 'a frame of the other speaker')
        self.assertTrue(all(f['t'] < 1.6 for f in found), 'the hidden speaker taken up again across the join')
        self.assertGreaterEqual(len({o['track'] for o in others}), 2, 'the speaker again after the gap is a new track')


class ShareGrowsTest(unittest.TestCase):
    """A long clip that starts while another job holds the other worker:
    its prep job starts with dfewd's share for it (half the cores) in that
    many ranges; when the other job ends, the share grows and the range with
    the most left gives its second half to a new range."""

    def test_a_range_splits_when_the_share_grows(self):
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest('one core: the share never grows (os.sched_getaffinity)')
        home = Home(config=WHOLE + '[prep]\nrange_min = 1s\n', workers=2, prep=True)
        self.addCleanup(home.cleanup)
        # the four MEAD clips one after another (34.9 s, 872 frames, one face
        # each, cuts between them), twice their size in a 1280x720 frame
        path = os.path.join(home.dir, 'mead4_720p.mp4')
        names = ['happy', 'fear', 'disgusted', 'surprised']
        cmd = ['ffmpeg', '-nostdin', '-v', 'error', '-y']
        for n in names:
            cmd += ['-i', video('mead_eamm/%s.mp4' % n)]
        cmd += ['-filter_complex', ''.join('[%d:v]' % i for i in range(4)) + 'concat=n=4:v=1:a=0,scale=512:512,'
                'pad=1280:720:600:100[v]', '-map', '[v]', '-an', '-c:v', 'libx264', '-preset', 'ultrafast',
                '-pix_fmt', 'yuv420p', path]
        subprocess.run(cmd, check=True)
        home.start()
        # the other job first, running before the clip's prep job starts
        noop = home.ctl_json('noop', '--sleep-ms', '1500')['first_id']
        home.wait_for(lambda: home.scalar('SELECT state FROM jobs WHERE id = ?', noop) in ('leased', 'done'), 60,
                      'the noop job to start')
        home.ctl_json('submit', path)
        home.ctl('wait', '--timeout', str(600 * SLOW), timeout=700 * SLOW)
        r = home.query("SELECT c.state, c.frames_total, c.output_dir, j.started_at, "
                       "json_extract(j.result, '$.ranges') AS ranges, json_extract(j.result, '$.threads') AS threads "
                       "FROM clip_status c JOIN jobs j ON j.kind = 'prep' AND j.clip_id = c.clip_id")[0]
        noop_end = home.scalar('SELECT finished_at FROM jobs WHERE id = ?', noop)
        log = home.log()
        home.stop()
        print('\n  prep started with %d thread(s), ended in %d ranges' % (r['threads'], r['ranges']))
        self.assertLess(r['started_at'], noop_end, 'the prep job started after the other job ended')
        self.assertLess(r['threads'], len(os.sched_getaffinity(0)), 'the prep job started with every core')
        self.assertGreater(r['ranges'], r['threads'], 'no range split off when the share grew')
        self.assertIn("the job's share of the cores grew", log)
        self.assertEqual((r['state'], r['frames_total']), ('usable', 872))
        _, recs = read_faces(os.path.join(r['output_dir'], 'faces.bin'), [])
        found = [f for f in recs if f['found']]
        self.assertGreaterEqual(len(found), 0.99 * 872, 'the subject in too few frames')
        # one person per MEAD clip: the subject never jumps inside one
        cuts = [0, 141, 359, 562, 872]
        for a, b in zip(cuts, cuts[1:]):
            self.assertEqual(jumps([f for f in recs if a <= f['index'] < b]), [], 'the subject jumps')


class OneThreadTest(unittest.TestCase):

    def test_one_thread_a_job_is_one_range(self):
        home = Home(config=WHOLE + '[prep]\nrange_min = 1s\n[daemon]\nthreads_per_job = 1\n', workers=1, prep=True)
        self.addCleanup(home.cleanup)
        home.start()
        home.ctl_json('submit', video('mead_eamm/surprised.mp4'))
        home.ctl('wait', '--timeout', str(300 * SLOW), timeout=400 * SLOW)
        r = home.query("SELECT json_extract(result, '$.ranges') AS ranges, "
                       "json_extract(result, '$.threads') AS threads FROM jobs WHERE kind = 'prep'")[0]
        self.assertEqual((r['threads'], r['ranges']), (1, 1))
        home.stop()


class RepeatableTest(unittest.TestCase):
    """range_min = 0 (never split) is the documented way to bit-identical
    re-runs (docs/formats.md): the same clip gives the same faces.bin on one
    thread and on two (a decoding thread beside the tracker, whole-frame
    searches split over two detectors). Multi-shot footage with two faces."""

    def faces_bin(self, extra):
        home = Home(config=WHOLE + '[prep]\nrange_min = 0\n' + extra, workers=1, prep=True)
        self.addCleanup(home.cleanup)
        home.start()
        home.ctl_json('submit', video('short_hamilton_clip.mp4'))
        home.ctl('wait', '--timeout', str(300 * SLOW), timeout=400 * SLOW)
        r = home.query("SELECT c.output_dir, json_extract(j.result, '$.threads') AS threads, "
                       "json_extract(j.result, '$.ranges') AS ranges FROM clip_status c "
                       "JOIN jobs j ON j.kind = 'prep' AND j.clip_id = c.clip_id")[0]
        with open(os.path.join(r['output_dir'], 'faces.bin'), 'rb') as f:
            data = f.read()
        home.stop()
        return r['threads'], r['ranges'], data

    def test_no_split_same_faces_bin_on_any_threads(self):
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest('one core: a job never gets two threads (os.sched_getaffinity)')
        t1, r1, one = self.faces_bin('[daemon]\nthreads_per_job = 1\n')
        t2, r2, two = self.faces_bin('[daemon]\nthreads_per_job = 2\n')
        self.assertEqual((t1, r1, t2, r2), (1, 1, 2, 1))
        self.assertGreater(len(one), 64, 'faces.bin has no records')
        self.assertEqual(one, two, 'faces.bin differs between one thread and two with range_min = 0')


if __name__ == '__main__':
    main()
