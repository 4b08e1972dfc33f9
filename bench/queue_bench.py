#!/usr/bin/env python3
"""queue_bench: N no-op jobs through the real dfewd + dfew-worker, beside SQLite floors.

What it is: the benchmark behind bench/README.md. Per repetition it starts a
fresh `dfewd --foreground --home H --workers W` on a new temp home, times
`dfewctl noop --count N` + `dfewctl wait` end to end (enqueue, lease, run on a
worker, complete), checks in the database that exactly N jobs are done with
exactly one 'done' event each, reads the CPU time of the daemon and of its
workers from /proc, stops the daemon with SIGTERM, and runs the floor
program (sqlite_floor, built from bench/sqlite_floor.c) in the same
repetition. Daemon and floors alternate which goes first. At the end it prints
medians (with min and max) and the daemon's overhead per job against the
floors. What it is not: a test. It builds nothing, asserts no speed, and
exits non-zero only when a run fails or the jobs do not all end done.

usage: python3 bench/queue_bench.py BUILD_DIR [--jobs N] [--reps R] [--workers W]
                                             [--floors bare,bare-ev,queue,sched]
                                             [--json FILE] [--tmp DIR] [--keep]
Python 3 standard library only.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")
TARGET_MS = 1.0  # the target: at most 1 ms of daemon overhead per job

FLOOR_DOC = {
    "bare": "SQLite floor: INSERT + UPDATE leased + UPDATE done, 3 tx/job",
    "bare-ev": "bare + one events row per transition (3 tx/job)",
    "queue": "lib/queue.c in-process: enqueue, lease, complete",
    "sched": "queue + dfewd's per-job SQL (promote, next_wake, json_each)",
}


def die(msg):
    print("queue_bench: " + msg, file=sys.stderr)
    sys.exit(1)


def proc_cpu(pid):
    """utime + stime of a live process, in seconds (None when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()  # fields after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def ctl_request(sock_path, line, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall((line + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\n")[0].decode()
    finally:
        s.close()


def wait_ready(home, proc, nworkers, timeout=30.0):
    """Waits until the control socket answers and every worker said hello."""
    sock = os.path.join(home, "dfewd.sock")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die("dfewd exited during start-up (status %s); see %s" % (proc.returncode, os.path.join(home, "dfewd.log")))
        try:
            st = json.loads(ctl_request(sock, "status"))
            ws = st.get("workers", [])
            if len(ws) == nworkers and all(w["state"] == "idle" for w in ws):
                return st
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    die("dfewd did not become ready in %.0f s (home %s)" % (timeout, home))


def run_daemon(b, n, nworkers, tmp, keep):
    home = tempfile.mkdtemp(prefix="dfew-bench-", dir=tmp)
    with open(os.path.join(home, "dfew.conf"), "w") as f:
        f.write("# written by bench/queue_bench.py\n[daemon]\nworker_program = %s\n" % b["worker"])
    log_path = os.path.join(home, "dfewd.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([b["dfewd"], "--foreground", "--home", home, "--workers", str(nworkers)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        st = wait_ready(home, proc, nworkers)
        wpids = [w["pid"] for w in st["workers"]]
        d0 = proc_cpu(proc.pid)
        w0 = [proc_cpu(p) for p in wpids]
        c0 = children_cpu()
        t0 = time.perf_counter()
        r = subprocess.run([b["dfewctl"], "--home", home, "noop", "--count", str(n)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t_enq = time.perf_counter()
        if r.returncode != 0:
            die("dfewctl noop failed (%d): %s" % (r.returncode, r.stderr.strip()))
        r = subprocess.run([b["dfewctl"], "--home", home, "wait", "--timeout", "600"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t1 = time.perf_counter()
        c1 = children_cpu()
        d1 = proc_cpu(proc.pid)
        w1 = [proc_cpu(p) for p in wpids]
        if r.returncode != 0:
            die("dfewctl wait failed (%d): %s %s" % (r.returncode, r.stdout.strip(), r.stderr.strip()))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
    if rc != 0:
        die("dfewd exited with status %d after SIGTERM; see %s" % (rc, log_path))
    if d0 is None or d1 is None or None in w0 or None in w1:
        die("a process went away before its CPU time was read (home %s)" % home)

    db = sqlite3.connect(os.path.join(home, "dfew.db"))
    q = lambda sql: db.execute(sql).fetchone()
    total, done = q("SELECT count(*), coalesce(sum(state = 'done'), 0) FROM jobs")
    one_done = q("SELECT count(*) FROM (SELECT j.id FROM jobs j LEFT JOIN events e "
                 "ON e.job_id = j.id AND e.to_state = 'done' GROUP BY j.id HAVING count(e.id) = 1)")[0]
    done_events = q("SELECT count(*) FROM events WHERE to_state = 'done'")[0]
    span = q("SELECT max(finished_at) - min(created_at) FROM jobs")[0]
    db.close()
    if not (total == n and done == n and one_done == n and done_events == n):
        die("verification failed: %d jobs, %d done, %d with exactly one 'done' event, %d 'done' events "
            "(wanted %d of each); home kept at %s" % (total, done, one_done, done_events, n, home))
    with open(log_path, errors="replace") as f:
        bad = sum(1 for line in f if " warn " in line or " error " in line)
    if not keep:
        shutil.rmtree(home)
    wall = t1 - t0
    return {
        "mode": "daemon", "jobs": n, "wall_s": wall, "enqueue_s": t_enq - t0, "run_s": t1 - t_enq,
        "db_span_s": span, "per_job_ms": wall * 1e3 / n, "jobs_per_s": n / wall,
        "daemon_cpu_s": d1 - d0, "worker_cpu_s": sum(w1) - sum(w0), "ctl_cpu_s": c1 - c0,
        "daemon_cpu_per_job_ms": (d1 - d0) * 1e3 / n, "worker_cpu_per_job_ms": (sum(w1) - sum(w0)) * 1e3 / n,
        "ctl_cpu_per_job_ms": (c1 - c0) * 1e3 / n, "log_warnings": bad, "ok": True,
    }


def run_floor(b, mode, n, tmp):
    r = subprocess.run([b["floor"], "--mode", mode, "--jobs", str(n), "--dir", tmp],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        die("sqlite_floor --mode %s failed (%d): %s %s" % (mode, r.returncode, r.stdout.strip(), r.stderr.strip()))
    return json.loads(r.stdout.strip().splitlines()[-1])


def med(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt3(xs, spec):
    m, lo, hi = med(xs)
    return (spec % m) + "  [" + (spec % lo).strip() + " .. " + (spec % hi).strip() + "]"


def main():
    ap = argparse.ArgumentParser(description="N no-op jobs through dfewd + dfew-worker beside SQLite floors.")
    ap.add_argument("build_dir")
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--floors", default="bare,bare-ev,queue,sched",
                    help="comma-separated sqlite_floor modes; the first is the baseline (default: %(default)s)")
    ap.add_argument("--json", help="also write every run and the summary to this file")
    ap.add_argument("--tmp", help="where temp homes and floor databases go (default: $TMPDIR or /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the daemon homes (for a look at dfewd.log)")
    a = ap.parse_args()

    bd = os.path.abspath(a.build_dir)
    b = {"dfewd": os.path.join(bd, "dfewd"), "dfewctl": os.path.join(bd, "dfewctl"),
         "worker": os.path.join(bd, "dfew-worker"), "floor": os.path.join(bd, "bench", "sqlite_floor")}
    for k, p in b.items():
        if not os.access(p, os.X_OK):
            die("%s is missing: build first (meson setup %s && ninja -C %s)" % (p, a.build_dir, a.build_dir))
    floors = [f for f in a.floors.split(",") if f]
    for f in floors:
        if f not in FLOOR_DOC:
            die("unknown floor mode '%s' (known: %s)" % (f, ", ".join(FLOOR_DOC)))
    tmp = tempfile.mkdtemp(prefix="dfew-qbench-", dir=a.tmp)

    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    buildtype = "?"
    try:
        with open(os.path.join(bd, "meson-info", "intro-buildoptions.json")) as f:
            buildtype = next(o["value"] for o in json.load(f) if o["name"] == "buildtype")
    except (OSError, ValueError, StopIteration, KeyError):
        pass
    print("queue_bench: %d jobs x %d reps, %d workers, build %s (%s), %d cores (%s), SQLite %s (python's)"
          % (a.jobs, a.reps, a.workers, bd, buildtype, os.cpu_count(), cpu_model, sqlite3.sqlite_version), flush=True)

    runs = {m: [] for m in ["daemon"] + floors}
    try:
        for rep in range(a.reps):
            order = ["floors", "daemon"] if rep % 2 == 0 else ["daemon", "floors"]
            for what in order:
                if what == "daemon":
                    r = run_daemon(b, a.jobs, a.workers, tmp, a.keep)
                    runs["daemon"].append(r)
                    print("rep %d daemon   %7.3f s  %7.0f jobs/s  %.3f ms/job  daemon cpu %.3f ms/job  "
                          "workers %.3f  dfewctl %.3f  (warn/error log lines: %d)"
                          % (rep + 1, r["wall_s"], r["jobs_per_s"], r["per_job_ms"], r["daemon_cpu_per_job_ms"],
                             r["worker_cpu_per_job_ms"], r["ctl_cpu_per_job_ms"], r["log_warnings"]), flush=True)
                else:
                    for f in floors:
                        r = run_floor(b, f, a.jobs, tmp)
                        runs[f].append(r)
                        print("rep %d %-8s %7.3f s  %7.0f jobs/s  %.3f ms/job  cpu %.3f ms/job"
                              % (rep + 1, f, r["wall_s"], r["jobs_per_s"], r["per_job_ms"], r["cpu_per_job_ms"]),
                              flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = floors[0] if floors else None
    print()
    print("Medians over %d repetitions, [min .. max]; %d jobs per run" % (a.reps, a.jobs))
    print("%-9s %-26s %-28s %-30s %s" % ("run", "wall s", "jobs/s", "ms/job (wall)", "CPU ms/job"))
    for m, rs in runs.items():
        cpu_key = "daemon_cpu_per_job_ms" if m == "daemon" else "cpu_per_job_ms"
        print("%-9s %-26s %-28s %-30s %s" % (
            m, fmt3([r["wall_s"] for r in rs], "%.3f"), fmt3([r["jobs_per_s"] for r in rs], "%.0f"),
            fmt3([r["per_job_ms"] for r in rs], "%.3f"), fmt3([r[cpu_key] for r in rs], "%.3f")))
    d = runs["daemon"]
    print()
    print("CPU per job in the daemon run (ms): dfewd %s; workers %s; dfewctl %s"
          % (fmt3([r["daemon_cpu_per_job_ms"] for r in d], "%.3f"), fmt3([r["worker_cpu_per_job_ms"] for r in d], "%.3f"),
             fmt3([r["ctl_cpu_per_job_ms"] for r in d], "%.3f")))
    for f in floors:
        if runs[f] and "ms_per_job" in runs[f][0]:
            parts = runs[f][0]["ms_per_job"].keys()
            print("%s floor, where its time goes (median ms/job): %s" % (f, ", ".join(
                "%s %.4f" % (k, statistics.median(r["ms_per_job"][k] for r in runs[f])) for k in parts)))
    summary = {"jobs": a.jobs, "reps": a.reps, "workers": a.workers, "buildtype": buildtype, "cpu": cpu_model,
               "cores": os.cpu_count(), "overhead": {}}
    for f in floors:
        # Paired per repetition: daemon and floor ran in the same repetition.
        over = [dr["per_job_ms"] - fr["per_job_ms"] for dr, fr in zip(d, runs[f])]
        ratio = [dr["per_job_ms"] / fr["per_job_ms"] for dr, fr in zip(d, runs[f])]
        cpu_over = [dr["daemon_cpu_per_job_ms"] - fr["cpu_per_job_ms"] for dr, fr in zip(d, runs[f])]
        print("daemon vs %-8s overhead %s ms/job (wall), ratio %s x, dfewd CPU minus floor CPU %s ms/job"
              % (f, fmt3(over, "%.3f"), fmt3(ratio, "%.2f"), fmt3(cpu_over, "%.3f")))
        summary["overhead"][f] = {"wall_ms_per_job": med(over), "ratio": med(ratio), "cpu_ms_per_job": med(cpu_over)}
    if base:
        over = statistics.median(dr["per_job_ms"] - fr["per_job_ms"] for dr, fr in zip(d, runs[base]))
        cpu = statistics.median(r["daemon_cpu_per_job_ms"] for r in d)
        ok = over <= TARGET_MS and cpu <= TARGET_MS
        print("verdict: daemon overhead over the %s floor %.3f ms/job (wall), dfewd CPU %.3f ms/job; target <= %.1f ms: %s"
              % (base, over, cpu, TARGET_MS, "MET" if ok else "MISSED"))
        summary["verdict"] = {"overhead_ms": over, "daemon_cpu_ms": cpu, "target_ms": TARGET_MS, "met": ok}
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
