#!/usr/bin/env python3
"""bench/prep: clip preprocessing throughput, dfew against the naive pipeline,
on the same videos in the same run (see bench/README.md).

(a) naive: for each video, `ffmpeg -fps_mode passthrough` writes every frame
    as PNG, then dfew-faces-png (the same dlib wrapper, the same grey input)
    detects faces and 68 landmarks in each PNG at full size. Two videos at a
    time, like (b)'s two workers.
(b) dfew: a fresh home, a real dfewd with 2 workers; `dfewctl submit` the
    videos (probe, then one whole-movie prep job each: decode in process,
    faces, alignment, TIM, outputs) and `dfewctl wait`.

Reports frames/s (decoded video frames / wall time), the peak RSS of each
process that did the work (getrusage of the naive processes, VmHWM of the
dfew workers), and the ratio b/a; medians over --reps runs, alternating.

usage: bench/prep.py [--build DIR] [--reps N] [VIDEO...]"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
TESTDATA = os.path.join(SRC, '..', 'shared', 'testdata', 'videos')
DEFAULT_VIDEOS = [os.path.join(TESTDATA, 'single_face.mp4'), os.path.join(TESTDATA, 'short_hamilton_clip.mp4'),
                  os.path.join(TESTDATA, 'no_face.mp4'),
                  '/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4']


def run_rusage(cmd):
    """Runs cmd; returns its peak RSS in MiB (from wait4)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors='replace')
    p.stderr.close()
    if p.returncode != 0:
        raise SystemExit('%s failed (%d): %s' % (cmd[0], p.returncode, err[-2000:]))
    return ru.ru_maxrss / 1024.0


def naive_one(build, video, work):
    d = tempfile.mkdtemp(prefix='naive-', dir=work)
    try:
        rss_ff = run_rusage(['ffmpeg', '-nostdin', '-v', 'error', '-i', video, '-map', '0:v:0',
                             '-fps_mode', 'passthrough', os.path.join(d, '%06d.png')])
        pngs = sorted(os.path.join(d, f) for f in os.listdir(d))
        rss_det = run_rusage([os.path.join(build, 'bench', 'dfew-faces-png')] + pngs)
        return len(pngs), rss_ff, rss_det
    finally:
        shutil.rmtree(d, ignore_errors=True)


def naive(build, videos, work):
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda v: naive_one(build, v, work), videos))
    wall = time.monotonic() - t0
    frames = sum(r[0] for r in res)
    return dict(wall=wall, frames=frames, rss=max(max(r[1], r[2]) for r in res),
                rss_detector=max(r[2] for r in res), rss_ffmpeg=max(r[1] for r in res))


def vm_hwm_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def ours(build, videos, work):
    home = tempfile.mkdtemp(prefix='dfew-home-', dir=work)
    ctl = [os.path.join(build, 'dfewctl'), '--home', home]
    d = subprocess.Popen([os.path.join(build, 'dfewd'), '--foreground', '--home', home, '--workers', '2'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            r = subprocess.run(ctl + ['--json', 'status', '--once'], capture_output=True, text=True)
            st = json.loads(r.stdout) if r.returncode == 0 else {}
            if st.get('daemon') and sum(w['state'] == 'idle' for w in st['daemon']['workers']) == 2:
                break
            time.sleep(0.05)
        else:
            raise SystemExit('dfewd did not start')
        pids = [w['pid'] for w in st['daemon']['workers']]
        t0 = time.monotonic()
        subprocess.run(ctl + ['submit'] + videos, check=True, capture_output=True)
        r = subprocess.run(ctl + ['wait', '--timeout', '3600'], capture_output=True, text=True)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit('dfewctl wait: %s %s' % (r.stdout, r.stderr))
        rss = [vm_hwm_mib(p) for p in pids]
        r = subprocess.run(['sqlite3', os.path.join(home, 'dfew.db'),
                            "SELECT sum(frames_total), sum(frames_face), sum(decode_s), sum(detect_s), sum(align_s),"
                            " sum(write_s) FROM clips"], check=True, capture_output=True, text=True)
        frames, faces, dec, det, ali, wri = r.stdout.strip().split('|')
        return dict(wall=wall, frames=int(frames), faces=int(faces), rss=max(rss), rss_workers=rss,
                    stages=dict(decode=float(dec), detect=float(det), align=float(ali), write=float(wri)))
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(home, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.path.join(SRC, 'build'))
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('videos', nargs='*')
    a = ap.parse_args()
    videos = [os.path.abspath(v) for v in (a.videos or DEFAULT_VIDEOS) if os.path.exists(v)]
    if not videos:
        raise SystemExit('no videos (../shared/testdata beside the checkout, or name some)')
    work = tempfile.mkdtemp(prefix='dfew-bench-prep-')
    runs = {'naive': [], 'dfew': []}
    try:
        for i in range(a.reps):
            for name, fn in (('naive', naive), ('dfew', ours)) if i % 2 == 0 else (('dfew', ours), ('naive', naive)):
                r = fn(a.build, videos, work)
                runs[name].append(r)
                print('rep %d %-5s %4d frames in %6.2f s = %6.2f frames/s, peak RSS %6.1f MiB' %
                      (i + 1, name, r['frames'], r['wall'], r['frames'] / r['wall'], r['rss']), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fps = {k: statistics.median(r['frames'] / r['wall'] for r in v) for k, v in runs.items()}
    frames = {k: v[0]['frames'] for k, v in runs.items()}
    if frames['naive'] != frames['dfew']:
        print('warning: the pipelines saw different frame counts: %s' % frames, file=sys.stderr)
    print('videos: %s (%d frames)' % (', '.join(os.path.basename(v) for v in videos), frames['dfew']))
    print('| pipeline | frames/s (median of %d) | peak RSS per process (MiB) |' % a.reps)
    print('|---|---|---|')
    print('| (a) naive: ffmpeg -> PNG -> dfew-faces-png, 2 at a time | %.2f | ffmpeg %.0f, detector %.0f |'
          % (fps['naive'], max(r['rss_ffmpeg'] for r in runs['naive']), max(r['rss_detector'] for r in runs['naive'])))
    print('| (b) dfew: dfewd, 2 prep workers | %.2f | workers %s |'
          % (fps['dfew'], ', '.join('%.0f' % x for x in runs['dfew'][-1]['rss_workers'])))
    print('| ratio b/a | %.2f | |' % (fps['dfew'] / fps['naive']))
    pairs = [(d['frames'] / d['wall']) / (n['frames'] / n['wall']) for d, n in zip(runs['dfew'], runs['naive'])]
    print('ratio b/a per repetition: %s' % ', '.join('%.2f' % r for r in pairs))
    st = runs['dfew'][-1]['stages']
    tot = sum(st.values())
    print('dfew worker time by stage (last run): ' +
          ', '.join('%s %.1f%%' % (k, 100 * v / tot) for k, v in st.items()))


if __name__ == '__main__':
    main()
