#!/usr/bin/env python3
"""Writes a ferret-io (BeaverDB log) file with N spans in the layout the
Python ferret-io 0.3.1 writes: beaver_logs rows keyed by (log_name, start),
one JSON span each, with realistic names, nesting, tags and ~1% errors.

usage: make_ferret_io.py OUT.db N [RUN_ID]
"""
import json, random, sqlite3, sys, uuid

out, n = sys.argv[1], int(sys.argv[2])
run = sys.argv[3] if len(sys.argv) > 3 else uuid.uuid4().hex
rnd = random.Random(42)
con = sqlite3.connect(out)
con.execute("PRAGMA journal_mode=WAL")
con.execute("""CREATE TABLE IF NOT EXISTS beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL,
               data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp))""")
con.execute("CREATE INDEX IF NOT EXISTS idx_logs_timestamp ON beaver_logs (log_name, timestamp)")
t = 1795711277.0
rows, made = [], 0
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
    rows.append(("_ferret_trace", root_start, json.dumps({"span_id": root_id, "parent_id": None, "run_id": run,
                 "name": "process_batch", "start_time": root_start, "end_time": t, "duration": dur,
                 "tags": {"batch": made}, "status": "ok"}, separators=(",", ":"))))
    for c in child_rows:
        rows.append(("_ferret_trace", c["start_time"], json.dumps(c, separators=(",", ":"))))
    made += 1 + kids
    t += 1e-5
    if len(rows) > 50000:
        con.executemany("INSERT INTO beaver_logs VALUES (?,?,?)", rows); rows = []
con.executemany("INSERT INTO beaver_logs VALUES (?,?,?)", rows)
con.commit()
print(run)
