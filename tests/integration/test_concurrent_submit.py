"""Integration: 200 dfewctl submit processes at once, each with a distinct
real video (a copy of single_face.mp4 with a distinct trailer, so its
SHA-256 differs): 200 movies recorded, none lost, each probed once."""
import os
import subprocess

from dfewtest import BUILD, HomeTest, SLOW, main, video

N = 200


class ConcurrentSubmitTest(HomeTest):
    def test_200_concurrent_submits(self):
        with open(video('single_face.mp4'), 'rb') as f:
            data = f.read()
        d = os.path.join(self.home.dir, 'movies')
        os.makedirs(d)
        paths = []
        for i in range(N):
            p = os.path.join(d, 'movie-%03d.mp4' % i)
            with open(p, 'wb') as f:
                f.write(data + b'\ndfew concurrent test %d\n' % i)
            paths.append(p)
        self.home.start()
        ctl = os.path.join(BUILD, 'dfewctl')
        procs = [subprocess.Popen([ctl, '--home', self.home.dir, '--json', 'submit', p], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for p in paths]
        failures = []
        for p, proc in zip(paths, procs):
            out, err = proc.communicate(timeout=300 * SLOW)
            if proc.returncode != 0 or '"queued":1' not in out:
                failures.append((p, proc.returncode, out, err))
        self.assertEqual(failures, [])
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), N)
        self.assertEqual(self.home.scalar('SELECT count(DISTINCT sha256) FROM movies'), N)
        self.assertEqual(self.home.scalar("SELECT count(*) FROM jobs WHERE kind = 'probe'"), N)
        self.assertEqual(sorted(r['path'] for r in self.home.query('SELECT path FROM movies')), sorted(paths))
        self.home.ctl('wait', '--timeout', str(300 * SLOW))
        self.assertEqual(self.home.scalar("SELECT count(*) FROM jobs WHERE state = 'done'"), N)
        self.assertEqual(self.home.scalar("SELECT count(*) FROM events WHERE to_state = 'done'"), N)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies WHERE frame_count = 72'), N)
        # resubmitting everything at once adds nothing
        out = self.home.ctl_json('submit', d)
        self.assertEqual((out['queued'], out['known']), (0, N))
        self.assertEqual(self.home.scalar('SELECT count(*) FROM jobs'), N)


if __name__ == '__main__':
    main()
