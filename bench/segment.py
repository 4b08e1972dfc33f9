#!/usr/bin/env python3
"""bench/segment: the segment job's speed, dfew's subsampled face detection
against the baseline of detecting on every frame, same movies, same run
(see bench/README.md).

One dfew-worker process (started here and driven over its stdin/stdout
protocol, as dfewd drives it; no daemon, no database) runs segment jobs:

(a) every frame: [segment] detect_interval = 0: dlib's HOG detector on
    every whole decoded frame (the tracker's every-search mode), plus the
    scene score of every frame;
(b) dfew: detect_interval = 1 s (the default): the face tracker of the prep
    job (media/track.h) searches the whole frame at each shot's first frame,
    every second and while there is no track, and looks for the faces it
    follows near their boxes in every other frame.

Both decode every frame and find the same cuts. Reports frames/s (decoded
frames / the job's total_s, its own clock), the medians over --reps runs
(alternating a and b), and the ratio b/a; also the clips each chose (frame
ranges), to see what the tracker gives up.

usage: bench/segment.py [--build DIR] [--reps N] [VIDEO...]"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
TESTDATA = os.path.join(SRC, '..', 'shared', 'testdata', 'videos')
DEFAULT_VIDEOS = [os.path.join(TESTDATA, 'short_hamilton_clip.mp4'),
                  '/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4']


def encode(v):
    """The protocol's percent-encoding of a value (lib/proto.h)."""
    out = []
    for b in str(v).encode():
        out.append('%%%02X' % b if b <= 32 or b in (37, 61, 127) else chr(b))
    return ''.join(out)


def decode(v):
    b, i = bytearray(), 0
    while i < len(v):
        if v[i] == '%':
            b.append(int(v[i + 1:i + 3], 16))
            i += 3
        else:
            b += v[i].encode()
            i += 1
    return b.decode(errors='replace')


class Worker:
    def __init__(self, build):
        self.p = subprocess.Popen([os.path.join(build, 'dfew-worker')], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        hello = self.p.stdout.readline().split()
        if not hello or hello[0] != 'hello' or 'segment' not in ' '.join(hello):
            raise SystemExit('dfew-worker did not say hello with the segment kind: %s' % hello)
        self.next_id = 1

    def run(self, fields):
        job = 'job id=%d kind=segment attempt=1 ' % self.next_id
        self.next_id += 1
        self.p.stdin.write(job + ' '.join('%s=%s' % (k, encode(v)) for k, v in fields.items()) + '\n')
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit('dfew-worker exited')
            parts = line.split()
            if parts[0] == 'progress':
                continue
            kv = dict(p.split('=', 1) for p in parts[1:])
            kv = {k: decode(v) for k, v in kv.items()}
            if parts[0] == 'fail':
                raise SystemExit('segment job failed: %s' % kv.get('error'))
            return kv

    def close(self):
        self.p.stdin.write('quit\n')
        self.p.stdin.close()
        self.p.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default=os.path.join(SRC, 'build'))
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('videos', nargs='*')
    a = ap.parse_args()
    videos = a.videos or [v for v in DEFAULT_VIDEOS if os.path.exists(v)]
    if not videos:
        raise SystemExit('no videos (../shared/testdata or Debian forensics-samples-files)')
    w = Worker(a.build)
    out = tempfile.mkdtemp(prefix='bench-segment-')
    modes = {'a every frame': 0.0, 'b dfew 1 s': 1.0}
    every, dfew = list(modes)
    rates = {m: [] for m in modes}
    detail = {}
    try:
        for rep in range(a.reps):
            order = list(modes) if rep % 2 == 0 else list(reversed(list(modes)))
            for m in order:
                frames = seconds = 0.0
                for i, v in enumerate(videos):
                    r = w.run({'path': os.path.abspath(v), 'movie_id': i + 1,
                               'out_dir': os.path.join(out, 'movies', str(i + 1)),
                               'detect_interval_s': modes[m]})
                    frames += float(r['frames'])
                    seconds += float(r['total_s'])
                    with open(r['segments']) as f:
                        seg = json.load(f)
                    r['ranges'] = ' '.join('[%d,%d)' % (c['start_frame'], c['end_frame'])
                                           for c in seg['candidates'] if c['chosen'])
                    detail[(m, os.path.basename(v))] = r
                rates[m].append(frames / seconds)
                print('rep %d %-14s %7.1f frames/s' % (rep + 1, m, frames / seconds), flush=True)
    finally:
        w.close()
        subprocess.run(['rm', '-rf', out])
    print()
    print('last repetition:')
    print('%-14s %-26s %7s %7s %7s %9s %9s  %s' % ('mode', 'video', 'frames', 'samples', 'shots', 'detect_s',
                                                  'total_s', 'clips (frames)'))
    for (m, v), r in sorted(detail.items()):
        print('%-14s %-26s %7s %7s %7s %9s %9s  %s' % (m, v, r['frames'], r['samples'], r['shots'], r['detect_s'],
                                                       r['total_s'], r['ranges']))
    med = {m: statistics.median(r) for m, r in rates.items()}
    print()
    for m in modes:
        print('%-14s median %7.1f frames/s over %d reps' % (m, med[m], a.reps))
    print('ratio b/a: %.2f (per repetition %s)' % (med[dfew] / med[every],
                                                   ', '.join('%.2f' % (b / a) for a, b in zip(rates[every], rates[dfew]))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
