#!/usr/bin/env bash
# Crash trials: a child records spans at a steady rate and is SIGKILLed at a
# random point; every span that ended more than FLUSH_MS + SLACK_MS before the
# kill must be in the file. Prints one line per trial with the spans lost,
# then a summary. The file must also pass `PRAGMA integrity_check` and
# `ferret analyze`.
#
# usage: bench/crash.sh [TRIALS] [SPANS_PER_SEC] [THREADS] [FLUSH_MS] [SLACK_MS]
#   defaults: 20 trials, 4000 spans/s, 4 threads, 200 ms, 100 ms
# FERRET_SRC=DIR builds the child and the CLI from another checkout (to
# measure an older commit with this script).
source "$(dirname "$0")/lib.sh"
trials=${1:-20}
rate=${2:-4000}
threads=${3:-4}
flush_ms=${4:-200}
slack_ms=${5:-100}
src=${FERRET_SRC:-$ROOT}
if [ "$src" != "$ROOT" ]; then
    cp "$ROOT/crates/ferret/examples/crash_child.rs" "$src/crates/ferret/examples/crash_child.rs"
fi
(cd "$src" && cargo build --release -q -p ferret-cli && cargo build --release -q -p ferret --example crash_child)
child=$src/target/release/examples/crash_child
cli=$src/target/release/ferret
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "crash trials: $trials × SIGKILL, $rate spans/s from $threads threads, flush $flush_ms ms, slack $slack_ms ms ($src)"
total_lost=0
trials_lossy=0
for i in $(seq 1 "$trials"); do
    db=$work/t$i.db
    out=$work/t$i.out
    "$child" "$db" "$rate" "$threads" "$flush_ms" > "$out" &
    pid=$!
    while ! grep -q ready "$out" 2>/dev/null; do sleep 0.01; done
    # Kill between 0.3 and 3 s after the profiler opened.
    sleep "$(python3 -c 'import random; print(round(random.uniform(0.3, 3.0), 3))')"
    kill_ns=$(date +%s%N)
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    integrity=$(sqlite3 "$db" 'PRAGMA integrity_check' 2>&1 | head -1)
    analyze_rc=0
    "$cli" analyze "$db" > "$work/analyze.txt" 2>&1 || analyze_rc=$?
    "$cli" export "$db" --format jsonl -o "$work/spans.jsonl" > /dev/null 2>&1 || true
    read -r expected lost < <(python3 - "$out" "$work/spans.jsonl" "$kill_ns" "$flush_ms" "$slack_ms" <<'EOF'
import json, sys
out, spans, kill_ns, flush_ms, slack_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cutoff = kill_ns - (flush_ms + slack_ms) * 1_000_000
have = set()
try:
    with open(spans) as f:
        for line in f:
            have.add(json.loads(line)["span_id"])
except FileNotFoundError:
    pass
expected = lost = 0
with open(out) as f:
    for line in f:
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        sid, end = int(parts[0]), int(parts[1])
        if end < cutoff:
            expected += 1
            if sid not in have:
                lost += 1
print(expected, lost)
EOF
)
    echo "trial $i: $lost of $expected spans lost (ended ≥ $((flush_ms + slack_ms)) ms before the kill); integrity $integrity; analyze exit $analyze_rc"
    total_lost=$((total_lost + lost))
    [ "$lost" -gt 0 ] && trials_lossy=$((trials_lossy + 1))
    rm -f "$db" "$db-wal" "$db-shm" "$out"
done
echo "summary: $trials trials, $trials_lossy with losses, $total_lost spans lost in all"
