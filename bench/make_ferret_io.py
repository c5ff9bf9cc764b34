#!/usr/bin/env python3
"""Writes a ferret-io (BeaverDB log) file with N spans in the layout the
Python ferret-io 0.3.1 writes: beaver_logs rows keyed by (log_name, start),
one JSON span each.

Shapes:
  batch    many short roots (`process_batch`) with 3-9 children each,
           realistic names, tags and ~1% errors (the default);
  service  a long-running service: one root (`main`) open for the whole run
           and N-1 spans directly under it, 300 distinct names such as
           `module_3.function_73`, float timestamps, empty tags.

usage: make_ferret_io.py OUT.db N [RUN_ID] [--shape batch|service]
"""
import json, random, sqlite3, sys, uuid

args = [a for a in sys.argv[1:] if not a.startswith("--shape")]
shape = "batch"
for i, a in enumerate(sys.argv):
    if a.startswith("--shape="):
        shape = a.split("=", 1)[1]
    elif a == "--shape":
        shape = sys.argv[i + 1]
        args.remove(shape)
if shape not in ("batch", "service"):
    sys.exit(f"unknown shape {shape!r} (batch, service)")
out, n = args[0], int(args[1])
run = args[2] if len(args) > 2 else uuid.uuid4().hex
rnd = random.Random(42)
con = sqlite3.connect(out)
con.execute("PRAGMA journal_mode=WAL")
con.execute("""CREATE TABLE IF NOT EXISTS beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL,
               data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp))""")
con.execute("CREATE INDEX IF NOT EXISTS idx_logs_timestamp ON beaver_logs (log_name, timestamp)")
t = 1795711277.0
rows, made = [], 0
dumps = lambda d: json.dumps(d, separators=(",", ":"))


def flush(force=False):
    global rows
    if rows and (force or len(rows) > 50000):
        con.executemany("INSERT INTO beaver_logs VALUES (?,?,?)", rows)
        rows = []


if shape == "service":
    # 300 names: 10 modules x 30 functions.
    names = [f"module_{m}.function_{f}" for m in range(10) for f in range(30, 60)]
    root_id, root_start = uuid.uuid4().hex, t
    t += 1e-4
    for i in range(max(n - 1, 0)):
        d = rnd.uniform(1e-5, 2e-3)
        rows.append(("_ferret_trace", t, dumps({"span_id": uuid.uuid4().hex, "parent_id": root_id,
                     "run_id": run, "name": names[rnd.randrange(300)], "start_time": t,
                     "end_time": t + d, "duration": d, "tags": {}, "status": "ok"})))
        t += d + 1e-6
        flush()
    # The root ends when the service stops (ferret-io writes it then).
    rows.append(("_ferret_trace", root_start, dumps({"span_id": root_id, "parent_id": None,
                 "run_id": run, "name": "main", "start_time": root_start, "end_time": t,
                 "duration": t - root_start, "tags": {}, "status": "ok"})))
    flush(True)
    con.commit()
    print(run)
    sys.exit(0)

names = ["fetch_database_item", "heavy_computation", "render", "parse"]
while made < n:
    root_id, root_start = uuid.uuid4().hex, t
    kids = min(rnd.randint(3, 9), n - made - 1)
    t += 1e-5
    child_rows = []
    for k in range(kids):
        d = rnd.uniform(1e-4, 5e-2)
        cid = uuid.uuid4().hex
        status = "error" if rnd.random() < 0.01 else "ok"
        child_rows.append({"span_id": cid, "parent_id": root_id, "run_id": run, "name": names[k % 4],
                           "start_time": t, "end_time": t + d, "duration": d,
                           "tags": {"item": k, "cache_hit": rnd.random() < 0.5}, "status": status})
        t += d + 1e-6
    dur = t - root_start
    rows.append(("_ferret_trace", root_start, dumps({"span_id": root_id, "parent_id": None, "run_id": run,
                 "name": "process_batch", "start_time": root_start, "end_time": t, "duration": dur,
                 "tags": {"batch": made}, "status": "ok"})))
    for c in child_rows:
        rows.append(("_ferret_trace", c["start_time"], dumps(c)))
    made += 1 + kids
    t += 1e-5
    flush()
flush(True)
con.commit()
print(run)
