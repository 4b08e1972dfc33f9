"""Integration: the fast face search against detection on every whole frame
([prep] detect = every_frame, the fidelity reference), through real prep
jobs on HD footage, where the fast mode's shortcuts matter most:

- crowd_1080p.mp4 (several small faces, people walking),
- single_face.mp4 scaled to 1920x1080 with ffmpeg (one 540 px face: so
  large that its search window is resampled from the picture in one step
  instead of through dlib's pyramid, see media/dlibc/dlibc.h).

Per clip: the subject's per-frame face decisions agree on at least 99.5 %
of the frames, the usable decision is the same, and where both found the
face the landmarks are on average within 2 % of the eye distance. (The
same on the low-resolution test videos, exactly, is tests/unit/test_track.c.)"""
import os
import subprocess
import unittest

from dfewtest import Home, main, prep_clip_list, video
from test_prep import read_faces


def eye_distance(p):
    lx = sum(p[2 * i] for i in range(36, 42)) / 6
    ly = sum(p[2 * i + 1] for i in range(36, 42)) / 6
    rx = sum(p[2 * i] for i in range(42, 48)) / 6
    ry = sum(p[2 * i + 1] for i in range(42, 48)) / 6
    return ((lx - rx) ** 2 + (ly - ry) ** 2) ** 0.5


class FastAgainstEveryFrame(unittest.TestCase):

    def prep(self, movie, clips, detect):
        c = prep_clip_list(self, movie, clips, 'detect = %s\n' % detect, timeout=600)[1][0]
        self.assertEqual(c['detect_mode'], detect)
        return c, read_faces(os.path.join(c['output_dir'], 'faces.bin'))[1]

    def compare(self, name, movie, clips):
        ref, rrec = self.prep(movie, clips, 'every_frame')
        fast, frec = self.prep(movie, clips, 'fast')
        self.assertEqual(len(rrec), len(frec))
        agree = sum(a['found'] == b['found'] for a, b in zip(rrec, frec)) / len(rrec)
        dists = []
        for a, b in zip(rrec, frec):
            if a['found'] and b['found']:
                d = sum(((a['pts'][2 * k] - b['pts'][2 * k]) ** 2 + (a['pts'][2 * k + 1] - b['pts'][2 * k + 1]) ** 2)
                        ** 0.5 for k in range(68)) / 68
                dists.append(d / eye_distance(a['pts']))
        mean = sum(dists) / len(dists) if dists else 0
        print('\n  %s: %d frames; subject in %d (every frame, %d whole-frame searches) / %d (fast, %d); agree %.2f %%, '
              'landmarks %.3f %% of the eye distance' % (name, len(rrec), ref['frames_face'], ref['searches'],
                                                         fast['frames_face'], fast['searches'], 100 * agree,
                                                         100 * mean))
        self.assertGreaterEqual(agree, 0.995)
        self.assertEqual(ref['frames_face'] * 2 >= len(rrec), fast['frames_face'] * 2 >= len(frec))
        self.assertLessEqual(mean, 0.02)
        self.assertLess(fast['searches'], ref['searches'] / 4)

    def test_crowd(self):
        self.compare('crowd_1080p 0-1.6 s', video('crowd_1080p.mp4'), '0,1.6\n')

    def test_large_face(self):
        home = Home()
        self.addCleanup(home.cleanup)
        path = os.path.join(home.dir, 'face1080.mp4')
        subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-y', '-i', video('single_face.mp4'), '-vf',
                        'scale=1920:1080', '-frames:v', '30', '-an', '-c:v', 'libx264', '-preset', 'veryfast',
                        '-pix_fmt', 'yuv420p', path], check=True)
        self.compare('single_face at 1920x1080 (540 px face)', path, '0,1\n')


if __name__ == '__main__':
    main()
