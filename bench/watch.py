#!/usr/bin/env python3
"""`ferret watch`'s cost on a file receiving about a million spans a second.

Each round:
  1. `ferret demo` records flat out (2 threads, mixed shape) into a fresh file;
  2. `ferret watch FILE` (the TUI, default 10 s window) runs under tmux; over
     MEASURE seconds its CPU time (utime + stime from /proc) is divided by the
     wall time (% of one core), and its peak RSS (VmHWM) is read at the end;
     the demo's rate over the same interval is counted from the file;
  3. commit-to-screen latency: the window is switched to 1 s (`w` three times),
     then a one-span recorder (`ferret demo --shape deep --depth 1 --spans 1`,
     joining the same run through FERRET_RUN_ID) commits a span named `chain`;
     the time from that process's exit (its close() commits) to `chain` showing
     in the tmux pane (polled every 10 ms) is one sample. The span leaves the
     1 s window before the next sample.

Prints one line per round and the medians. Usage: bench/watch.py FERRET DIR [ROUNDS]
"""
import os
import sqlite3
import statistics
import subprocess
import sys
import time

FERRET, DIR = sys.argv[1], sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
MEASURE = float(os.environ.get("MEASURE", "10"))
LATENCY_SAMPLES = int(os.environ.get("LATENCY_SAMPLES", "5"))
SPANS = os.environ.get("SPANS", "60000000")
TCK = os.sysconf("SC_CLK_TCK")


def tmux(*args, out=False):
    r = subprocess.run(["tmux", *args], capture_output=True, text=True)
    return r.stdout if out else r.returncode


def screen(session):
    return tmux("capture-pane", "-p", "-t", session, out=True)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def spans_in(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return c.execute("SELECT coalesce(sum(count), 0) FROM ferret_blocks").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0  # not created yet


def wait_for(pred, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def one_round(i):
    db = os.path.join(DIR, f"watch-bench-{i}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    run = f"watch-bench-{os.getpid()}-{i}"
    env = dict(os.environ, FERRET_RUN_ID=run)
    demo = subprocess.Popen(
        [FERRET, "demo", "--db", db, "--spans", SPANS, "--threads", "2", "--no-analyze"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(db) and spans_in(db) > 0, 30, "the demo's first block")
    session = f"watch-bench-{os.getpid()}-{i}"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "36",
         f"exec {FERRET} watch {db}")
    try:
        pid = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}", out=True).split()[0])
        wait_for(lambda: "spans/s" in screen(session), 10, "the first screen")
        time.sleep(1.0)  # the window's first fill is part of attaching, not steady state
        t0, c0, n0, w0 = time.monotonic(), cpu_ticks(pid), spans_in(db), cpu_ticks(demo.pid)
        time.sleep(MEASURE)
        t1, c1, n1, w1 = time.monotonic(), cpu_ticks(pid), spans_in(db), cpu_ticks(demo.pid)
        cpu_pct = (c1 - c0) / TCK / (t1 - t0) * 100
        writer_pct = (w1 - w0) / TCK / (t1 - t0) * 100
        rate = (n1 - n0) / (t1 - t0)
        for _ in range(3):  # 10 s -> 30 s -> 60 s -> 1 s
            tmux("send-keys", "-t", session, "w")
        wait_for(lambda: "window 1s" in screen(session), 5, "the 1 s window")
        lat = []
        for _ in range(LATENCY_SAMPLES):
            wait_for(lambda: "chain" not in screen(session), 10, "the marker to leave the window")
            if demo.poll() is not None:
                break
            subprocess.run(
                [FERRET, "demo", "--db", db, "--shape", "deep", "--depth", "1", "--spans", "1",
                 "--threads", "1", "--no-analyze"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            committed = time.monotonic()
            wait_for(lambda: "chain" in screen(session), 10, "the marker on screen")
            lat.append((time.monotonic() - committed) * 1000)
        hwm_mb = vm_hwm_kb(pid) / 1024
        demo_alive = demo.poll() is None
    finally:
        tmux("kill-session", "-t", session)
        demo.kill()
        demo.wait()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
    if not demo_alive:
        print(f"  round {i}: WARNING the demo finished before the latency samples; raise SPANS")
    return rate, cpu_pct, hwm_mb, lat, writer_pct


def main():
    rows = []
    for i in range(1, ROUNDS + 1):
        rate, cpu, hwm, lat, wcpu = one_round(i)
        lat_s = " ".join(f"{x:.0f}" for x in lat)
        print(f"round {i}: writer {rate / 1e6:.2f} M spans/s using {wcpu:.0f}% CPU"
              f" | watch CPU {cpu:.1f}% of one core ({cpu / max(wcpu, 1e-9) * 100:.1f}% of the writer's)"
              f" | peak RSS {hwm:.1f} MB | commit-to-screen ms: {lat_s}", flush=True)
        rows.append((rate, cpu, hwm, lat, wcpu))
    med = statistics.median
    all_lat = [x for r in rows for x in r[3]]
    print(f"median of {ROUNDS} rounds: writer {med(r[0] for r in rows) / 1e6:.2f} M spans/s"
          f" ({med(r[4] for r in rows):.0f}% CPU),"
          f" watch CPU {med(r[1] for r in rows):.1f}% of one core (target <= 20%),"
          f" peak RSS {med(r[2] for r in rows):.1f} MB (target <= 50 MB)")
    if all_lat:
        print(f"commit-to-screen latency over {len(all_lat)} samples: median {med(all_lat):.0f} ms,"
              f" max {max(all_lat):.0f} ms (target <= 500 ms)")
    print(f"load average during the run: {open('/proc/loadavg').read().split()[:3]}"
          f" on {os.cpu_count()} cores (shared machine: figures are noisy)")


main()
