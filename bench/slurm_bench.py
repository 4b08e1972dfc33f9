#!/usr/bin/env python3
"""slurm_bench: the Slurm executor's per-job overhead against the local pool.

What it is: the benchmark behind bench/README.md's Slurm section. It starts
a one-node Slurm cluster (tests/slurm/cluster.sh: Debian's slurm-wlm and
munge, as root), then per repetition, alternating which goes first, runs the
same work through a fresh dfewd with the local executor (2 workers) and with
the Slurm executor on that node:

- latency: one no-op job, `dfewctl noop` + `dfewctl wait`, end to end;
- batch: N no-op jobs at once (jobs in flight: the node's CPUs for Slurm, 2
  workers for local) end to end, and the most jobs seen in flight;
- prep: one short prep job (a 2 s clip of single_face.mp4 from a clip list),
  from submit to done (the probe job before it is timed apart and left out).

It prints medians (min, max) and the ratios Slurm / local, the per-job
overhead of Slurm (latency difference), and, on paper from those medians,
how long a 200-clip prep batch takes on 1, 2, 4, 8 and 16 such nodes. What it
is not: a test; it asserts no speed and fails only when a run fails.

usage: python3 bench/slurm_bench.py BUILD_DIR [--reps R] [--jobs N] [--json FILE]
Python 3 standard library only. Needs root (the cluster) and ../shared/testdata.
"""
import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
FIXTURE = os.path.join(SOURCE, 'tests', 'slurm', 'cluster.sh')
MOVIE = os.path.join(SOURCE, '..', 'shared', 'testdata', 'videos', 'single_face.mp4')


RUNNING = []  # dfewd processes to stop however the benchmark ends


def die(msg):
    print('slurm_bench: ' + msg, file=sys.stderr)
    sys.exit(1)


class Daemon:
    def __init__(self, build, slurm, config=''):
        self.build = build
        self.home = tempfile.mkdtemp(prefix='dfew-sbench-')
        conf = '[prep]\nmin_face_ratio = 0\n' + config
        if slurm:
            conf += '[executor]\nkind = slurm\n[slurm]\npoll_interval = 0.2s\ncpus = 1\n'
        with open(os.path.join(self.home, 'dfew.conf'), 'w') as f:
            f.write(conf)
        args = [os.path.join(build, 'dfewd'), '--foreground', '--home', self.home]
        if not slurm:
            args += ['--workers', '2']
        self.log = open(os.path.join(self.home, 'dfewd.log'), 'ab')
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        RUNNING.append(self.proc)
        end = time.time() + 60
        while time.time() < end:
            st = self.status()
            if st and any(w['state'] in ('idle', 'busy') for w in st['workers']):
                return
            if self.proc.poll() is not None:
                die('dfewd exited during start-up; see %s/dfewd.log' % self.home)
            time.sleep(0.05)
        die('dfewd did not get ready in 60 s')

    def ctl(self, *args):
        r = subprocess.run([os.path.join(self.build, 'dfewctl'), '--home', self.home] + list(args),
                           capture_output=True, text=True, timeout=900)
        if r.returncode:
            die('dfewctl %s: %s' % (' '.join(args), r.stderr.strip()))
        return r.stdout

    def status(self):
        r = subprocess.run([os.path.join(self.build, 'dfewctl'), '--home', self.home, '--json', 'status', '--once'],
                           capture_output=True, text=True)
        return json.loads(r.stdout).get('daemon') if r.returncode == 0 else None

    def count_done(self):
        con = sqlite3.connect(os.path.join(self.home, 'dfew.db'), timeout=30)
        try:
            return con.execute("SELECT count(*), sum(state = 'done') FROM jobs").fetchone()
        finally:
            con.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=120) != 0:
            die('dfewd exited %d; see %s/dfewd.log' % (self.proc.returncode, self.home))
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def one_rep(build, slurm, n):
    d = Daemon(build, slurm)
    out = {}
    out['latency'] = timed(lambda: (d.ctl('noop'), d.ctl('wait', '--timeout', '300')))
    peak = [0]

    def batch():
        d.ctl('noop', '--count', str(n))
        while True:
            st = d.status() or {'workers': []}
            peak[0] = max(peak[0], sum(1 for w in st['workers'] if w['state'] == 'busy'))
            total, done = d.count_done()
            if done == total:
                return
            time.sleep(0.05)
    out['batch'] = timed(batch)
    out['in_flight'] = peak[0]
    # a short prep job: probe first (not timed), then the clip
    lst = os.path.join(d.home, 'clips.csv')
    with open(lst, 'w') as f:
        f.write('0.2,2.2\n')
    d.ctl('submit', MOVIE, '--clips', lst)
    t0 = time.perf_counter()
    d.ctl('wait', '--timeout', '600')
    both = time.perf_counter() - t0
    con = sqlite3.connect(os.path.join(d.home, 'dfew.db'), timeout=30)
    (probe_s,) = con.execute("SELECT finished_at - started_at FROM jobs WHERE kind = 'probe'").fetchone()
    (prep_run_s,) = con.execute("SELECT finished_at - started_at FROM jobs WHERE kind = 'prep'").fetchone()
    (ok,) = con.execute("SELECT count(*) FROM jobs WHERE kind = 'prep' AND state = 'done'").fetchone()
    con.close()
    if ok != 1:
        die('the prep job did not end done (%s executor)' % ('slurm' if slurm else 'local'))
    out['probe+prep'] = both
    out['prep_lease_to_done'] = prep_run_s
    out['probe_lease_to_done'] = probe_s
    total, done = d.count_done()
    if total != done:
        die('%d of %d jobs done' % (done, total))
    d.stop()
    return out


def med(xs):
    return statistics.median(xs), min(xs), max(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--jobs', type=int, default=20)
    ap.add_argument('--json')
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if not os.path.exists(MOVIE):
        die('%s is missing (../shared/testdata)' % MOVIE)
    cdir = tempfile.mkdtemp(prefix='dfew-sbench-cluster-')
    r = subprocess.run(['bash', FIXTURE, 'start', cdir], capture_output=True, text=True)
    if r.returncode == 77:
        print('slurm_bench: skipped: ' + r.stderr.strip())
        sys.exit(77)
    try:
        if r.returncode:
            die('the test cluster did not start: ' + r.stderr)
        os.environ['SLURM_CONF'] = os.path.join(cdir, 'slurm.conf')
        cpus = int(subprocess.run(['sinfo', '-h', '-o', '%c'], capture_output=True, text=True).stdout.split()[0])
        res = {'local': [], 'slurm': []}
        for rep in range(a.reps):
            order = ['local', 'slurm'] if rep % 2 == 0 else ['slurm', 'local']
            for ex in order:
                res[ex].append(one_rep(build, ex == 'slurm', a.jobs))
                print('rep %d %-5s %s' % (rep + 1, ex, json.dumps({k: round(v, 3) for k, v in res[ex][-1].items()})),
                      flush=True)
    finally:
        for p in RUNNING:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(['bash', FIXTURE, 'stop', cdir])
        shutil.rmtree(cdir, ignore_errors=True)
    summary = {}
    print('\n%-22s %24s %24s %8s' % ('median (min-max), s', 'local (2 workers)', 'slurm (1 node, %d CPUs)' % cpus,
                                      'ratio'))
    for k in ['latency', 'batch', 'probe+prep', 'prep_lease_to_done', 'in_flight']:
        lo, sl = med([x[k] for x in res['local']]), med([x[k] for x in res['slurm']])
        summary[k] = {'local': lo[0], 'slurm': sl[0], 'ratio': sl[0] / lo[0] if lo[0] else None}
        ratio = '%8.2f' % summary[k]['ratio'] if summary[k]['ratio'] else '%8s' % '-'
        print('%-22s %24s %24s %s' % (k, '%.3f (%.3f-%.3f)' % lo, '%.3f (%.3f-%.3f)' % sl, ratio))
    over = summary['latency']['slurm'] - summary['latency']['local']
    # a batch keeps every CPU of the node busy: each job slot's share of its time
    per_batch = summary['batch']['slurm'] * cpus / a.jobs - summary['batch']['local'] * 2 / a.jobs
    prep = summary['prep_lease_to_done']['local']
    print('\nSlurm overhead per job: %.2f s (one no-op job, end to end, against the local pool); '
          '%.2f s per job slot in a batch of %d' % (over, per_batch, a.jobs))
    print('on paper, a 200-clip prep batch (each clip %.2f s of prep on the local pool, + %.2f s Slurm overhead, '
          '%d jobs per node):' % (prep, over, cpus))
    scale = {}
    for nodes in (1, 2, 4, 8, 16):
        waves = math.ceil(200 / (nodes * cpus))
        t = waves * (prep + over)
        scale[nodes] = t
        print('  %2d node(s): %7.1f s  (%.2fx of one node)' % (nodes, t, scale[1] / t))
    local200 = math.ceil(200 / 2) * prep
    print('  the local pool (2 workers): %.1f s; one Slurm node / local = %.2f' % (local200, scale[1] / local200))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'runs': res, 'summary': summary, 'overhead_s': over, 'scale_200': scale, 'cpus': cpus}, f,
                      indent=1)


if __name__ == '__main__':
    main()
