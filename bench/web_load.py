#!/usr/bin/env python3
"""Benchmark: dfew-web under load at DFEW's size (16,372 clips, 163,720 votes,
1,500 movies; the home bench/dataset_scale.py makes), with N concurrent
clients (20 by default), each a process with its own keep-alive connection.

Measured, each alone for --seconds: the clip list (/clips, 100 rows, and a
filtered, sorted page), one clip's page (/clip/ID, random clips), and
annotators at work (each client one annotator: GET /annotate hands out the
next clip, then the vote POST; the home allows an 11th vote per clip, so
every POST stores a vote). Reported: median and p99 latency and requests/s.

Baselines in the same run: the HTTP floor (/static/app.js from the same
server under the same load: no database, no rendering) and the SQL floor
(the clip list's query run by Python's sqlite3 in one process). Ratios are
ours / baseline. Targets (issue 15): median < 100 ms and p99 < 300 ms.

  python3 bench/web_load.py [--build build] [--clients 20] [--seconds 10] [--clips 16372]
"""
import argparse
import http.client
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dataset_scale import make_home  # noqa: E402


def client(args):
    """One client: requests for `seconds`; returns {what: latencies in ms}.
    kind 'annotate' is an annotator's loop: GET /annotate (the next clip
    handed out), then POST its vote."""
    port, seconds, kind, ident, seed = args
    rng = random.Random(seed)
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    lat = {}
    clip_ids, token, csrf = ident
    cookie = {'Cookie': 'dfew_session=' + token}

    def req(what, method, path, body=None, want=200):
        headers = dict(cookie)
        if body:
            headers['Content-Type'] = 'application/x-www-form-urlencoded'
        t0 = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        lat.setdefault(what, []).append((time.perf_counter() - t0) * 1000)
        if r.status != want:
            # reported by the parent (an exception here would hang Pool.map)
            lat.setdefault('errors', []).append('%s %s: HTTP %d %s' % (method, path, r.status, data[:200]))
            return b''
        return data

    end = time.time() + seconds
    n = 0
    while time.time() < end:
        if kind == 'clips':
            req('clips', 'GET', '/clips' if n % 2 == 0 else
                '/clips?state=usable&bucket=2-5s&sort=duration&dir=desc&page=%d' % (1 + rng.randrange(20)))
        elif kind == 'clip':
            req('clip', 'GET', '/clip/%d' % rng.choice(clip_ids))
        elif kind == 'static':
            req('static', 'GET', '/static/app.js')
        else:
            page = req('next', 'GET', '/annotate').decode()
            m = re.search(r'name="clip" value="(\d+)"', page)
            if not m:
                break
            req('vote', 'POST', '/annotate/vote', 'csrf=%s&clip=%s&emotion=%d' % (csrf, m.group(1),
                                                                                  1 + rng.randrange(7)), 303)
        n += 1
    conn.close()
    return lat


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default=os.path.join(os.path.dirname(__file__), '..', 'build'))
    ap.add_argument('--clients', type=int, default=20)
    ap.add_argument('--seconds', type=float, default=10)
    ap.add_argument('--clips', type=int, default=16372)
    ap.add_argument('--threads', type=int, default=4, help='dfew-web --threads')
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    ctl = os.path.join(build, 'dfewctl')
    web = os.path.join(build, 'web', 'dfew-web')
    if not os.path.exists(web):
        sys.exit('%s is not built (libmicrohttpd-dev missing?)' % web)
    tmp = tempfile.mkdtemp(prefix='dfew-webbench-')
    server = None
    try:
        home = os.path.join(tmp, 'home')
        os.mkdir(home)
        with open(os.path.join(home, 'dfew.conf'), 'w') as f:
            f.write('[labels]\nannotators_per_clip = 11\n')
        t0 = time.time()
        make_home(ctl, home, a.clips)
        con = sqlite3.connect(os.path.join(home, 'dfew.db'))
        nclips, nvotes = con.execute('SELECT (SELECT count(*) FROM clips), (SELECT count(*) FROM votes)').fetchone()
        usable = [r[0] for r in con.execute("SELECT id FROM clips WHERE state = 'usable' ORDER BY id")]
        con.close()
        print('home: %d clips, %d votes, made in %.1f s' % (nclips, nvotes, time.time() - t0))
        tokens = []
        for i in range(a.clients):
            link = subprocess.run([ctl, '--home', home, 'annotators', 'add', 'bench%02d' % i], check=True,
                                  capture_output=True, text=True).stdout.strip()
            tokens.append(link.split('token=')[1])
        server = subprocess.Popen([web, '--home', home, '--listen', '127.0.0.1:0', '--threads', str(a.threads)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        m = re.search(r':(\d+)/', server.stdout.readline().decode())
        port = int(m.group(1))
        admin = open(os.path.join(home, 'web.token')).read().strip()
        csrfs = []
        for t in tokens:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
            c.request('GET', '/annotate', headers={'Cookie': 'dfew_session=' + t})
            page = c.getresponse().read().decode()
            csrfs.append(re.search(r'name="csrf" content="([0-9a-f]+)"', page).group(1))
            c.close()
        results = {}
        for kind in ('static', 'clips', 'clip', 'annotate'):
            jobs = []
            for i in range(a.clients):
                tok, csrf = (admin, '') if kind != 'annotate' else (tokens[i], csrfs[i])
                jobs.append((port, a.seconds, kind, (usable, tok, csrf), 1000 + i))
            t0 = time.perf_counter()
            with multiprocessing.Pool(a.clients) as pool:
                lats = pool.map(client, jobs)
            wall = time.perf_counter() - t0
            errors = [e for l in lats for e in l.pop('errors', [])]
            if errors:
                sys.exit('%d requests failed, e.g. %s' % (len(errors), errors[:3]))
            for what in sorted({w for l in lats for w in l}):
                allv = [x for l in lats for x in l.get(what, [])]
                results[what] = (statistics.median(allv), pct(allv, 99), len(allv) / wall, len(allv))
        # the SQL floor: the clip list's query alone, in one process
        con = sqlite3.connect(os.path.join(home, 'dfew.db'))
        sql_t = []
        for _ in range(20):
            t0 = time.perf_counter()
            con.execute('SELECT c.id, c.movie_id, c.state, c.end_s - c.start_s, c.face_ratio, c.reason, l.votes, '
                        'l.label_name FROM (SELECT * FROM clips ORDER BY id LIMIT 100) c '
                        'LEFT JOIN clip_labels l ON l.clip_id = c.id').fetchall()
            sql_t.append((time.perf_counter() - t0) * 1000)
        con.close()
        sql_floor = statistics.median(sql_t)
        stored = sqlite3.connect(os.path.join(home, 'dfew.db')).execute(
            "SELECT count(*) FROM votes WHERE annotator LIKE 'bench%'").fetchone()[0]
        print('dfew-web at DFEW size: %d clients, %d threads, %.0f s per kind, %d CPUs' % (
            a.clients, a.threads, a.seconds, os.cpu_count()))
        print('  %-34s %9s %9s %9s %8s' % ('request', 'median', 'p99', 'req/s', 'n'))
        names = {'static': '/static/app.js (HTTP floor)', 'clips': '/clips (list, 100 rows)',
                 'clip': '/clip/ID (one clip)', 'next': 'GET /annotate (next clip)', 'vote': 'POST /annotate/vote'}
        for kind, (med, p99, rps, n) in results.items():
            print('  %-34s %7.1f ms %6.1f ms %9.0f %8d' % (names[kind], med, p99, rps, n))
        print('  votes stored by the POSTs: %d (of %d sent)' % (stored, results['vote'][3]))
        print('baseline: HTTP floor median %.2f ms; SQL floor (clip list query in Python sqlite3) median %.2f ms' % (
            results['static'][0], sql_floor))
        for kind in ('clips', 'clip', 'next', 'vote'):
            med, p99 = results[kind][:2]
            print('  %-24s median / HTTP floor %.1f; target median < 100 ms: %s, p99 < 300 ms: %s' % (
                names[kind], med / results['static'][0], 'met' if med < 100 else 'MISSED',
                'met' if p99 < 300 else 'MISSED'))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
