#!/usr/bin/env python3
"""bench/prep: clip preprocessing throughput (issue 12's targets), dfew against
the naive pipeline and the decode-only floor, on the same videos in the same
run (see bench/README.md). It is not a test: it prints PASS/MISS per target
and exits 0 either way (non-zero only when something broke).

Pipelines, each over a set of videos, two at a time on the machine's cores:

  naive     per video `ffmpeg -fps_mode passthrough` writes every frame as
            PNG, then build/bench/dfew-faces-png (dlib's detector and dlib's
            own shape predictor) detects faces and 68 landmarks in each PNG.
  floor     build/bench/dfew-decode-floor: the videos decoded to grey in
            process with the prep job's decoder, nothing else.
  fast      a fresh home, a real `dfewd --workers 2`, [segment] mode = whole
            (one whole-movie clip per video), [prep] detect = fast (the
            tracker), min_face_ratio = 0 (every clip with a face keeps its
            faces.bin); `dfewctl submit` the videos, `dfewctl wait`.
  every     the same with [prep] detect = every_frame (dlib's detector on
            every whole frame: the fidelity reference).

frames/s = decoded frames / wall time (from the first process or the submit
to the last frame done). The order of the pipelines alternates per
repetition; medians over --reps. Sets: low (the 256x256 MEAD crops and the
640x360 videos of testdata) and hd (720p and 1080p: Debian's movie-hello.mp4,
testdata's crowd_1080p.mp4 and files made here from testdata's footage with
ffmpeg, cached in --hd-dir; how each was made is printed). The HD set runs
as two batches, 720p then 1080p, so that the 720p frames/s is measured on
its own (the projection for DFEW's 1.26 M frames).

Also: the agreement of fast with every (per-frame face decisions of the
subject, usable decisions, landmark distance in % of the inter-ocular
distance, and every face's box frame by frame, from the clips' faces.bin),
the peak RSS of each dfew worker (VmHWM), where a dfew
worker's time goes (clip_prep), and one long HD clip with 1 worker,
[daemon] threads_per_job = 1 against 0 (auto); a build whose dfewd refuses
that key is told apart and that part is skipped.

usage: bench/prep.py [--build DIR] [--reps N] [--set low|hd|both|none] [--quick]
                     [--json OUT] [--threads-per-job N] [--hd-dir DIR]
                     [--no-threads] [--ceiling] [VIDEO...]
       bench/prep.py --report OUT        (the tables again from a --json file)"""
import argparse
import concurrent.futures
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
TESTDATA = os.path.normpath(os.path.join(SRC, '..', 'shared', 'testdata'))
VIDEOS = os.path.join(TESTDATA, 'videos')
IMAGES = os.path.join(TESTDATA, 'images')
MOVIE_HELLO = '/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4'
DFEW_FRAMES = 1.26e6  # DFEW's frames (16,372 clips)
USABLE_RATIO = 0.5    # the normal [prep] min_face_ratio

PIPELINES = ('naive', 'floor', 'fast', 'every')
TITLES = {'naive': 'naive: ffmpeg -> PNG -> dfew-faces-png',
          'floor': 'decode-only floor (dfew-decode-floor)',
          'fast': 'dfew, detect = fast (tracker)',
          'every': 'dfew, detect = every_frame'}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- videos

def ff_cmd(inputs, filt, out, fps=None):
    """An ffmpeg command that writes `out` (H.264, yuv420p, crf 18, no audio)
    from `inputs` (a list of argument lists, one per input) through `filt`."""
    cmd = ['ffmpeg', '-nostdin', '-v', 'error', '-y']
    for i in inputs:
        cmd += i
    cmd += ['-filter_complex', filt + '[v]', '-map', '[v]', '-an', '-c:v', 'libx264', '-preset', 'medium',
            '-crf', '18', '-pix_fmt', 'yuv420p']
    cmd += ['-r', str(fps)] if fps else ['-fps_mode', 'passthrough']
    return cmd + [out]


def photo(name, w, h, fps, extra=''):
    """A still photo as a looped input scaled (and cropped) to fill w x h."""
    return (['-loop', '1', '-framerate', str(fps), '-i', os.path.join(IMAGES, name)],
            '[0:v]scale=%d:%d:force_original_aspect_ratio=increase:flags=lanczos,crop=%d:%d,setsar=1%s[bg]'
            % (w, h, w, h, extra))


def recipes():
    """The HD files made here: name -> (ffmpeg command with OUT for the file,
    what it is in words). All from real footage of testdata."""
    sf = os.path.join(VIDEOS, 'single_face.mp4')
    mead = lambda n: os.path.join(VIDEOS, 'mead_eamm', n + '.mp4')
    r = {}
    for w, h in ((1280, 720), (1920, 1080)):
        r['single_face_%dp.mp4' % h] = (
            ff_cmd([['-i', sf]], '[0:v]scale=%d:%d:flags=lanczos,setsar=1' % (w, h), 'OUT'),
            'testdata single_face.mp4 (640x360, 72 frames) scaled %gx to %dx%d (lanczos); face about %d px'
            % (w / 640, w, h, 180 * w // 640))
    bg, f = photo('dogs.jpg', 1280, 720, 25, ',hflip')
    r['fear_720p.mp4'] = (
        ff_cmd([bg, ['-i', mead('fear')]], f + ';[bg][1:v]overlay=820:180:shortest=1', 'OUT', 25),
        'testdata mead_eamm/fear.mp4 (256x256, 218 frames) at native size, padded into a 1280x720 frame at '
        '(820,180) over testdata images/dogs.jpg (mirrored, scaled to fill); face about 150 px')
    bg, f = photo('dogs.jpg', 1920, 1080, 25)
    r['surprised_1080p.mp4'] = (
        ff_cmd([bg, ['-i', mead('surprised')]], f + ';[bg][1:v]overlay=1180:260:shortest=1', 'OUT', 25),
        'testdata mead_eamm/surprised.mp4 (256x256, 310 frames) at native size, padded into a 1920x1080 frame '
        'at (1180,260) over testdata images/dogs.jpg (scaled to fill); face about 150 px')
    names = ('happy', 'fear', 'disgusted', 'surprised')
    r['mead4_1080p.mp4'] = (
        ff_cmd([bg] + [['-i', mead(n)] for n in names],
               f + ';' + ''.join('[%d:v]' % (i + 1) for i in range(4)) + 'concat=n=4:v=1:a=0[m];'
               '[bg][m]overlay=1180:260:shortest=1', 'OUT', 25),
        'the four testdata MEAD clips (happy, fear, disgusted, surprised: 872 frames, 34.9 s, three people, '
        'cuts between them) one after another, padded into a 1920x1080 frame at (1180,260) over testdata '
        'images/dogs.jpg; the long HD clip of the threads test')
    return r


def make_video(hd_dir, name):
    """Makes hd_dir/name from its recipe unless it is there already, made by
    the same command (hd_dir/name.cmd). Returns (path, how)."""
    cmd, how = recipes()[name]
    out = os.path.join(hd_dir, name)
    cmd = [out if c == 'OUT' else c for c in cmd]
    text = ' '.join(cmd) + '\n'
    stamp = out + '.cmd'
    if not (os.path.exists(out) and os.path.exists(stamp) and open(stamp).read() == text):
        os.makedirs(hd_dir, exist_ok=True)
        log('making %s: %s' % (name, text.strip()))
        tmp = out + '.tmp.mp4'
        cmd[-1] = tmp
        subprocess.run(cmd, check=True)
        os.replace(tmp, out)
        with open(stamp, 'w') as f:
            f.write(text)
    return out, how + '. Made with: `' + text.strip().replace(out, name).replace(TESTDATA, 'testdata') + '`'


class Video:
    def __init__(self, path, how):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(path)
        self.how = how
        self.width = self.height = self.frames = None

    def info(self):
        return dict(name=self.name, path=self.path, how=self.how, width=self.width, height=self.height,
                    frames=self.frames)


def probe_videos(build, videos):
    """Frame count and size of each video, from the decode floor."""
    r = subprocess.run([os.path.join(build, 'bench', 'dfew-decode-floor')] + [v.path for v in videos],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit('dfew-decode-floor: %s' % r.stderr.strip())
    for v, line in zip(videos, r.stdout.splitlines()):
        j = json.loads(line)
        v.width, v.height, v.frames = j['width'], j['height'], j['frames']


def build_sets(a):
    """{set: [(batch label, [Video])]} and the long HD clip (or None)."""
    orig = 'original file, unchanged'
    sets = {}
    if a.videos:
        sets['given'] = [('given', [Video(v, 'given on the command line') for v in a.videos])]
        return sets, None
    if a.set in ('low', 'both'):
        names = ['single_face.mp4', 'mead_eamm/happy.mp4'] if a.quick else \
            ['mead_eamm/surprised.mp4', 'short_hamilton_clip.mp4', 'mead_eamm/fear.mp4', 'mead_eamm/disgusted.mp4',
             'mead_eamm/happy.mp4', 'single_face.mp4']
        sets['low'] = [('256x256 + 640x360', [Video(os.path.join(VIDEOS, n), 'testdata, ' + orig) for n in names])]
    hd_needed = a.set in ('hd', 'both')
    if hd_needed:
        if not os.path.exists(MOVIE_HELLO):
            raise SystemExit('%s is missing: apt-get install forensics-samples-multimedia' % MOVIE_HELLO)
        hello = Video(MOVIE_HELLO, 'Debian forensics-samples, ' + orig + ' (webcam inset, face about 75 px)')
        crowd = Video(os.path.join(VIDEOS, 'crowd_1080p.mp4'), 'testdata, ' + orig + ' (2-4 people walking)')
        made = lambda n: Video(*make_video(a.hd_dir, n))
        if a.quick:
            sets['hd'] = [('720p', [hello]), ('1080p', [made('single_face_1080p.mp4')])]
        else:
            sets['hd'] = [('720p', [hello, made('fear_720p.mp4'), made('single_face_720p.mp4')]),
                          ('1080p', [made('surprised_1080p.mp4'), crowd, made('single_face_1080p.mp4')])]
    long_clip = None
    if not a.no_threads:
        long_clip = 'surprised_1080p.mp4' if a.quick else 'mead4_1080p.mp4'
    return sets, long_clip


# ---------------------------------------------------------------- pipelines

def run_rusage(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (peak RSS in MiB from wait4, stdout text or None)."""
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    out = p.stdout.read().decode() if stdout == subprocess.PIPE else None
    err = p.stderr.read().decode(errors='replace')
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit('%s failed (%d): %s' % (cmd[0], p.returncode, err[-2000:]))
    return ru.ru_maxrss / 1024.0, out


def two_at_a_time(fn, videos):
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        res = list(ex.map(fn, videos))
    return time.monotonic() - t0, res


def naive(ctx, videos):
    def one(v):
        d = tempfile.mkdtemp(prefix='naive-', dir=ctx.work)
        try:
            rss_ff, _ = run_rusage(['ffmpeg', '-nostdin', '-v', 'error', '-i', v.path, '-map', '0:v:0',
                                    '-fps_mode', 'passthrough', os.path.join(d, '%06d.png')])
            pngs = sorted(os.path.join(d, f) for f in os.listdir(d))
            rss_det, _ = run_rusage([os.path.join(ctx.build, 'bench', 'dfew-faces-png')] + pngs)
            return len(pngs), rss_ff, rss_det
        finally:
            shutil.rmtree(d, ignore_errors=True)
    wall, res = two_at_a_time(one, videos)
    return dict(wall=wall, frames=sum(r[0] for r in res), per_video={v.name: dict(frames=r[0]) for v, r in
                                                                     zip(videos, res)},
                rss=dict(ffmpeg=max(r[1] for r in res), detector=max(r[2] for r in res)))


def floor(ctx, videos):
    def one(v):
        rss, out = run_rusage([os.path.join(ctx.build, 'bench', 'dfew-decode-floor'), v.path],
                              stdout=subprocess.PIPE)
        return json.loads(out), rss
    wall, res = two_at_a_time(one, videos)
    return dict(wall=wall, frames=sum(r[0]['frames'] for r in res),
                per_video={v.name: dict(frames=r[0]['frames'], decode_s=r[0]['seconds']) for v, r in
                           zip(videos, res)},
                rss=dict(decoder=max(r[1] for r in res)))


def vm_hwm_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


class ConfigRefused(Exception):
    """dfewd refused the config (an older build that does not know a key)."""


class Dfewd:
    """A fresh home with HOME/dfew.conf and a real dfewd in the foreground."""

    def __init__(self, ctx, workers, conf):
        self.ctx = ctx
        self.home = tempfile.mkdtemp(prefix='dfew-home-', dir=ctx.work)
        with open(os.path.join(self.home, 'dfew.conf'), 'w') as f:
            f.write('[daemon]\nworkers = %d\nworker_program = %s\n' % (workers, os.path.join(ctx.build, 'dfew-worker'))
                    + conf)
        self.ctl = [os.path.join(ctx.build, 'dfewctl'), '--home', self.home]
        self.errpath = os.path.join(self.home, 'dfewd.stderr')
        with open(self.errpath, 'w') as err:
            self.p = subprocess.Popen([os.path.join(ctx.build, 'dfewd'), '--foreground', '--home', self.home,
                                       '--workers', str(workers)], stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rc = self.p.poll()
            if rc is not None:
                msg = open(self.errpath).read().strip()
                self.close()
                if 'unknown key' in msg or 'dfew.conf' in msg:
                    raise ConfigRefused(msg)
                raise SystemExit('dfewd exited (%d) before it was ready: %s' % (rc, msg))
            r = subprocess.run(self.ctl + ['--json', 'status', '--once'], capture_output=True, text=True)
            st = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}
            ws = (st.get('daemon') or {}).get('workers') or []
            if sum(w.get('state') == 'idle' for w in ws) == workers:
                self.pids = [w['pid'] for w in ws]
                self.wait_preload(workers, deadline)
                return
            time.sleep(0.05)
        self.close()
        raise SystemExit('dfewd did not start within 60 s (%s)' % self.errpath)

    def wait_preload(self, workers, deadline):
        """A daemon that has been up: the clock starts once each job worker has
        loaded the dlib models it loads before its first job (dfew-worker
        --preload). A build without it is not waited for."""
        def preloads(pid):
            try:
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    return b'--preload' in f.read()
            except OSError:
                return False
        n = sum(preloads(p) for p in self.pids)
        while time.monotonic() < deadline:
            log = open(self.errpath).read()
            if log.count('before the first job') + log.count('cannot load the models before') >= n:
                return
            time.sleep(0.05)

    def sql(self, q):
        r = subprocess.run(['sqlite3', '-json', os.path.join(self.home, 'dfew.db'), q], check=True,
                           capture_output=True, text=True)
        return json.loads(r.stdout) if r.stdout.strip() else []

    def submit_wait(self, videos):
        t0 = time.monotonic()
        subprocess.run(self.ctl + ['submit'] + [v.path for v in videos], check=True, capture_output=True)
        r = subprocess.run(self.ctl + ['wait', '--timeout', '7200'], capture_output=True, text=True)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit('dfewctl wait: %s %s' % (r.stdout, r.stderr))
        return wall

    def worker_rss(self):
        out = []
        for pid in self.pids:
            try:
                with open('/proc/%d/comm' % pid) as f:
                    comm = f.read().strip()
            except OSError:
                comm = None
            out.append(vm_hwm_mib(pid) if comm and comm.startswith('dfew-worker') else float('nan'))
        return out

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        shutil.rmtree(self.home, ignore_errors=True)


FACES_HEADER = struct.Struct('<8sIIIIIIQddII')
FACES_RECORD = struct.Struct('<IId4ffI136f')
FACES_OTHER = struct.Struct('<II4ffI')


def read_faces(path, frames_total):
    """From a clip's faces.bin: per frame (the subject found, its 68 points
    or None), per frame the sorted boxes of every face (the subject's and
    the other tracks'), and the sha256 of the file. No faces.bin (a clip
    without a face): nothing found in frames_total frames."""
    if path is None:
        return dict(subject=[(False, None)] * frames_total, boxes=[()] * frames_total, sha256=None)
    with open(path, 'rb') as f:
        data = f.read()
    magic, version, hsize, rsize, nlm, width, height, records, t0, t1, subj, others = FACES_HEADER.unpack_from(data, 0)
    if magic != b'DFEWFACE' or version != 2 or rsize != FACES_RECORD.size or nlm != 68:
        raise SystemExit('%s: not a faces.bin version 2 (%r, %d, %d)' % (path, magic, version, rsize))
    subject, boxes = [], [[] for _ in range(records)]
    for i in range(records):
        r = FACES_RECORD.unpack_from(data, hsize + i * rsize)
        found = bool(r[1] & 1)
        subject.append((found, r[9:] if found else None))
        if found:
            boxes[i].append(r[3:7])
    off = hsize + records * rsize
    for i in range(others):
        o = FACES_OTHER.unpack_from(data, off + i * FACES_OTHER.size)
        if o[0] < records:
            boxes[o[0]].append(o[2:6])
    return dict(subject=subject, boxes=[tuple(sorted(b)) for b in boxes], sha256=hashlib.sha256(data).hexdigest())


def dfew_conf(mode, threads_per_job):
    conf = '' if threads_per_job is None else 'threads_per_job = %d\n' % threads_per_job
    return conf + '[segment]\nmode = whole\n[prep]\ndetect = %s\nmin_face_ratio = 0\n' % mode


def dfew(ctx, batches, mode, workers=2, threads_per_job=None):
    """One run over all batches (one home, one dfewd). Returns the per-batch
    results and the per-video details (clip_prep, faces)."""
    d = Dfewd(ctx, workers, dfew_conf(mode, threads_per_job))
    try:
        out = []
        for label, videos in batches:
            wall = d.submit_wait(videos)
            out.append(dict(label=label, wall=wall))
        rss = d.worker_rss()
        dead = d.sql("SELECT kind, state, error FROM jobs WHERE state <> 'done'")
        if dead:
            raise SystemExit('dfew (%s): jobs not done: %s' % (mode, dead))
        rows = d.sql('SELECT * FROM clip_prep ORDER BY clip_id')
        prep_res = {r['clip_id']: r for r in d.sql(
            "SELECT clip_id, json_extract(result, '$.threads') AS threads, json_extract(result, '$.ranges') AS ranges "
            "FROM jobs WHERE kind = 'prep'")}
        by_src = {}
        for r in rows:
            if r['movie'] in by_src:
                raise SystemExit('dfew: two clips of %s (expected one whole-movie clip)' % r['movie'])
            by_src[os.path.abspath(r['movie'])] = r
        faces = {}
        for b, (label, videos) in zip(out, batches):
            b['frames'] = 0
            b['per_video'] = {}
            for v in videos:
                r = by_src.get(v.path)
                if r is None:
                    raise SystemExit('dfew (%s): no clip for %s' % (mode, v.path))
                if r['detect_mode'] != mode:
                    raise SystemExit('dfew: clip of %s prepared with detect = %s, asked for %s'
                                     % (v.name, r['detect_mode'], mode))
                b['frames'] += r['frames_total']
                b['per_video'][v.name] = {k: r[k] for k in (
                    'clip_id', 'state', 'reason', 'frames_total', 'frames_face', 'prep_s', 'decode_s', 'detect_s',
                    'align_s', 'write_s', 'detect_mode', 'faces_tracked', 'searches')}
                b['per_video'][v.name]['frames'] = r['frames_total']
                # what the prep job ran on: its threads, and the ranges a long clip was split into
                b['per_video'][v.name]['threads'] = (prep_res.get(r['clip_id']) or {}).get('threads')
                b['per_video'][v.name]['ranges'] = (prep_res.get(r['clip_id']) or {}).get('ranges')
                fb = os.path.join(r['output_dir'], 'faces.bin') if r['output_dir'] else None
                if fb is None and r['frames_face']:
                    raise SystemExit('dfew: clip %d of %s found faces but has no faces.bin' % (r['clip_id'], v.name))
                faces[v.name] = read_faces(fb, r['frames_total'])
                b['per_video'][v.name]['faces_sha256'] = faces[v.name]['sha256']
        return out, rss, faces
    finally:
        d.close()


# ---------------------------------------------------------------- one set, one repetition

def run_pipeline(ctx, name, batches):
    """Returns dict(wall, frames, batches=[...], rss, per_video) and faces (dfew)."""
    faces = None
    if name in ('naive', 'floor'):
        fn = naive if name == 'naive' else floor
        bres = []
        for label, videos in batches:
            r = fn(ctx, videos)
            r['label'] = label
            bres.append(r)
        rss = {k: max(b['rss'][k] for b in bres) for k in bres[0]['rss']}
    else:
        mode = 'fast' if name == 'fast' else 'every_frame'
        bres, workers_rss, faces = dfew(ctx, batches, mode, 2, ctx.threads_per_job)
        rss = dict(workers=workers_rss)
    per_video = {}
    for b in bres:
        per_video.update(b.pop('per_video'))
        b.pop('rss', None)
    return dict(wall=sum(b['wall'] for b in bres), frames=sum(b['frames'] for b in bres), batches=bres, rss=rss,
                per_video=per_video), faces


# ---------------------------------------------------------------- agreement

def iod(pts):
    lx = sum(pts[2 * k] for k in range(36, 42)) / 6
    ly = sum(pts[2 * k + 1] for k in range(36, 42)) / 6
    rx = sum(pts[2 * k] for k in range(42, 48)) / 6
    ry = sum(pts[2 * k + 1] for k in range(42, 48)) / 6
    return math.hypot(rx - lx, ry - ly)


def usable(pv):
    return pv['frames_total'] > 0 and pv['frames_face'] > 0 and pv['frames_face'] / pv['frames_total'] >= USABLE_RATIO


def agreement(fast_faces, every_faces, fast_pv, every_pv, videos):
    """Per video and pooled: frames, frames where the subject's face
    decisions agree, usable decisions, the landmark distance (% of the
    every_frame face's inter-ocular distance) on frames where both found the
    subject; and over all faces (the other tracks too): frames whose face
    boxes are the same, and the face boxes each found."""
    keys = ('frames', 'agree', 'both', 'fast_only', 'every_only', 'all_same', 'boxes_fast', 'boxes_every')
    rows, pooled, alld = [], {k: 0 for k in keys}, []
    for v in videos:
        fa_, ev_ = fast_faces[v.name], every_faces[v.name]
        ff, ef = fa_['subject'], ev_['subject']
        row = dict({k: 0 for k in keys}, video=v.name, frames=len(ef), frames_fast=len(ff),
                   usable_fast=usable(fast_pv[v.name]), usable_every=usable(every_pv[v.name]))
        dists = []
        for (fa, fp), (ea, ep) in zip(ff, ef):
            row['agree'] += fa == ea
            row['fast_only'] += fa and not ea
            row['every_only'] += ea and not fa
            if fa and ea:
                row['both'] += 1
                d = sum(math.hypot(fp[2 * k] - ep[2 * k], fp[2 * k + 1] - ep[2 * k + 1]) for k in range(68)) / 68
                io = iod(ep)
                dists.append(100 * d / io if io > 0 else float('inf'))
        for bf, be in zip(fa_['boxes'], ev_['boxes']):
            row['all_same'] += bf == be
        row['boxes_fast'] = sum(len(b) for b in fa_['boxes'])
        row['boxes_every'] = sum(len(b) for b in ev_['boxes'])
        row['agree_pct'] = 100 * row['agree'] / max(1, row['frames'])
        row['all_same_pct'] = 100 * row['all_same'] / max(1, row['frames'])
        row['usable_same'] = row['usable_fast'] == row['usable_every']
        row['lm_mean_pct_iod'] = statistics.fmean(dists) if dists else None
        row['lm_max_pct_iod'] = max(dists) if dists else None
        rows.append(row)
        for k in keys:
            pooled[k] += row[k]
        alld += dists
    pooled['agree_pct'] = 100 * pooled['agree'] / max(1, pooled['frames'])
    pooled['all_same_pct'] = 100 * pooled['all_same'] / max(1, pooled['frames'])
    pooled['lm_mean_pct_iod'] = statistics.fmean(alld) if alld else None
    pooled['lm_max_pct_iod'] = max(alld) if alld else None
    pooled['usable_same'] = sum(r['usable_same'] for r in rows)
    pooled['videos'] = len(rows)
    return dict(videos=rows, pooled=pooled)


# ---------------------------------------------------------------- threads test

def probe_threads_key(ctx):
    """Whether this build's dfewd takes [daemon] threads_per_job: (True, '')
    or (False, what dfewd said)."""
    try:
        Dfewd(ctx, 1, 'threads_per_job = 0\n').close()
        return True, ''
    except ConfigRefused as e:
        return False, str(e)


def threads_test(ctx, video, reps):
    runs = {'1': [], '0': []}  # by threads_per_job (strings: the same keys after --json)
    for i in range(reps):
        for tpj in ((1, 0) if i % 2 == 0 else (0, 1)):
            load = os.getloadavg()[0]
            bres, rss, _ = dfew(ctx, [('long', [video])], 'fast', 1, tpj)
            b = bres[0]
            pv = b['per_video'][video.name]
            runs[str(tpj)].append(dict(wall=b['wall'], frames=b['frames'], fps=b['frames'] / b['wall'], rss=rss,
                                  load=load, clip=pv))
            log('threads rep %d threads_per_job=%d: %d frames in %.2f s = %.2f frames/s (prep_s %.2f, decode %.2f, '
                'detect %.2f; %s thread(s), %s range(s)), load %.1f'
                % (i + 1, tpj, b['frames'], b['wall'], b['frames'] / b['wall'], pv['prep_s'], pv['decode_s'],
                   pv['detect_s'], pv['threads'], pv['ranges'], load))
    return runs


def ceiling_test(ctx, video, reps):
    """Two one-thread prep jobs of the long clip at once (2 workers, a copy
    of the file remuxed with another title so that dfew takes it for another
    movie) against the one-thread job alone: 2 x its prep_s / the slower of
    the pair's prep_s is what the cores give two independent jobs, the
    ceiling of any split of one job."""
    copy = os.path.join(ctx.work, 'copy-' + video.name)
    subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-y', '-i', video.path, '-map', '0', '-c', 'copy',
                    '-metadata', 'title=dfew bench copy', copy], check=True)
    twin = Video(copy, 'a stream copy of %s' % video.name)
    probe_videos(ctx.build, [twin])
    out = []
    for i in range(reps):
        one, _, _ = dfew(ctx, [('one', [video])], 'fast', 1, 1)
        two, _, _ = dfew(ctx, [('two', [video, twin])], 'fast', 2, 1)
        alone = one[0]['per_video'][video.name]['prep_s']
        pair = [two[0]['per_video'][x.name]['prep_s'] for x in (video, twin)]
        out.append(dict(alone=alone, pair=pair, ratio=2 * alone / max(pair)))
        log('ceiling rep %d: one job prep_s %.2f; two at once %.2f, %.2f: %.2fx'
            % (i + 1, alone, pair[0], pair[1], out[-1]['ratio']))
    return out


# ---------------------------------------------------------------- report

def med(xs):
    return statistics.median(xs) if xs else float('nan')


def spread(xs, fmt='%.2f'):
    return (fmt + ' [' + fmt + ' .. ' + fmt + ']') % (med(xs), min(xs), max(xs))


def fps_list(runs):
    return [r['frames'] / r['wall'] for r in runs]


def batch_fps(runs, label):
    out = []
    for r in runs:
        for b in r['batches']:
            if b['label'] == label:
                out.append(b['frames'] / b['wall'])
    return out


def machine():
    model = ''
    try:
        for line in subprocess.run(['lscpu'], capture_output=True, text=True).stdout.splitlines():
            if line.startswith('Model name:'):
                model = line.split(':', 1)[1].strip()
    except OSError:
        pass
    try:
        commit = subprocess.run(['git', '-C', SRC, 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ''
    return dict(nproc=os.cpu_count(), cpu=model, kernel=platform.release(), commit=commit,
                date=time.strftime('%Y-%m-%d %H:%M %Z'))


def report_set(name, batches, runs, agree_all, reps):
    p = print
    videos = [v for _, vs in batches for v in vs]
    frames = runs['fast'][0]['frames']
    p('\n### set %s: %d videos, %d frames\n' % (name, len(videos), frames))
    p('| video | WxH | frames | how it was made |')
    p('|---|---|---|---|')
    for v in videos:
        p('| %s | %dx%d | %d | %s |' % (v.name, v.width, v.height, v.frames, v.how))
    counts = {k: runs[k][0]['frames'] for k in PIPELINES}
    if len(set(counts.values())) != 1:
        p('\n**warning**: the pipelines saw different frame counts: %s' % counts)
        for v in videos:
            c = {k: runs[k][0]['per_video'][v.name]['frames'] for k in PIPELINES}
            if len(set(c.values())) != 1:
                p('- %s: %s' % (v.name, c))
    p('\n| pipeline | frames/s, median [min .. max] of %d | per repetition | wall s (median) | peak RSS per '
      'process, MiB (max over reps) |' % reps)
    p('|---|---|---|---|---|')
    for k in PIPELINES:
        fl = fps_list(runs[k])
        if k in ('fast', 'every'):
            nw = len(runs[k][0]['rss']['workers'])
            rss = 'workers ' + ', '.join('%.0f' % max(r['rss']['workers'][i] for r in runs[k]) for i in range(nw))
        else:
            rss = ', '.join('%s %.0f' % (kk, max(r['rss'][kk] for r in runs[k])) for kk in runs[k][0]['rss'])
        p('| %s | %s | %s | %.2f | %s |' % (TITLES[k], spread(fl), ', '.join('%.2f' % x for x in fl),
                                            med([r['wall'] for r in runs[k]]), rss))
    if len(batches) > 1:
        p('\nframes/s per batch (each batch on its own, one after the other; median):\n')
        p('| batch | frames | ' + ' | '.join(k for k in PIPELINES) + ' | fast / naive | fast / floor |')
        p('|---|---|' + '---|' * (len(PIPELINES) + 2))
        for label, vs in batches:
            f = {k: med(batch_fps(runs[k], label)) for k in PIPELINES}
            p('| %s | %d | %s | %.2f | %.3f |' % (label, sum(v.frames for v in vs),
                                                  ' | '.join('%.2f' % f[k] for k in PIPELINES),
                                                  f['fast'] / f['naive'], f['fast'] / f['floor']))
    p('\n| ratio | of the medians | paired per repetition |')
    p('|---|---|---|')
    for a, b in (('fast', 'naive'), ('every', 'naive'), ('fast', 'every'), ('fast', 'floor')):
        pr = [x / y for x, y in zip(fps_list(runs[a]), fps_list(runs[b]))]
        p('| %s / %s | **%.3f** | %s |' % (a, b, med(fps_list(runs[a])) / med(fps_list(runs[b])),
                                           ', '.join('%.3f' % x for x in pr)))
    # where the time goes: per repetition, then medians (other = prep_s minus the stages, per repetition)
    cols = ('prep_s', 'decode_s', 'detect_s', 'align_s', 'write_s', 'other')
    for k in ('fast', 'every'):
        p('\nwhere a dfew worker\'s time goes, detect = %s (clip_prep, s, median over the repetitions; other = '
          'prep_s - the four stages; all: median of the per-repetition totals, %% of the worker time of all '
          'repetitions):\n' % ('fast' if k == 'fast' else 'every_frame'))
        p('| video | frames | face frames | ' + ' | '.join(cols) + ' | searches | faces tracked | '
          'frames/s in the worker |')
        p('|---|---|---|---|---|---|---|---|---|---|---|---|')
        per_rep = [{c: 0.0 for c in cols} for _ in runs[k]]
        for v in videos:
            rows = [dict(r['per_video'][v.name]) for r in runs[k]]
            for i, r in enumerate(rows):
                r['other'] = r['prep_s'] - sum(r[c] or 0 for c in cols[1:5])
                for c in cols:
                    per_rep[i][c] += r[c] or 0
            m = {c: med([r[c] or 0 for r in rows]) for c in cols + ('searches', 'faces_tracked')}
            p('| %s | %d | %d | %s | %d | %d | %.1f |'
              % (v.name, rows[0]['frames_total'], rows[0]['frames_face'], ' | '.join('%.3f' % m[c] for c in cols),
                 m['searches'], m['faces_tracked'], rows[0]['frames_total'] / m['prep_s'] if m['prep_s'] else 0))
        pooled = {c: sum(r[c] for r in per_rep) for c in cols}
        p('| **all** | %d | | %.3f | %s | | | |' % (
            frames, med([r['prep_s'] for r in per_rep]),
            ' | '.join('%.3f (%.0f%%)' % (med([r[c] for r in per_rep]), 100 * pooled[c] / (pooled['prep_s'] or 1))
                       for c in cols[1:])))
    # agreement
    ag = agree_all[0]
    p('\nagreement of detect = fast with detect = every_frame (repetition 1; the subject: the face.bin record of '
      'each frame; usable: the subject in >= 50% of the frames; landmark distance: mean over the 68 points, in % of '
      'the every_frame face\'s inter-ocular distance, on frames where both found the subject; all faces: the '
      'subject\'s box and the other tracks\' boxes of each frame, compared exactly):\n')
    p('| video | frames | subject found: decisions agree | fast only | every_frame only | usable fast / '
      'every_frame | same | both found | landmark distance mean (max), % IOD | all faces: frames with the same '
      'boxes | face boxes fast / every_frame |')
    p('|---|---|---|---|---|---|---|---|---|---|---|')
    fmt_d = lambda r: '-' if r['lm_mean_pct_iod'] is None else '%.3f (%.3f)' % (r['lm_mean_pct_iod'],
                                                                                   r['lm_max_pct_iod'])
    for r in ag['videos']:
        p('| %s | %d%s | %.2f%% | %d | %d | %s / %s | %s | %d | %s | %.1f%% | %d / %d |'
          % (r['video'], r['frames'], '' if r['frames_fast'] == r['frames'] else ' (fast: %d!)' % r['frames_fast'],
             r['agree_pct'], r['fast_only'], r['every_only'], 'yes' if r['usable_fast'] else 'no',
             'yes' if r['usable_every'] else 'no', 'yes' if r['usable_same'] else '**NO**', r['both'], fmt_d(r),
             r['all_same_pct'], r['boxes_fast'], r['boxes_every']))
    pl = ag['pooled']
    p('| **pooled** | %d | **%.2f%%** | %d | %d | | %d of %d | %d | %s | %.1f%% | %d / %d |'
      % (pl['frames'], pl['agree_pct'], pl['fast_only'], pl['every_only'], pl['usable_same'], pl['videos'],
         pl['both'], fmt_d(pl), pl['all_same_pct'], pl['boxes_fast'], pl['boxes_every']))
    same = all(json.dumps(x['pooled'], sort_keys=True) == json.dumps(ag['pooled'], sort_keys=True)
               for x in agree_all)
    p('\nthe same agreement in every repetition: %s' % ('yes' if same else 'NO (see --json)'))
    for k in ('fast', 'every'):
        for v in videos:
            h = {r['per_video'][v.name]['faces_sha256'] for r in runs[k]}
            if len(h) > 1:
                p('**note**: %s, detect = %s: faces.bin differs between repetitions' % (v.name, k))


def targets(results, threads):
    out = []

    def t(name, value, goal, fmt, detail):
        ok = None if value is None or (isinstance(value, float) and math.isnan(value)) else value >= goal
        out.append(dict(target=name, value=value, goal=goal, result='PASS' if ok else ('MISS' if ok is False
                                                                                          else 'SKIPPED'),
                        detail=detail))
        if ok is None:
            print('- SKIPPED %s: %s' % (name, detail))
        else:
            print(('- %s %s: ' + fmt + ' (target >= ' + fmt + '%s)') %
                  ('PASS' if ok else 'MISS', name, value, goal, '' if ok else ', %.0f%% short' % (100 * (1 - value / goal))
                   ) + ('; ' + detail if detail else ''))

    fps = lambda s, k: med(fps_list(results[s][k]))
    pr = lambda s, a, b: ', '.join('%.2f' % (x / y) for x, y in zip(fps_list(results[s][a]), fps_list(results[s][b])))
    if 'hd' in results:
        t('HD, fast >= 10x naive', fps('hd', 'fast') / fps('hd', 'naive'), 10, '%.2fx',
          '%.2f vs %.2f frames/s; per repetition %s' % (fps('hd', 'fast'), fps('hd', 'naive'), pr('hd', 'fast', 'naive')))
        t('HD, fast >= 1/3 of the decode-only floor', fps('hd', 'fast') / fps('hd', 'floor'), 1 / 3, '%.3f',
          '%.2f vs %.2f frames/s; per repetition %s' % (fps('hd', 'fast'), fps('hd', 'floor'),
                                                        pr('hd', 'fast', 'floor')))
    if 'low' in results:
        t('low resolution, fast >= 4x naive', fps('low', 'fast') / fps('low', 'naive'), 4, '%.2fx',
          '%.2f vs %.2f frames/s; per repetition %s' % (fps('low', 'fast'), fps('low', 'naive'),
                                                        pr('low', 'fast', 'naive')))
    if threads is not None:
        if threads.get('refused'):
            t('long HD clip, 1 worker: threads_per_job = 0 (auto) >= 1.7x threads_per_job = 1', None, 1.7, '%.2fx',
              'this build\'s dfewd refused [daemon] threads_per_job: ' + threads['refused'])
        else:
            a, o = [r['fps'] for r in threads['runs']['0']], [r['fps'] for r in threads['runs']['1']]
            t('long HD clip, 1 worker: threads_per_job = 0 (auto) >= 1.7x threads_per_job = 1', med(a) / med(o), 1.7,
              '%.2fx', '%s: %.2f vs %.2f frames/s; per repetition %s' % (
                  threads['video'], med(a), med(o), ', '.join('%.2f' % (x / y) for x, y in zip(a, o))))
    return out


def report(raw):
    """Prints the tables and the targets from the raw numbers (a run's, or a
    --json file's with --report); adds the projection and the targets to raw."""
    m, reps, threads = raw['machine'], raw['args']['reps'], raw['threads']
    print('\nCommand: %s' % raw.get('command', '(not recorded)'))
    results = {}
    for s, d in raw['sets'].items():
        vids = {v['name']: types.SimpleNamespace(**v) for v in d['videos']}
        batches = [(b['label'], [vids[n] for n in b['videos']]) for b in d['batches']]
        report_set(s, batches, d['runs'], d['agreement'], reps)
        results[s] = d['runs']
    if threads is not None and not threads.get('refused'):
        v = threads['info']
        print('\n### one long HD clip, 1 worker, 2 cores: [daemon] threads_per_job = 1 against 0 (auto)\n')
        print('%s (%dx%d, %d frames): %s\n' % (v['name'], v['width'], v['height'], v['frames'], v['how']))
        print('| threads_per_job | threads the prep job used | frames/s, median [min .. max] | per repetition | '
              'worker prep_s / decode_s / detect_s (median) |')
        print('|---|---|---|---|---|')
        for tpj in ('1', '0'):
            rs = threads['runs'][tpj]
            print('| %s | %s | %s | %s | %.2f / %.2f / %.2f |' % (
                '0 (auto)' if tpj == '0' else tpj, ', '.join(sorted({str(r['clip']['threads']) for r in rs})),
                spread([r['fps'] for r in rs]), ', '.join('%.2f' % r['fps'] for r in rs),
                med([r['clip']['prep_s'] for r in rs]), med([r['clip']['decode_s'] for r in rs]),
                med([r['clip']['detect_s'] for r in rs])))
        if threads.get('ceiling'):
            c = threads['ceiling']
            print('\nthe ceiling of any split on this machine: two one-thread jobs of the clip at once (2 workers) '
                  'against one alone, 2 x prep_s alone / the slower prep_s of the pair: %s (median %.2fx)'
                  % (', '.join('%.2fx' % r['ratio'] for r in c), med([r['ratio'] for r in c])))
    if 'hd' in results:
        f720 = {k: med(batch_fps(results['hd'][k], '720p')) for k in PIPELINES}
        print('\n### projection: DFEW\'s %.2f M frames at 720p on this machine, 2 workers\n' % (DFEW_FRAMES / 1e6))
        print('| pipeline | 720p frames/s (median) | hours |')
        print('|---|---|---|')
        for k in PIPELINES:
            print('| %s | %.2f | %.1f |' % (TITLES[k], f720[k], DFEW_FRAMES / f720[k] / 3600))
        raw['projection_720p'] = {k: dict(fps=f720[k], hours=DFEW_FRAMES / f720[k] / 3600) for k in PIPELINES}
    print('\n### targets (2 workers on %d cores)\n' % m['nproc'])
    raw['targets'] = targets(results, threads)
    print('\nload average at the start: %.1f %.1f %.1f, at the end: %.1f %.1f %.1f'
          % (tuple(raw['load_start']) + tuple(raw['load_end'])))


# ---------------------------------------------------------------- main

class Ctx:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.path.join(SRC, 'build'), help='the build directory (default: %(default)s)')
    ap.add_argument('--reps', type=int, default=3, help='repetitions (default 3; medians are reported)')
    ap.add_argument('--set', choices=('low', 'hd', 'both', 'none'), default='both',
                    help='the video sets (none: only the long HD clip of the threads test)')
    ap.add_argument('--quick', action='store_true', help='1 repetition, fewer files (a smoke run)')
    ap.add_argument('--json', metavar='OUT', help='write every raw number to OUT')
    ap.add_argument('--threads-per-job', type=int, metavar='N',
                    help='set [daemon] threads_per_job = N for the 2-worker dfew runs (default: not set)')
    ap.add_argument('--no-threads', action='store_true', help='skip the threads_per_job test on the long HD clip')
    ap.add_argument('--ceiling', action='store_true',
                    help='also run two one-thread jobs of the long clip at once (2 workers): what any split of one '
                         'job could reach on this machine')
    ap.add_argument('--hd-dir', help='where the made HD files are kept (default: BUILD/bench/prep-hd)')
    ap.add_argument('--report', metavar='JSON', help='print the report of an earlier run\'s --json and exit')
    ap.add_argument('videos', nargs='*', help='run these videos as one set instead (no targets)')
    a = ap.parse_args()
    if a.report:
        with open(a.report) as f:
            raw = json.load(f)
        m = raw['machine']
        print('# bench/prep.py --report %s: the run of %s, %d CPUs (%s), commit %s, %d repetition(s)'
              % (a.report, m['date'], m['nproc'], m['cpu'], m['commit'], raw['args']['reps']))
        report(raw)
        return
    a.build = os.path.abspath(a.build)
    a.hd_dir = os.path.abspath(a.hd_dir or os.path.join(a.build, 'bench', 'prep-hd'))
    a.videos = [os.path.abspath(v) for v in a.videos]
    if a.quick:
        a.reps = 1
    for exe in ('dfewd', 'dfewctl', 'dfew-worker', 'bench/dfew-faces-png', 'bench/dfew-decode-floor'):
        if not os.access(os.path.join(a.build, exe), os.X_OK):
            raise SystemExit('%s/%s is missing: meson compile -C %s' % (a.build, exe, a.build))
    ctx = Ctx()
    ctx.build = a.build
    ctx.work = tempfile.mkdtemp(prefix='dfew-bench-prep-')
    ctx.threads_per_job = None
    m = machine()
    print('# bench/prep.py: %s, %d CPUs (%s), kernel %s, commit %s, %d repetition(s), load %.1f at the start'
          % (m['date'], m['nproc'], m['cpu'], m['kernel'], m['commit'], a.reps, os.getloadavg()[0]))
    raw = dict(machine=m, args=vars(a), sets={}, load_start=os.getloadavg(),
               command=' '.join(['bench/prep.py'] + sys.argv[1:]))
    try:
        sets, long_name = build_sets(a)
        for batches in sets.values():
            probe_videos(a.build, [v for _, vs in batches for v in vs])
        threads = None
        need_key = a.threads_per_job is not None or long_name
        refused = None
        if need_key:
            ok, msg = probe_threads_key(ctx)
            if not ok:
                refused = msg
                print('**note**: this build\'s dfewd refuses [daemon] threads_per_job ("%s"); the 2-worker runs go '
                      'without it and the threads test is skipped' % msg)
            elif a.threads_per_job is not None:
                ctx.threads_per_job = a.threads_per_job
        results = {s: {k: [] for k in PIPELINES} for s in sets}
        agree = {s: [] for s in sets}
        for i in range(a.reps):
            order = PIPELINES if i % 2 == 0 else tuple(reversed(PIPELINES))
            for s, batches in sets.items():
                faces = {}
                for k in order:
                    load = os.getloadavg()[0]
                    r, f = run_pipeline(ctx, k, batches)
                    r['load'] = load
                    results[s][k].append(r)
                    if f is not None:
                        faces[k] = (f, r['per_video'])
                    log('rep %d %-4s %-5s %5d frames in %7.2f s = %7.2f frames/s  (%s; load %.1f)'
                        % (i + 1, s, k, r['frames'], r['wall'], r['frames'] / r['wall'],
                           ', '.join('%s %.2f' % (b['label'], b['frames'] / b['wall']) for b in r['batches']), load))
                vids = [v for _, vs in batches for v in vs]
                agree[s].append(agreement(faces['fast'][0], faces['every'][0], faces['fast'][1], faces['every'][1],
                                          vids))
        if long_name:
            if refused:
                threads = dict(refused=refused)
            else:
                v = Video(*make_video(a.hd_dir, long_name))
                probe_videos(a.build, [v])
                threads = dict(video=v.name, info=v.info(), runs=threads_test(ctx, v, a.reps))
                if a.ceiling:
                    threads['ceiling'] = ceiling_test(ctx, v, a.reps)
        for s, batches in sets.items():
            raw['sets'][s] = dict(videos=[v.info() for _, vs in batches for v in vs],
                                  batches=[dict(label=l, videos=[v.name for v in vs]) for l, vs in batches],
                                  runs=results[s], agreement=agree[s])
        raw['threads'] = threads
        raw['load_end'] = os.getloadavg()
        report(raw)
    finally:
        shutil.rmtree(ctx.work, ignore_errors=True)
        if a.json:
            with open(a.json, 'w') as f:
                json.dump(raw, f, indent=1, default=str)


if __name__ == '__main__':
    main()
