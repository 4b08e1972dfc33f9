"""Integration: what dfew records about a movie agrees with the frames the
file really holds (issue 12, item 6). The inputs are made here, in a
temporary directory, from ../shared/testdata with the ffmpeg command line.

- Frame counts: 1920x1080 H.264 + AAC MP4s made the ways a lab makes them
  (single_face.mp4 scaled up, a MEAD clip padded; -r 30, 112 frames;
  +faststart, fragmented, an edit list from -ss with stream copy, open GOP,
  a QuickTime .mov, video track timescales of 90000 and 1000000). The
  probe's frame_count equals the frames FFmpeg decodes (ffprobe
  -count_frames), or is NULL with a note. The reported bug: with a
  timescale of 1000000 and B-frames the probe said 1 for 112 frames
  (its seek back to the start landed on the last packet).
- A file cut short: an MP4 with its index at the front (+faststart), its
  last 30 % of bytes cut off. Its whole-movie clip ([segment] mode = whole)
  ends where the decoded frames end (end_s, duration_s, duration_bucket),
  the end asked for is kept (requested_end_s), the reason names the damage,
  and the probe's frame_count is the frames it holds, with a note. The
  intact file's clip is unchanged.
- Segmentation ([segment] mode = shots) on the file cut short: the
  segment note names the damage; the segment clips come from decoded frames
  already, and their prep does not move them.

Probe-only homes use [segment] mode = off (no dlib on 1080p frames)."""
import json
import os
import shutil
import struct
import subprocess
import tempfile

from dfewtest import Home, SharedHomeTest, main, video

FF = ['ffmpeg', '-nostdin', '-y', '-v', 'error']
X264 = ['-c:v', 'libx264', '-preset', 'superfast', '-pix_fmt', 'yuv420p']  # superfast keeps B-frames


def ffmpeg(*args):
    subprocess.run(FF + [str(a) for a in args], check=True, timeout=300)


def decoded_frames(path):
    """The video frames FFmpeg decodes (ffprobe -count_frames: nb_read_frames)."""
    r = subprocess.run(['ffprobe', '-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries',
                        'stream=nb_read_frames', '-of', 'json', path], check=True, capture_output=True, text=True,
                       timeout=300)
    return int(json.loads(r.stdout)['streams'][0]['nb_read_frames'])


def stream_facts(path):
    r = subprocess.run(['ffprobe', '-v', 'error', '-select_streams', 'v:0', '-show_entries',
                        'stream=duration,time_base,nb_frames', '-of', 'json', path], check=True, capture_output=True,
                       text=True, timeout=60)
    return json.loads(r.stdout)['streams'][0]


class FrameCountTest(SharedHomeTest):
    """One probe-only home; the variants are probed once (setUpClass)."""

    @classmethod
    def setUpClass(cls):
        single, mead = video('single_face.mp4'), video('mead_eamm/happy.mp4')
        cls.tmp = tempfile.mkdtemp(prefix='dfew-fidelity-')
        cls.home = Home(config='[segment]\nmode = off\n', workers=2, prep=True)
        try:
            cls.paths = cls.make_variants(single, mead)
            cls.home.start()
            out = cls.submit_and_wait(*cls.paths.values())
            ids = {f['path']: f['movie_id'] for f in out['files']}
            cls.movies = {name: cls.home.query('SELECT * FROM movie_status WHERE movie_id = ?', ids[p])[0]
                          for name, p in cls.paths.items()}
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def make_variants(cls, single, mead):
        p = lambda name: os.path.join(cls.tmp, name)
        # single_face.mp4 (2.4 s, mp3) looped, scaled up to 1080p, 30 fps, 112 frames, its audio as AAC
        ffmpeg('-stream_loop', 1, '-i', single, '-vf', 'scale=1920:1080', '-r', 30, '-frames:v', 112, *X264,
               '-c:a', 'aac', '-shortest', p('scaled.mp4'))
        # a MEAD crop (25 fps, no audio) padded to 1080p, open GOP, a sine as its AAC audio
        ffmpeg('-i', mead, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-vf',
               'pad=1920:1080:(ow-iw)/2:(oh-ih)/2', '-r', 30, '-frames:v', 112, *X264, '-x264-params',
               'open_gop=1:keyint=30', '-c:a', 'aac', '-shortest', p('padded_open_gop.mp4'))
        remux = {
            'faststart.mp4': ['-movflags', '+faststart'],
            'fragmented.mp4': ['-movflags', 'frag_keyframe+empty_moov'],
            'quicktime.mov': [],
            'timescale_90000.mp4': ['-video_track_timescale', 90000],
            # the file that said 1: a microsecond timescale (B-frames, so a PTS offset)
            'timescale_1000000.mp4': ['-video_track_timescale', 1000000, '-movflags', '+faststart'],
            'timescale_1000000_frag.mp4': ['-video_track_timescale', 1000000, '-movflags',
                                           'frag_keyframe+empty_moov'],
        }
        for name, opts in remux.items():
            ffmpeg('-i', p('scaled.mp4'), '-c', 'copy', *opts, p(name))
        # an edit list: stream copy from 1 s (the keyframe at 0 is kept, its first 30 frames are discarded)
        ffmpeg('-ss', 1, '-i', p('scaled.mp4'), '-c', 'copy', p('edit_list.mp4'))
        ffmpeg('-ss', 0.5, '-i', p('padded_open_gop.mp4'), '-c', 'copy', '-video_track_timescale', 1000000,
               p('edit_list_open_gop_1000000.mp4'))
        names = ['scaled.mp4', 'padded_open_gop.mp4', 'edit_list.mp4', 'edit_list_open_gop_1000000.mp4'] + list(remux)
        return {n: p(n) for n in names}

    def test_frame_count_is_what_ffmpeg_decodes(self):
        print()
        for name, path in self.paths.items():
            m = self.movies[name]
            self.assertEqual(m['probe_state'], 'done', (name, m))
            self.assertEqual((m['width'], m['height'], m['video_codec']), (1920, 1080, 'h264'), name)
            want = decoded_frames(path)
            print('  %-32s timescale %-9s frame_count %-5s decoded %d%s' % (
                name, stream_facts(path)['time_base'], m['frame_count'], want,
                ' (%s)' % m.get('frame_count_note') if m.get('frame_count_note') else ''))
            if m['frame_count'] is None:
                self.assertTrue(m.get('frame_count_note'), '%s: frame_count NULL without a note' % name)
            else:
                self.assertEqual(m['frame_count'], want, '%s: the probe counted %s frames, FFmpeg decodes %d'
                                 % (name, m['frame_count'], want))
                self.assertIsNone(m.get('frame_count_note'), name)

    def test_the_reported_file(self):
        """1920x1080 H.264, 112 frames at 30 fps (3.73 s), AAC: the file that said 1."""
        m = self.movies['timescale_1000000.mp4']
        self.assertEqual(stream_facts(self.paths['timescale_1000000.mp4'])['time_base'], '1/1000000')
        self.assertAlmostEqual(m['avg_fps'], 30.0, places=3)
        self.assertAlmostEqual(m['duration_s'], 112 / 30, places=3)
        self.assertEqual(m['frame_count'], 112)
        # edit lists still count only the frames they keep
        self.assertEqual(self.movies['edit_list.mp4']['frame_count'], 82)


class CutShortTest(SharedHomeTest):
    """A whole-movie clip of an MP4 cut short after its index, and of the intact file."""

    @classmethod
    def setUpClass(cls):
        src = video('mead_eamm/disgusted.mp4')  # 256x256, 25 fps, AAC: dlib is fast on it
        cls.tmp = tempfile.mkdtemp(prefix='dfew-fidelity-')
        cls.home = Home(config='[segment]\nmode = whole\n', workers=2, prep=True)
        try:
            cls.intact = os.path.join(cls.tmp, 'intact.mp4')
            cls.cut = os.path.join(cls.tmp, 'cut_short.mp4')
            make_cut_short(src, cls.intact, cls.cut)
            cls.home.start()
            out = cls.submit_and_wait(cls.intact, cls.cut)
            cls.ids = {os.path.basename(f['path']): f['movie_id'] for f in out['files']}
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def clip(self, name):
        rows = self.home.query('SELECT s.*, c.origin FROM clip_status s JOIN clips c ON c.id = s.clip_id '
                               'WHERE s.movie_id = ?', self.ids[name])
        self.assertEqual(len(rows), 1)
        return rows[0]

    def test_clip_ends_where_the_frames_end(self):
        c = self.clip('cut_short.mp4')
        decoded = decoded_frames(self.cut)
        stream_s = float(stream_facts(self.cut)['duration'])
        print('\n  cut short: the stream says %.2f s; %d frames decode; clip [%s, %s) %s, asked to %s; %s'
              % (stream_s, decoded, c['start_s'], c['end_s'], c['duration_bucket'], c.get('requested_end_s'),
                 c['reason']))
        self.assertEqual(c['origin'], 'whole')
        self.assertEqual(c['frames_total'], decoded)
        self.assertLess(decoded, 158 * 0.8)
        # 25 fps, from 0: the last frame ends at decoded / 25
        self.assertAlmostEqual(c['end_s'], decoded / 25, places=3)
        self.assertAlmostEqual(c['duration_s'], decoded / 25, places=3)
        self.assertTrue(2 <= decoded / 25 < 5, decoded)  # asked: 6.32 s, 5s+
        self.assertEqual(c['duration_bucket'], '2-5s')
        self.assertAlmostEqual(c.get('requested_end_s'), stream_s, places=3)
        self.assertIn('the file ends early', c['reason'])
        self.assertIn('cut short', c['reason'])
        self.assertIn('the frames end at %.3f s' % (decoded / 25), c['reason'])
        # the prep job's result says what it decoded
        res = json.loads(self.home.scalar('SELECT result FROM jobs WHERE clip_id = ? AND kind = ?', c['clip_id'],
                                          'prep'))
        self.assertAlmostEqual(res['decoded_start_s'], 0, places=6)
        self.assertAlmostEqual(res['decoded_end_s'], decoded / 25, places=5)
        # faces.bin's header agrees with the clip
        if c['output_dir']:
            with open(os.path.join(c['output_dir'], 'faces.bin'), 'rb') as f:
                head = f.read(64)
            n, start, end = struct.unpack_from('<Qdd', head, 32)
            self.assertEqual((n, start), (decoded, 0.0))
            self.assertAlmostEqual(end, c['end_s'], places=6)
        # the intact file's clip is as asked
        c = self.clip('intact.mp4')
        self.assertEqual(c['frames_total'], 158)
        self.assertAlmostEqual(c['end_s'], 6.32, places=3)
        self.assertIsNone(c.get('requested_end_s'))
        self.assertEqual(c['duration_bucket'], '5s+')
        self.assertNotIn('ends early', c['reason'])

    def test_probe_says_the_file_is_cut_short(self):
        m = self.home.query('SELECT * FROM movie_status WHERE movie_id = ?', self.ids['cut_short.mp4'])[0]
        self.assertEqual(m['frame_count'], decoded_frames(self.cut))
        self.assertIn('cut short', m.get('frame_count_note') or '')
        shown = self.home.ctl('movies').stdout
        self.assertIn('cut short', shown)
        m = self.home.query('SELECT * FROM movie_status WHERE movie_id = ?', self.ids['intact.mp4'])[0]
        self.assertEqual(m['frame_count'], 158)
        self.assertIsNone(m.get('frame_count_note'))


def make_cut_short(src, intact, cut):
    """intact: the first 158 frames (6.32 s) of src with the index at the front;
    cut: its first 70 % of bytes."""
    ffmpeg('-i', src, '-frames:v', 158, '-c', 'copy', '-movflags', '+faststart', intact)
    with open(intact, 'rb') as f:
        data = f.read()
    with open(cut, 'wb') as f:
        f.write(data[:len(data) * 7 // 10])


class CutShortSegmentsTest(SharedHomeTest):
    """Segment clips come from decoded frame times: prep does not move them."""

    @classmethod
    def setUpClass(cls):
        src = video('mead_eamm/disgusted.mp4')
        cls.tmp = tempfile.mkdtemp(prefix='dfew-fidelity-')
        cls.home = Home(config='[segment]\nmode = shots\n', workers=2, prep=True)
        try:
            intact, cut = os.path.join(cls.tmp, 'intact.mp4'), os.path.join(cls.tmp, 'cut_short.mp4')
            make_cut_short(src, intact, cut)
            cls.home.start()
            out = cls.submit_and_wait(cut)
            cls.movie = out['files'][0]['movie_id']
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def test_segment_clips_keep_their_range_and_the_note_names_the_damage(self):
        seg = json.loads(self.home.scalar("SELECT result FROM jobs WHERE kind = 'segment' AND movie_id = ?",
                                          self.movie))
        with open(seg['segments']) as f:
            chosen = [c for c in json.load(f)['candidates'] if c['chosen']]
        clips = self.home.query("SELECT s.*, c.origin FROM clip_status s JOIN clips c ON c.id = s.clip_id "
                                "WHERE s.movie_id = ? ORDER BY s.start_s", self.movie)
        self.assertTrue(clips, 'the cut-short MEAD clip still gives a segment clip')
        self.assertEqual(len(clips), len(chosen))
        for c, want in zip(clips, chosen):
            self.assertEqual(c['origin'], 'segment')
            self.assertIn(c['state'], ('usable', 'unusable'))
            self.assertEqual((c['start_s'], c['end_s']), (want['start_s'], want['end_s']))
            self.assertIsNone(c.get('requested_end_s'))
        note = self.home.scalar('SELECT segment_note FROM movies WHERE id = ?', self.movie)
        self.assertIn('cut short', note)


if __name__ == '__main__':
    main()
