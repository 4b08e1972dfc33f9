"""Integration: dfewd shares the cores among the jobs it runs (issue 12,
"use the cores when the queue is short"), with a real dfewd and real prep
jobs.

- A long whole-movie clip that runs alone gets every core (its result's
  `threads`); when a second movie arrives while it runs, dfewd shrinks its
  share (SIGRTMIN to its worker; the result's `threads_min`), and the second
  job starts with its own share: the two never use more threads than cores.
- `[daemon] threads_per_job = 1`: every job on one thread.
- The long clip's faces are the same whatever its share (the decoding
  thread and the split whole-frame searches find the same faces)."""
import os
import subprocess
import time
import unittest

from dfewtest import SLOW, Home, main, video

WHOLE = '[segment]\nmode = whole\n[prep]\nkeep_aligned = no\n'


def cpus():
    return len(os.sched_getaffinity(0))


def long_video(path, seconds=48):
    """single_face.mp4 (2.4 s) looped to `seconds`: one long clip."""
    subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-y', '-stream_loop', '-1', '-i', video('single_face.mp4'),
                    '-t', str(seconds), '-an', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', path],
                   check=True)


class CoresTest(unittest.TestCase):

    def result(self, home, movie_id):
        return home.query("SELECT json_extract(result, '$.threads') AS threads, "
                          "json_extract(result, '$.threads_min') AS threads_min, "
                          "json_extract(result, '$.frames_face') AS faces, "
                          "json_extract(result, '$.frames_total') AS frames FROM jobs "
                          "WHERE kind = 'prep' AND movie_id = ?", movie_id)[0]

    def test_a_long_job_alone_then_shared(self):
        n = cpus()
        if n < 2:
            raise unittest.SkipTest('one core: nothing to share (os.sched_getaffinity)')
        home = Home(config=WHOLE, workers=2, prep=True)
        self.addCleanup(home.cleanup)
        long_path = os.path.join(home.dir, 'long.mp4')
        long_video(long_path)
        home.start()
        a = home.ctl_json('submit', long_path)['files'][0]['movie_id']
        # the long clip's prep job has started, alone (its first progress
        # report, at its first frame, is written at once; the next only a
        # second later, and a fast machine scans the clip in a few seconds)
        home.wait_for(lambda: home.scalar("SELECT count(*) FROM jobs WHERE kind = 'prep' AND state = 'leased' AND "
                                          "movie_id = ? AND progress IS NOT NULL", a), 120 * SLOW,
                      'the long prep job to run')
        b = home.ctl_json('submit', video('mead_eamm/happy.mp4'))['files'][0]['movie_id']
        home.ctl('wait', '--timeout', str(600 * SLOW))
        ra, rb = self.result(home, a), self.result(home, b)
        half = (n + 1) // 2
        print('\n  %d cores: the long job started with %d threads and went down to %d; the second job had %d'
              % (n, ra['threads'], ra['threads_min'], rb['threads']))
        self.assertEqual(ra['threads'], n, 'a job running alone uses every core')
        self.assertLessEqual(ra['threads_min'], half, 'its share did not shrink when a second job started')
        self.assertGreaterEqual(ra['threads_min'], 1)
        self.assertLessEqual(rb['threads'], half)
        self.assertEqual((rb['faces'], rb['frames']), (141, 141))
        # capped at one thread a job: the same faces of the long clip
        home.stop()
        one = Home(config=WHOLE + '[daemon]\nthreads_per_job = 1\n', workers=2, prep=True)
        self.addCleanup(one.cleanup)
        one.start()
        m = one.ctl_json('submit', long_path)['files'][0]['movie_id']
        one.ctl('wait', '--timeout', str(600 * SLOW))
        r1 = self.result(one, m)
        self.assertEqual((r1['threads'], r1['threads_min']), (1, 1))
        self.assertEqual((r1['faces'], r1['frames']), (ra['faces'], ra['frames']))
        one.stop()


if __name__ == '__main__':
    main()
