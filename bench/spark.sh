#!/usr/bin/env bash
# Spark reads a partitioned Parquet export of several Ferret files and
# reproduces `ferret analyze` over the same files: count, total and self
# time per name exactly, p50/p95/p99 approximately (percentile_approx vs
# Ferret's sketch). Prints every name and whether everything matches.
#
# usage: bench/spark.sh [FILES_GLOB]   (default: 3 demo files made here)
# Needs Java 17 (Debian: openjdk-17-jre-headless); pyspark goes into
# .venv-spark (created on first use). Not part of CI: it takes minutes.
source "$(dirname "$0")/lib.sh"
build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
glob=${1:-}
if [ -z "$glob" ]; then
    for i in 0 1 2; do
        "$FERRET" demo --db "$work/host$i.db" --spans $((200000 + 50000 * i)) --no-analyze >/dev/null
    done
    glob="$work/host*.db"
fi
venv=$ROOT/.venv-spark
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pyspark
fi
"$FERRET" export "$glob" --format parquet --partition-dir "$work/fleet" 2>&1 | sed 's/^/  /'
"$FERRET" analyze "$glob" --format json --limit 0 > "$work/analyze.json"
"$venv/bin/python" - "$work/fleet" "$work/analyze.json" <<'EOF'
import json, sys, time
from pyspark.sql import SparkSession

fleet, analyze = sys.argv[1], sys.argv[2]
spark = (SparkSession.builder.master("local[2]").appName("ferret-check")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "4").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
t = time.time()
# recursiveFileLookup: read host=/run= directories without partition
# inference (the files carry host and run as columns already).
spark.read.option("recursiveFileLookup", "true").parquet(fleet).createOrReplaceTempView("spans")
rows = spark.sql("""
    SELECT name, count(*) AS count, sum(duration_ns) AS total_ns,
           sum(self_ns) AS self_ns, sum(CAST(error AS INT)) AS errors,
           percentile_approx(duration_ns, array(0.5, 0.95, 0.99), 10000) AS p
    FROM spans GROUP BY name
""").collect()
secs = time.time() - t
want = {s["name"]: s for s in json.load(open(analyze))["stats"]}
ok = len(rows) == len(want)
worst = 0.0
print(f"{'name':<16} {'count':>9} {'total_ns':>14} {'self_ns':>14}  exact  p50/p95/p99 rel. diff")
for r in sorted(rows, key=lambda r: -r["total_ns"]):
    w = want.get(r["name"])
    exact = (w is not None and r["count"] == w["count"]
             and r["total_ns"] == round(w["total_s"] * 1e9)
             and r["self_ns"] == round(w["self_s"] * 1e9)
             and r["errors"] == w["error_count"])
    ok &= exact
    diffs = []
    if w is not None:
        for got, key in zip(r["p"], ("p50_s", "p95_s", "p99_s")):
            ref = w[key] * 1e9
            diffs.append(abs(got - ref) / max(ref, 1.0))
        worst = max(worst, max(diffs))
    print(f"{r['name']:<16} {r['count']:>9} {r['total_ns']:>14} {r['self_ns']:>14}  "
          f"{'yes' if exact else 'NO':<5}  " + " ".join(f"{d:.2%}" for d in diffs))
print(f"Spark {spark.version} local[2]: query {secs:.1f} s over {sum(r['count'] for r in rows)} spans")
print(f"counts, totals, self times, errors: {'ALL MATCH' if ok else 'MISMATCH'}; "
      f"percentiles: largest relative difference {worst:.2%}")
spark.stop()
sys.exit(0 if ok else 1)
EOF
