"""Integration: the prep job end to end through a real dfewd, on real videos
and Debian's dlib model. Each video is processed once per home (dlib costs
16-65 ms a frame), and several tests look at the result:

- [segment] mode = whole: each movie is one clip;
- single_face.mp4: 72 decoded frames, 72 face frames, usable, 16 aligned
  frames (PNG == clip.u8), faces.bin with every frame;
- no_face.mp4: unusable, face ratio 0, no output directory;
- short_hamilton_clip.mp4: 275 decoded frames; the performer's face in the
  shot between the cuts at frames 82 and 211 (0-based), another person's
  after the cut at 211: one subject, so 120..126 face frames (under 50 %),
  unusable, and the other face is not counted;
- mead_eamm/happy.mp4 (256x256): 141 of 141 face frames;
- the aligned frames, detected and landmarked again, put the eye centres on
  the template's (every test video);
- --clips: exact frame counts per clip, bad lists (a clip past the movie's
  end too) are refused whole; JPEG, 224 px, linear, 8 frames;
- a worker killed mid-clip leaves no partial output; the retry writes the
  same bytes as an undisturbed run;
- dfewctl sheet writes a PNG contact sheet."""
import glob
import json
import os
import signal
import struct
import subprocess
import time
import unittest

from dfewtest import BUILD, SLOW, Home, SharedHomeTest, main, video

FACES_PNG = os.path.join(BUILD, 'bench', 'dfew-faces-png')
WHOLE = '[segment]\nmode = whole\n'
TEMPLATE = [(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041)]


def read_faces(path, others=None):
    """faces.bin -> (header dict, list of records); layout in docs/formats.md.
    others: a list that receives the other faces' entries."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'DFEWFACE', data[:8]
    version, hsize, rsize, nland, w, h, n, start, end, subject, nothers = struct.unpack_from('<IIIIIIQddII', data, 8)
    assert (version, hsize, rsize, nland) == (2, 64, 584, 68)
    assert len(data) == hsize + n * rsize + 32 * nothers, 'faces.bin size does not match its record counts'
    for i in range(nothers):
        o = hsize + n * rsize + 32 * i
        idx, track = struct.unpack_from('<II', data, o)
        box = struct.unpack_from('<4f', data, o + 8)
        if others is not None:
            others.append(dict(index=idx, track=track, box=box))
    recs = []
    for i in range(n):
        o = hsize + i * rsize
        idx, flags, t = struct.unpack_from('<IId', data, o)
        box = struct.unpack_from('<4f', data, o + 16)
        score, nfaces = struct.unpack_from('<fI', data, o + 32)
        pts = struct.unpack_from('<136f', data, o + 40)
        recs.append(dict(index=idx, found=bool(flags & 1), t=t, box=box, score=score, faces=nfaces, pts=pts))
    return dict(width=w, height=h, records=n, start=start, end=end, subject=subject, others=nothers), recs


def read_tensor(path):
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'DFEWCLIP', data[:8]
    version, hsize, t, h, w, c = struct.unpack_from('<IIIIII', data, 8)
    assert (version, hsize) == (1, 32)
    assert len(data) == hsize + t * h * w * c
    return (t, h, w, c), data[hsize:]


def decode_images(paths, size):
    """The images' pixels as RGB24 bytes, decoded by the ffmpeg command line."""
    out = b''
    for p in paths:
        out += subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-i', p, '-f', 'rawvideo', '-pix_fmt', 'rgb24',
                               '-'], check=True, capture_output=True).stdout
    return out


def eye_errors(images, size):
    """Re-detects each aligned frame; per frame the distance of each eye
    centre (mean of points 36-41, 42-47) from the template's, in pixels."""
    r = subprocess.run([FACES_PNG, '--json'] + images, check=True, capture_output=True, text=True, timeout=120 * SLOW)
    scale = size / 112.0
    errs = []
    for line in r.stdout.splitlines():
        o = json.loads(line)
        assert o['faces'], 'no face found again in the aligned frame %s' % o['file']
        face = max(o['faces'], key=lambda f: (f['box'][2] - f['box'][0]))
        p = face['points']
        frame = []
        for k, (lo, hi) in enumerate([(36, 42), (42, 48)]):
            x = sum(p[i][0] for i in range(lo, hi)) / 6
            y = sum(p[i][1] for i in range(lo, hi)) / 6
            frame.append(((x - TEMPLATE[k][0] * scale) ** 2 + (y - TEMPLATE[k][1] * scale) ** 2) ** 0.5)
        errs.append(frame)
    assert len(errs) == len(images)
    return errs


class PrepPipelineTest(SharedHomeTest):
    """One home, three videos, each prepared once (setUpClass)."""

    @classmethod
    def setUpClass(cls):
        # each movie one whole clip (segmentation has its own test, test_segment.py)
        cls.home = Home(config=WHOLE, workers=2, prep=True)
        cls.videos = {}
        try:
            names = ['single_face.mp4', 'no_face.mp4', 'short_hamilton_clip.mp4', 'mead_eamm/happy.mp4']
            paths = [video(n) for n in names]
            cls.home.start()
            t0 = time.time()
            out = cls.submit_and_wait(*paths)
            cls.elapsed = time.time() - t0
            for f in out['files']:
                cls.videos[os.path.basename(f['path'])] = f['movie_id']
        except Exception:
            cls.home.cleanup()
            raise

    def clip(self, name):
        rows = self.home.query('SELECT * FROM clip_status s JOIN clip_prep p USING (clip_id) WHERE s.movie_id = ?',
                               self.videos[name])
        self.assertEqual(len(rows), 1, 'one whole-movie clip per movie without a clip list')
        return rows[0]

    def test_jobs_chain_and_views(self):
        jobs = self.home.query("SELECT kind, state, count(*) AS n FROM jobs GROUP BY kind, state ORDER BY kind")
        self.assertEqual([(j['kind'], j['state'], j['n']) for j in jobs], [('prep', 'done', 4), ('probe', 'done', 4)])
        for name in self.videos:
            c = self.clip(name)
            self.assertEqual(c['start_s'], 0)
            self.assertEqual(c['job_state'], 'done')
            for k in ('prep_s', 'decode_s', 'detect_s', 'frames_per_s'):
                self.assertGreater(c[k], 0, k)
            self.assertIsNotNone(c['prepped'])
        # the prep job's arguments are the whole recipe, fixed when it was queued
        args = json.loads(self.home.scalar("SELECT args FROM jobs WHERE kind = 'prep' LIMIT 1"))
        for k in ('path', 'clip_id', 'start_s', 'end_s', 'out_dir', 'frames', 'size', 'min_face_ratio', 'interp',
                  'image_format', 'template', 'template_size', 'landmark_model', 'upsample'):
            self.assertIn(k, args)
        self.assertEqual((args['frames'], args['size'], args['interp'], args['image_format']), (16, 112, 'tim', 'png'))
        m = self.home.query('SELECT usable_clips, clips FROM movie_status WHERE movie_id = ?',
                            self.videos['single_face.mp4'])[0]
        self.assertEqual((m['clips'], m['usable_clips']), (1, 1))
        print('\n  four videos (583 frames) prepared in %.1f s with 2 workers' % self.elapsed)

    def test_single_face(self):
        c = self.clip('single_face.mp4')
        self.assertEqual((c['frames_total'], c['frames_face'], c['state']), (72, 72, 'usable'))
        self.assertEqual(c['face_ratio'], 1.0)
        self.assertEqual((c['out_frames'], c['out_size']), (16, 112))
        d = c['output_dir']
        self.assertEqual(d, os.path.join(self.home.dir, 'outputs', 'clips', str(c['clip_id'])))
        pngs = sorted(glob.glob(os.path.join(d, '*.png')))
        self.assertEqual([os.path.basename(p) for p in pngs], ['%02d.png' % i for i in range(1, 17)])
        self.assertEqual(sorted(os.listdir(d)),
                         sorted([os.path.basename(p) for p in pngs] + ['aligned.u8', 'faces.bin', 'clip.u8']))
        # every aligned face frame before interpolation, in time order, one tensor
        shape, aligned = read_tensor(os.path.join(d, 'aligned.u8'))
        self.assertEqual(shape, (72, 112, 112, 3))
        # the 16 interpolated frames come from them: TIM keeps the first and the last frame
        _, tim = read_tensor(os.path.join(d, 'clip.u8'))
        frame = 112 * 112 * 3
        self.assertEqual(tim[:frame], aligned[:frame])
        self.assertEqual(tim[-frame:], aligned[-frame:])
        shape, pixels = read_tensor(os.path.join(d, 'clip.u8'))
        self.assertEqual(shape, (16, 112, 112, 3))
        self.assertEqual(decode_images(pngs, 112), pixels, 'the PNG frames and clip.u8 hold the same pixels')
        hdr, recs = read_faces(os.path.join(d, 'faces.bin'))
        self.assertEqual((hdr['width'], hdr['height'], hdr['records']), (640, 360, 72))
        self.assertEqual([r['index'] for r in recs], list(range(72)))
        self.assertTrue(all(r['found'] and r['faces'] == 1 for r in recs))
        self.assertAlmostEqual(recs[0]['t'], 0.0, places=6)
        self.assertAlmostEqual(recs[71]['t'], 71 / 30, places=6)
        for r in recs:  # about 180 px boxes; the landmarks on the face (the chin may reach below the box)
            x0, y0, x1, y1 = r['box']
            m = 0.25 * (x1 - x0)
            self.assertTrue(120 < x1 - x0 < 260, r['box'])
            xs, ys = r['pts'][0::2], r['pts'][1::2]
            self.assertTrue(x0 - m < min(xs) and max(xs) < x1 + m and y0 - m < min(ys) and max(ys) < y1 + m,
                            (r['box'], min(xs), max(xs), min(ys), max(ys)))

    def test_export_as_dfew_release(self):
        # prepared clips + votes -> the DFEW release layout, frames from the prep outputs
        c, h = self.clip('single_face.mp4'), self.clip('happy.mp4')
        votes = os.path.join(self.home.dir, 'votes.csv')
        with open(votes, 'w') as f:
            f.write('clip,happy,sad,neutral,angry,surprise,disgust,fear\n%d,8,0,2,0,0,0,0\n%d,0,7,3,0,0,0,0\n'
                    % (c['clip_id'], h['clip_id']))
        self.home.ctl('labels', 'import', votes)
        self.home.ctl('folds', 'make', '--k', '2', '--name', 'e2e')
        out = os.path.join(self.home.dir, 'release')
        self.home.ctl('export', '--format', 'dfew', out)
        for clip in (c, h):
            name = '%05d' % clip['clip_id']
            aligned = sorted(os.listdir(os.path.join(out, 'Clip', 'clip_112x112', name)))
            self.assertEqual(aligned, ['%s_%05d.jpg' % (name, i) for i in range(1, clip['frames_face'] + 1)])
            tim = sorted(os.listdir(os.path.join(out, 'Clip', 'clip_112x112_16f', name)), key=lambda s: int(s[:-4]))
            self.assertEqual(tim, ['%d.jpg' % i for i in range(1, 17)])
        with open(os.path.join(out, 'EmoLabel_DataSplit', 'test(single-labeled)', 'set_1.csv')) as f:
            self.assertEqual(f.readline().strip(), 'video_name,label')
            self.assertEqual(len(f.readlines()), 1)
        import shutil
        shutil.rmtree(out)

    def test_no_face(self):
        c = self.clip('no_face.mp4')
        self.assertEqual((c['state'], c['frames_total'], c['frames_face'], c['face_ratio']), ('unusable', 95, 0, 0))
        self.assertIsNone(c['output_dir'])
        self.assertIn('below the minimum of 50%', c['reason'])
        self.assertFalse(os.path.exists(os.path.join(self.home.dir, 'outputs', 'clips', str(c['clip_id']))))

    def test_hamilton(self):
        c = self.clip('short_hamilton_clip.mp4')
        self.assertEqual(c['frames_total'], 275)
        # the performer, frames 83..211 (1-based) less a few the detector misses;
        # the face after the cut at 211 is somebody else's and is not counted
        self.assertGreaterEqual(c['frames_face'], 120)
        self.assertLessEqual(c['frames_face'], 126)
        self.assertEqual(c['state'], 'unusable')
        self.assertIn('one subject of 2 faces followed', c['reason'])
        self.assertIn('below the minimum of 50%', c['reason'])
        self.assertIsNone(c['output_dir'])
        print('\n  hamilton: the performer in %d of 275 frames' % c['frames_face'])

    def test_mead(self):
        c = self.clip('happy.mp4')
        self.assertEqual((c['frames_total'], c['frames_face'], c['state']), (141, 141, 'usable'))
        others = []
        hdr, recs = read_faces(os.path.join(c['output_dir'], 'faces.bin'), others)
        self.assertEqual((hdr['width'], hdr['height'], hdr['subject'], hdr['others']), (256, 256, 0, 0))
        self.assertTrue(all(r['found'] for r in recs))

    def test_eye_centres_on_template(self):
        report = []
        for name in ('single_face.mp4', 'happy.mp4'):
            c = self.clip(name)
            pngs = sorted(glob.glob(os.path.join(c['output_dir'], '*.png')))
            errs = eye_errors(pngs, 112)
            mean = [sum(e[k] for e in errs) / len(errs) for k in (0, 1)]
            worst = max(max(e) for e in errs)
            report.append('%s: mean eye error %.2f / %.2f px (left/right), worst frame %.2f px'
                          % (name, mean[0], mean[1], worst))
            # the five-point fit leaves residuals of its own (up to ~6 px on a frame), so
            # the template must hold on average; no frame may be far off
            self.assertLess(max(mean), 3.0, report[-1])
            self.assertLess(worst, 6.0, report[-1])
        print('\n  ' + '\n  '.join(report))

    def test_sheet(self):
        c = self.clip('single_face.mp4')
        out = os.path.join(self.home.dir, 'sheet.png')
        r = self.home.ctl_json('sheet', c['clip_id'], '-o', out)
        self.assertEqual((r['sampled_frames'], r['aligned_frames']), (8, 16))
        size = subprocess.run(['ffprobe', '-v', 'error', '-show_entries', 'stream=width,height,codec_name', '-of',
                               'json', out], check=True, capture_output=True, text=True).stdout
        s = json.loads(size)['streams'][0]
        self.assertEqual((s['codec_name'], s['width'], s['height']), ('png', r['width'], r['height']))
        self.assertFalse(glob.glob(out + '.tmp-*'))
        u = self.clip('no_face.mp4')
        r = self.home.ctl('sheet', u['clip_id'], '-o', os.path.join(self.home.dir, 'nf.png'))
        self.assertIn('unusable', r.stderr)
        r = self.home.ctl('sheet', 999, '-o', out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no such clip', r.stderr)

    def test_kill_mid_clip_then_retry_writes_the_same_files(self):
        ref = self.clip('single_face.mp4')['output_dir']
        h = Home(config=WHOLE, workers=1, prep=True)
        try:
            h.start()
            h.ctl('submit', video('single_face.mp4'))
            clips = os.path.join(h.dir, 'outputs', 'clips')
            victim = None
            end = time.time() + 120 * SLOW
            while victim is None and time.time() < end:
                for tmp in glob.glob(os.path.join(clips, '.tmp-*')):
                    fb = os.path.join(tmp, 'faces.bin')
                    if os.path.exists(fb) and os.path.getsize(fb) >= 64 + 584 * 10:
                        victim = tmp
                time.sleep(0.01)
            self.assertIsNotNone(victim, 'the prep job never got 10 frames into the clip')
            pid = int(victim.rsplit('-', 1)[1])
            os.kill(pid, signal.SIGKILL)
            final = os.path.join(clips, '1')
            self.assertFalse(os.path.exists(final), 'a killed job left output under the final name')
            h.ctl('wait', '--timeout', str(120 * SLOW))
            c = h.query('SELECT * FROM clip_status WHERE clip_id = 1')[0]
            self.assertEqual((c['state'], c['frames_face'], c['job_state']), ('usable', 72, 'done'))
            job = h.query("SELECT id, attempts FROM jobs WHERE kind = 'prep'")[0]
            self.assertEqual(job['attempts'], 2)
            self.assertIn('queued', h.trail(job['id'])[2:], 'the killed attempt went back to the queue')
            self.assertEqual(sorted(os.listdir(clips)), ['1'], 'temporary directories are gone')
            def tree(d):
                return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)
            names = tree(ref)
            self.assertEqual(tree(final), names)
            self.assertIn('aligned.u8', names)
            for n in names:
                with open(os.path.join(ref, n), 'rb') as a, open(os.path.join(final, n), 'rb') as b:
                    self.assertEqual(a.read(), b.read(), '%s differs from an undisturbed run' % n)
            h.stop()
        finally:
            h.cleanup()


class ClipListTest(unittest.TestCase):
    """dfewctl submit MOVIE --clips LIST, with a non-default [prep] recipe."""

    def setUp(self):
        # whole_movie = no (the harness default): a clip list works without it
        self.home = Home(config='[prep]\nimage_format = jpg\nsize = 224\ninterp = linear\nframes = 8\n', workers=2)

    def tearDown(self):
        if self.home.proc is not None:
            self.home.stop()
        self.home.cleanup()

    def write(self, name, text):
        p = os.path.join(self.home.dir, name)
        with open(p, 'w') as f:
            f.write(text)
        return p

    def test_bad_lists_are_refused_whole(self):
        sf = video('single_face.mp4')
        cases = [('0,1\n2,1\n', ':2: the end (1 s) must be after the start (2 s)'),
                 ('0,1\n1,2\n0,1.0\n', ':3: the same clip as line 1'),
                 ('start,end\n0,1\nsoon,2\n', ":3: expected 'start,end'"),
                 ('0,1\n-1,2\n', ":2: expected 'start,end'"),
                 ('0:61,1:10\n', ":1: expected 'start,end'"),
                 ('0x1,2\n', ":1: expected 'start,end'"),          # hex
                 ('1e-320,1\n', ":1: expected 'start,end'"),       # an exponent
                 ('0,1\n2,inf\n', ":2: expected 'start,end'"),
                 ('abc,def\n', ":1: expected 'start,end'"),        # not a header: it names no columns
                 ('start,end\n# ' + 'x' * 2000 + '\n0,1\n', ':2: a line longer than 1024 bytes'),
                 ('# only a comment\n', 'no clips in the list')]
        for text, msg in cases:
            r = self.home.ctl('submit', sf, '--clips', self.write('bad.csv', text), check=False)
            self.assertEqual(r.returncode, 2, text)
            self.assertIn(msg, r.stderr)
        # a refused list adds nothing: not even the database is created
        self.assertFalse(os.path.exists(self.home.db_path))
        r = self.home.ctl('submit', sf, video('no_face.mp4'), '--clips', self.write('ok.csv', '0,1\n'), check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn('exactly one movie file', r.stderr)

    def test_clips_exact_frames_jpeg_224_linear(self):
        sf = video('single_face.mp4')
        r = self.home.ctl('submit', sf, '--clips', self.write('past.csv', '0,0.5\n2.2,3.5\n'), check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn(':2: the clip 2.2 to 3.5 s ends after the movie (2.400 s)', r.stderr)
        cuts = self.write('cuts.csv', 'start,end\n0,0.5   # the first half second\n00:00:01.000,00:00:01.500\n\n')
        out = self.home.ctl_json('submit', sf, '--clips', cuts)
        self.assertEqual((out['clips_added'], out['prep_jobs_queued']), (2, 0), 'prep jobs wait for the probe')
        self.home.start()
        self.home.ctl('wait', '--timeout', str(300 * SLOW))
        rows = self.home.query('SELECT * FROM clip_status ORDER BY start_s')
        self.assertEqual([(r['start_s'], r['end_s']) for r in rows], [(0, 0.5), (1, 1.5)])
        # 30 fps from t = 0: [0, 0.5) and [1, 1.5) hold exactly 15 frames each
        self.assertEqual([(r['state'], r['frames_total'], r['frames_face']) for r in rows],
                         [('usable', 15, 15), ('usable', 15, 15)])
        self.assertEqual(self.home.scalar("SELECT count(*) FROM jobs WHERE kind = 'prep'"), 2)
        d = rows[1]['output_dir']
        jpgs = sorted(glob.glob(os.path.join(d, '*.jpg')))
        self.assertEqual([os.path.basename(p) for p in jpgs], ['%02d.jpg' % i for i in range(1, 9)])
        shape, pixels = read_tensor(os.path.join(d, 'clip.u8'))
        self.assertEqual(shape, (8, 224, 224, 3))
        hdr, recs = read_faces(os.path.join(d, 'faces.bin'))
        self.assertEqual(hdr['records'], 15)
        self.assertAlmostEqual(recs[0]['t'], 1.0, places=6)
        self.assertAlmostEqual(recs[14]['t'], 1 + 14 / 30, places=6)
        self.assertEqual((hdr['start'], hdr['end']), (1.0, 1.5))
        # JPEG is lossy: close to the tensor, not equal
        jpeg = decode_images(jpgs, 224)
        diff = sum(abs(a - b) for a, b in zip(jpeg, pixels)) / len(pixels)
        self.assertLess(diff, 4.0)
        errs = eye_errors(jpgs, 224)
        mean = [sum(e[k] for e in errs) / len(errs) for k in (0, 1)]
        self.assertLess(max(mean), 6.0, 'eye centres at 224 px: %s' % mean)
        # the same movie again with another list: known and probed, so its prep jobs are queued at once
        out = self.home.ctl_json('submit', sf, '--clips', self.write('more.csv', '0.5,0.6\n0,0.5\n'))
        self.assertEqual((out['known'], out['clips_added'], out['prep_jobs_queued']), (1, 1, 1))
        self.home.ctl('wait', '--timeout', str(300 * SLOW))
        self.assertEqual(self.home.scalar('SELECT frames_total FROM clips WHERE start_s = 0.5'), 3)


if __name__ == '__main__':
    main()
