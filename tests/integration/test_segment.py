"""Integration: movies submitted without a clip list are segmented by a real
dfewd (segment job: shot cuts from FFmpeg's scene score, face tracks from
the tracker the prep job uses, whole-frame searches on few frames), and the
chosen clips are prepared, each following its segment track's face.

- The cuts agree with ffmpeg's own `select='gt(scene,T)'` (computed here with
  the ffmpeg command line), frame for frame: short_hamilton_clip.mp4 (cuts
  at frames 20, 82 and 211) and a synthetic movie with 55 known cuts, at the
  default threshold 0.15 and at 0.3 (where ffmpeg, and we, find no cut in
  the dim hamilton footage).
- short_hamilton_clip.mp4: no clip crosses a cut; clips only where the face
  is (it first shows at frame 83, 1-based); each clip's prep finds the face
  in most of its frames.
- Debian's movie-hello.mp4: clips cover the stretches where dlib sees the
  webcam face in every frame, and the prep job finds the face in the frames
  the segment job did (the same tracker); the dog video and no_face.mp4
  give no clip, with the reason.
- A long synthetic movie (ffmpeg lavfi sources between real MEAD face
  clips, 320x180 at 5 fps, 140 s) with 28 candidate clips keeps 20, spread
  over its length, each inside a face segment.
- dfewctl show movie and sheet movie; the views movie_segments,
  movie_shots, clip_origin.
- Clip lists (no daemon): labels, HH:MM:SS.mmm, overlap (and
  --allow-overlap), rows past the movie's end, all refused whole with the
  line number. The nightly batch: new files once, known content by hash."""
import json
import os
import re
import shutil
import subprocess
import time
import unittest

from dfewtest import DEBIAN_DOG, DEBIAN_HELLO, SLOW, TESTDATA, Home, SharedHomeTest, main, need_file, video

MEAD = ['happy.mp4', 'fear.mp4', 'disgusted.mp4', 'surprised.mp4']
MEAD_FRAMES = {'happy.mp4': 141, 'fear.mp4': 218, 'disgusted.mp4': 203, 'surprised.mp4': 310}
SYN_FPS, SYN_FACES, FACE_FRAMES, FILL_FRAMES = 5, 28, 10, 15


def ffmpeg_cuts(path, threshold):
    """The frames ffmpeg's `select='gt(scene,T)'` picks: [(index, pts_time)].
    A showinfo before the select numbers every decoded frame."""
    r = subprocess.run(['ffmpeg', '-nostdin', '-hide_banner', '-nostats', '-i', path, '-vf',
                        "showinfo,select='gt(scene,%g)',showinfo" % threshold, '-an', '-f', 'null', '-'],
                       capture_output=True, text=True, check=True)
    index, cuts = {}, []
    for m in re.finditer(r'Parsed_showinfo_(\d+) @ \S+\] n: *(\d+) pts: *(-?\d+) pts_time:(-?[0-9.]+)', r.stderr):
        if m.group(1) == '0':
            index[m.group(3)] = int(m.group(2))
        else:
            cuts.append((index[m.group(3)], float(m.group(4))))
    assert index, 'no showinfo output from ffmpeg'
    return cuts


def synthetic_movie(path):
    """28 x (a 3 s lavfi pattern, a 2 s MEAD face clip), 320x180, 5 fps.
    Returns the frame ranges [f0, f1) of the face segments."""
    fill = ['testsrc', 'mandelbrot', 'smptebars', 'color=c=navy', 'rgbtestsrc', 'color=c=olive']
    graph, segs, faces, at = [], [], [], 0
    uses = [sum(1 for i in range(SYN_FACES) if i % 4 == k) for k in range(4)]
    for k in range(4):
        graph.append('[%d:v]fps=%d,scale=180:180,pad=320:180:70:0,setsar=1,format=yuv420p,split=%d%s'
                     % (k, SYN_FPS, uses[k], ''.join('[f%d_%d]' % (k, j) for j in range(uses[k]))))
    for i in range(SYN_FACES):
        src = fill[i % len(fill)]
        src += (':' if '=' in src else '=') + 'size=320x180:rate=%d' % SYN_FPS
        s0 = (i * 7) % 20
        graph.append('%s,trim=start_frame=%d:end_frame=%d,setpts=PTS-STARTPTS,format=yuv420p,setsar=1[s%d]'
                     % (src, s0, s0 + FILL_FRAMES, i))
        k, j = i % 4, i // 4
        start = (j * 2 * FACE_FRAMES) % (MEAD_FRAMES[MEAD[k]] // 5 - FACE_FRAMES)
        graph.append('[f%d_%d]trim=start_frame=%d:end_frame=%d,setpts=PTS-STARTPTS[v%d]'
                     % (k, j, start, start + FACE_FRAMES, i))
        segs += ['[s%d]' % i, '[v%d]' % i]
        at += FILL_FRAMES
        faces.append((at, at + FACE_FRAMES))
        at += FACE_FRAMES
    graph.append('%sconcat=n=%d:v=1:a=0[out]' % (''.join(segs), len(segs)))
    cmd = ['ffmpeg', '-nostdin', '-v', 'error', '-y']
    for name in MEAD:
        cmd += ['-i', video('mead_eamm/' + name)]
    cmd += ['-filter_complex', ';'.join(graph), '-map', '[out]', '-c:v', 'libx264', '-preset', 'ultrafast',
            '-pix_fmt', 'yuv420p', path]
    subprocess.run(cmd, check=True)
    return faces


class SegmentTest(SharedHomeTest):
    """One home, five movies, each segmented once and its clips prepared."""

    @classmethod
    def setUpClass(cls):
        cls.home = Home(workers=2, prep=True)
        try:
            cls.paths = {'hamilton': video('short_hamilton_clip.mp4'), 'no_face': video('no_face.mp4'),
                         'hello': need_file(DEBIAN_HELLO, "Debian's forensics-samples-files"),
                         'dog': need_file(DEBIAN_DOG, "Debian's forensics-samples-files")}
            t0 = time.time()
            cls.paths['synthetic'] = os.path.join(cls.home.dir, 'synthetic.mp4')
            cls.face_segments = synthetic_movie(cls.paths['synthetic'])
            cls.build_s = time.time() - t0
            cls.home.start()
            t0 = time.time()
            names = list(cls.paths)
            out = cls.submit_and_wait(*[cls.paths[n] for n in names])
            cls.elapsed = time.time() - t0
            cls.movie = {n: f['movie_id'] for n, f in zip(names, out['files'])}
        except Exception:
            cls.home.cleanup()
            raise

    def shots(self, name):
        return self.home.query('SELECT * FROM movie_shots WHERE movie_id = ? ORDER BY shot', self.movie[name])

    def clips(self, name):
        return self.home.query('SELECT * FROM clip_origin o JOIN clip_prep p USING (clip_id) '
                               'WHERE o.movie_id = ? ORDER BY o.start_s', self.movie[name])

    def segmentation(self, name):
        return self.home.query('SELECT * FROM movie_segments WHERE movie_id = ?', self.movie[name])[0]

    def test_jobs_and_timing(self):
        jobs = self.home.query("SELECT kind, state, count(*) AS n FROM jobs GROUP BY kind, state ORDER BY kind")
        kinds = {(j['kind'], j['state']): j['n'] for j in jobs}
        self.assertEqual(kinds[('segment', 'done')], 5)
        self.assertEqual(kinds[('probe', 'done')], 5)
        self.assertEqual(set(s for k, s in kinds if k == 'prep'), {'done'})
        total = self.home.scalar("SELECT count(*) FROM clips WHERE origin = 'segment'")
        self.assertEqual(kinds[('prep', 'done')], total, 'one prep job per chosen clip')
        rows = self.home.query("SELECT movie_id, json_extract(result, '$.frames') AS frames, "
                               "json_extract(result, '$.samples') AS samples, json_extract(result, '$.total_s') AS s, "
                               "json_extract(result, '$.searches') AS searches, "
                               "json_extract(result, '$.detect_s') AS det FROM jobs WHERE kind = 'segment'")
        name_of = {v: k for k, v in self.movie.items()}
        for r in rows:
            # every frame is looked at; the whole picture only every second, at cuts, and every
            # 6th frame while no face is followed (the synthetic movie cuts every 2 to 3 s at 5 fps)
            self.assertEqual(r['samples'], r['frames'])
            if name_of[r['movie_id']] not in ('synthetic', 'dog', 'no_face'):
                self.assertLess(r['searches'], r['frames'] / 4, 'the whole frame is searched on few frames')
        print('\n  synthetic movie built in %.1f s; 5 movies segmented and %d clips prepared in %.1f s (2 workers)'
              % (self.build_s, total, self.elapsed))
        for r in sorted(rows, key=lambda r: r['movie_id']):
            print('  %-10s %4d frames, %3d whole-frame searches: segment job %.2f s (faces %.2f s)'
                  % (name_of[r['movie_id']], r['frames'], r['searches'], r['s'], r['det']))

    def check_cuts(self, name, threshold, expect=None):
        cuts = ffmpeg_cuts(self.paths[name], threshold)
        ours = [(s['start_frame'], s['start_s']) for s in self.shots(name)[1:]]
        self.assertEqual(len(ours), len(cuts), '%s: our cuts %s, ffmpeg %s' % (name, ours, cuts))
        worst = 0
        for (f, t), (g, u) in zip(ours, cuts):
            self.assertLessEqual(abs(f - g), 1, '%s: cut at frame %d, ffmpeg at %d' % (name, f, g))
            self.assertAlmostEqual(t, u, delta=0.04)
            worst = max(worst, abs(f - g))
        if expect is not None:
            self.assertEqual([f for f, _ in ours], expect)
        return len(cuts), worst

    def test_cuts_agree_with_ffmpeg(self):
        report = []
        for name in self.movie:
            expect = {'hamilton': [20, 82, 211], 'no_face': [], 'hello': [], 'dog': []}.get(name)
            if name == 'synthetic':
                expect = sorted({a for a, _ in self.face_segments} | {b for _, b in self.face_segments[:-1]})
            n, worst = self.check_cuts(name, 0.15, expect)
            report.append('%s: %d cuts, ffmpeg %d, largest difference %d frames' % (name, n, n, worst))
        print('\n  ' + '\n  '.join(report))

    def test_hamilton(self):
        shots, clips = self.shots('hamilton'), self.clips('hamilton')
        self.assertEqual(len(shots), 4)
        self.assertGreaterEqual(len(clips), 1)
        face_from = shots[2]['start_s']  # frame 82 (0-based): the first with the face
        for c in clips:
            self.assertEqual(c['origin'], 'segment')
            shot = shots[c['shot']]
            # never across a cut: inside its shot
            self.assertGreaterEqual(c['start_s'], shot['start_s'] - 1e-9)
            self.assertLessEqual(c['end_s'], shot['end_s'] + 1e-9)
            self.assertGreaterEqual(c['start_s'], face_from - 1e-9, 'a clip before the face appears')
            self.assertTrue(1.0 - 1e-6 <= c['duration_s'] <= 10.0 + 1e-6)
            self.assertEqual(c['state'], 'usable')
            self.assertGreaterEqual(c['face_ratio'], 0.8, c)
            self.assertEqual(c['duration_bucket'], '0-2s' if c['duration_s'] < 2 else '2-5s' if c['duration_s'] < 5
                             else '5s+')
        # the performer's shot (82..210) is one clip from its first frame
        self.assertAlmostEqual(clips[0]['start_s'], face_from, places=9)
        self.assertEqual(self.segmentation('hamilton')['clips'], len(clips))
        print('\n  hamilton: ' + ', '.join('[%.3f, %.3f) s shot %d face %.2f' % (c['start_s'], c['end_s'], c['shot'],
                                                                                c['face_ratio']) for c in clips))

    def test_hello_clips_cover_the_face(self):
        clips = self.clips('hello')
        self.assertGreaterEqual(len(clips), 1)
        # dlib HOG sees the 73 px webcam face in every frame of 88..145 and
        # 200..248 (0-based; measured on every decoded frame); frame i shows at i / 30 s
        frames = list(range(88, 146)) + list(range(200, 249))
        covered = sum(1 for i in frames if any(c['start_s'] - 1e-3 <= i / 30 < c['end_s'] - 1e-3 for c in clips))
        self.assertGreaterEqual(covered / len(frames), 0.9, '%d of %d face frames in clips' % (covered, len(frames)))
        # the prep job follows the segment track's face: the same frames
        path = self.home.scalar("SELECT json_extract(result, '$.segments') FROM jobs WHERE kind = 'segment' AND "
                                "movie_id = ?", self.movie['hello'])
        with open(path) as f:
            cands = {(round(c['start_s'], 6), round(c['end_s'], 6)): c for c in json.load(f)['candidates']}
        for c in clips:
            self.assertEqual(c['state'], 'usable')
            self.assertGreaterEqual(c['face_ratio'], 0.5, c)
            seg = cands[(round(c['start_s'], 6), round(c['end_s'], 6))]
            self.assertLessEqual(abs(seg['face_samples'] - c['frames_face']), 2, (seg, c))
        print('\n  movie-hello: %s; %d of %d frames of the face stretches covered'
              % (', '.join('[%.2f, %.2f) s face %.2f' % (c['start_s'], c['end_s'], c['face_ratio']) for c in clips),
                 covered, len(frames)))

    def test_no_face_movies_give_no_clip_with_a_reason(self):
        for name in ('dog', 'no_face'):
            s = self.segmentation(name)
            self.assertEqual((s['segment_state'], s['clips'], s['candidates']), ('done', 0, 0))
            self.assertRegex(s['note'], r'^no clip: no face in any of the \d+ frames')
            r = self.home.ctl('show', 'movie', self.movie[name])
            self.assertIn(s['note'], r.stdout)
            print('\n  %s: %s' % (name, s['note']))

    def test_synthetic_movie_keeps_20_spread(self):
        seg, clips, shots = self.segmentation('synthetic'), self.clips('synthetic'), self.shots('synthetic')
        self.assertEqual(len(shots), 2 * SYN_FACES)
        self.assertEqual(seg['candidates'], SYN_FACES, 'each face segment is one candidate')
        self.assertEqual(len(clips), 20, 'at most 20 clips per movie')
        self.assertEqual(seg['clips'], 20)
        frames = shots[-1]['end_frame']
        fps = SYN_FPS
        for c in clips:
            f0, f1 = round(c['start_s'] * fps), round(c['end_s'] * fps)
            self.assertTrue(any(a <= f0 and f1 <= b for a, b in self.face_segments),
                            'clip [%d, %d) is not inside one face segment' % (f0, f1))
            self.assertEqual(c['state'], 'usable')
            self.assertEqual(c['face_ratio'], 1.0)
        # spread: three to five in each fifth of the movie (5 to 6 candidates each), from its first face to its last
        fifths = [0] * 5
        for c in clips:
            fifths[min(4, int((c['start_s'] + c['end_s']) / 2 * fps / frames * 5))] += 1
        self.assertTrue(all(3 <= n <= 5 for n in fifths), fifths)
        self.assertEqual(round(clips[0]['start_s'] * fps), self.face_segments[0][0])
        self.assertEqual(round(clips[-1]['end_s'] * fps), self.face_segments[-1][1])
        kept = [i for i, (a, b) in enumerate(self.face_segments)
                if any(round(c['start_s'] * fps) == a for c in clips)]
        self.assertLessEqual(max(b - a for a, b in zip(kept, kept[1:])), 2, 'never two face segments left out in a row')
        print('\n  synthetic: %d shots, %d candidates, kept face segments %s (per fifth: %s)'
              % (len(shots), seg['candidates'], kept, fifths))

    def test_show_sheet_and_views(self):
        m = self.movie['hamilton']
        out = self.home.ctl_json('show', 'movie', m)
        self.assertEqual([s['shot'] for s in out['shots']], [0, 1, 2, 3])
        self.assertEqual(out['segmentation']['state'], 'done')
        self.assertEqual(len(out['clips']), self.segmentation('hamilton')['clips'])
        self.assertTrue(all(c['origin'] == 'segment' and c['bucket'] in ('0-2s', '2-5s', '5s+') for c in out['clips']))
        text = self.home.ctl('show', 'movie', m).stdout
        self.assertIn('shots:', text)
        self.assertIn('segmentation:', text)
        # the shots' clip counts add up to the movie's
        for name in self.movie:
            self.assertEqual(sum(s['clips'] for s in self.shots(name)), self.segmentation(name)['clips'])
        png = os.path.join(self.home.dir, 'movie.png')
        r = self.home.ctl_json('sheet', 'movie', self.movie['synthetic'], '-o', png)
        self.assertEqual((r['shots'], r['thumbnails'], r['clips']), (2 * SYN_FACES, 2 * SYN_FACES, 20))
        probe = json.loads(subprocess.run(['ffprobe', '-v', 'error', '-show_entries', 'stream=width,height,codec_name',
                                           '-of', 'json', png], check=True, capture_output=True, text=True).stdout)
        s = probe['streams'][0]
        self.assertEqual((s['codec_name'], s['width'], s['height']), ('png', r['width'], r['height']))
        # the clip sheet still takes a bare id, and 'clip ID'
        clip = self.clips('hamilton')[0]['clip_id']
        for args in ([clip], ['clip', clip]):
            self.assertEqual(self.home.ctl_json('sheet', *args, '-o', png)['clip_id'], clip)
        r = self.home.ctl('sheet', 'movie', 999, '-o', png, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no movie 999', r.stderr)
        r = self.home.ctl('sheet', 'shot', 1, '-o', png, check=False)
        self.assertEqual(r.returncode, 2)


class ThresholdTest(unittest.TestCase):
    """The issue's threshold, 0.3: the same cuts as ffmpeg's at 0.3 (none in
    the dim hamilton footage, whose real cuts score 0.20 to 0.25). Faces are
    looked for only at the ends of shots (once an hour otherwise), so this is
    about cuts. A movie submitted with a clip list is not segmented."""

    def test_cuts_at_0_3(self):
        home = Home(config='[segment]\ncut_threshold = 0.3\ndetect_interval = 1h\n', workers=2, prep=True)
        try:
            ham = video('short_hamilton_clip.mp4')
            syn = os.path.join(home.dir, 'synthetic.mp4')
            synthetic_movie(syn)
            lst = os.path.join(home.dir, 'list.csv')
            with open(lst, 'w') as f:
                f.write('0,0.5\n')
            home.ctl('submit', video('single_face.mp4'), '--clips', lst)
            home.start()
            out = home.ctl_json('submit', ham, syn)
            home.ctl('wait', '--timeout', str(300 * SLOW))
            self.assertEqual(home.query("SELECT kind, count(*) AS n FROM jobs WHERE movie_id = 1 GROUP BY kind "
                                        "ORDER BY kind"), [{'kind': 'prep', 'n': 1}, {'kind': 'probe', 'n': 1}])
            for f in out['files']:
                ours = [r['start_frame'] for r in home.query('SELECT start_frame FROM shots WHERE movie_id = ? AND '
                                                             'shot > 0 ORDER BY shot', f['movie_id'])]
                theirs = [i for i, _ in ffmpeg_cuts(f['path'], 0.3)]
                self.assertEqual(ours, theirs)
                if f['path'] == ham:
                    self.assertEqual(ours, [])
                print('\n  %s at 0.3: %d cuts, as ffmpeg' % (os.path.basename(f['path']), len(ours)))
            home.stop()
        finally:
            home.cleanup()


class ClipListTest(unittest.TestCase):
    """--clips validation at submit time (no daemon needed)."""

    def setUp(self):
        self.home = Home(workers=0)

    def tearDown(self):
        self.home.cleanup()

    def write(self, text):
        p = os.path.join(self.home.dir, 'clips.csv')
        with open(p, 'w') as f:
            f.write(text)
        return p

    def test_labels_times_overlap_and_movie_end(self):
        sf = video('single_face.mp4')  # 72 frames at 30 fps: 2.4 s
        bad = [('0,1\n0.5,1.5\n', ':2: the clip 0.5 to 1.5 s overlaps line 1 (0 to 1 s)'),
               ('1,2\n0,1.5,happy\n', ':1: the clip 1 to 2 s overlaps line 2'),
               ('0,1,joyful\n', ":1: unknown label 'joyful'"),
               ('0,1,happy,extra\n', ":1: expected 'start,end' or 'start,end,label'"),
               ('0,1\n00:00:01.000,00:00:02.500\n', ':2: the clip 1 to 2.5 s ends after the movie (2.400 s)')]
        for text, msg in bad:
            r = self.home.ctl('submit', sf, '--clips', self.write(text), check=False)
            self.assertEqual(r.returncode, 2, text)
            self.assertIn(msg, r.stderr)
            self.assertIn('rejected', r.stderr)
        self.assertFalse(os.path.exists(self.home.db_path), 'a refused list adds nothing')
        r = self.home.ctl('submit', sf, '--allow-overlap', check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn('--allow-overlap goes with --clips', r.stderr)
        # a header, labels by name or number, HH:MM:SS.mmm, an empty label
        out = self.home.ctl_json('submit', sf, '--clips', self.write(
            'start,end,label\n0,0.5,happy\n00:00:00.500,00:00:01.000,7\n0:01.5,0:02.25,\n'))
        self.assertEqual(out['clips_added'], 3)
        rows = self.home.query('SELECT start_s, end_s, origin, curator_label, curator_label_name FROM clip_origin '
                               'ORDER BY start_s')
        self.assertEqual([tuple(r.values()) for r in rows],
                         [(0, 0.5, 'list', 1, 'happy'), (0.5, 1.0, 'list', 7, 'fear'), (1.5, 2.25, 'list', None, None)])
        # a curator's label is not a vote
        self.assertEqual(self.home.scalar('SELECT count(*) FROM votes'), 0)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM clip_labels'), 0)
        # overlapping clips when allowed; identical rows never
        out = self.home.ctl_json('submit', sf, '--allow-overlap', '--clips', self.write('0.25,0.75\n0.2,2.0\n'))
        self.assertEqual(out['clips_added'], 2)
        r = self.home.ctl('submit', sf, '--allow-overlap', '--clips', self.write('0,1\n0,1\n'), check=False)
        self.assertIn(':2: the same clip as line 1', r.stderr)


class BatchTest(unittest.TestCase):
    """`dfewctl submit --batch DIR`: every new video once; the same content
    under another name is known by its hash; a summary line."""

    def test_batch_known_by_content(self):
        home = Home(workers=0)
        try:
            inc = os.path.join(home.dir, 'incoming')
            os.makedirs(os.path.join(inc, 'sub'))
            shutil.copy(video('single_face.mp4'), os.path.join(inc, 'a.mp4'))
            shutil.copy(video('single_face.mp4'), os.path.join(inc, 'sub', 'same-bytes.mkv'))
            shutil.copy(video('no_face.mp4'), os.path.join(inc, 'sub', 'b.mp4'))
            with open(os.path.join(inc, 'notes.txt'), 'w') as f:
                f.write('not a video')
            r = home.ctl('submit', '--batch', inc)
            self.assertIn('2 queued, 1 already known, 1 skipped (not video), 0 error(s)', r.stdout)
            self.assertEqual(home.scalar('SELECT count(*) FROM movies'), 2)
            r = home.ctl('submit', '--batch', inc)
            self.assertIn('0 queued, 3 already known, 1 skipped (not video), 0 error(s)', r.stdout)
            self.assertEqual(home.scalar("SELECT count(*) FROM jobs WHERE kind = 'probe'"), 2)
        finally:
            home.cleanup()


if __name__ == '__main__':
    main()
