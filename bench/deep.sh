#!/usr/bin/env bash
# Deep chains: a chain 100,000 spans deep (DEPTH to change), native and
# ferret-io, through every command that renders a tree or a stack; prints
# each command's exit code, output bytes, time and peak RSS.
#
# usage: bench/deep.sh [DEPTH]
source "$(dirname "$0")/lib.sh"
depth=${1:-100000}
build
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$FERRET" demo --db "$dir/native.db" --shape deep --depth "$depth" --spans "$depth" --threads 1 --no-analyze >/dev/null
python3 - "$dir/fio.db" "$depth" <<'PY'
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1]); d = int(sys.argv[2]); t0 = 1.7e9
c.executescript("""CREATE TABLE beaver_logs (log_name TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (log_name, timestamp));
CREATE INDEX idx_logs_timestamp ON beaver_logs (log_name, timestamp);""")
rows = []
for i in range(d):
    st = t0 + i * 1e-6; du = 2 * (d - i) * 1e-6
    rows.append(("_ferret_trace", st, json.dumps({"span_id": "%032x" % i, "parent_id": ("%032x" % (i - 1)) if i else None,
        "run_id": "deep", "name": "chain" if i == 0 else "level", "start_time": st, "end_time": st + du,
        "duration": du, "tags": {}, "status": "ok"})))
c.executemany("INSERT INTO beaver_logs VALUES (?, ?, ?)", rows); c.commit()
PY
for db in "$dir/native.db" "$dir/fio.db"; do
    echo "== $(basename "$db"), depth $depth"
    for args in "export --format folded -o $dir/out" "export --format svg -o $dir/out" "flamegraph -o $dir/out" \
                "analyze --tree" "analyze --tree --format json" "calltree" "calltree --format json"; do
        rm -f "$dir/out"
        # shellcheck disable=SC2086
        set -- $args
        cmd=$1; shift
        /usr/bin/time -f '%e %M' -o "$dir/time" "$FERRET" "$cmd" "$db" "$@" >"$dir/stdout" 2>/dev/null && rc=0 || rc=$?
        bytes=$(( $(stat -c %s "$dir/stdout") + $( [ -f "$dir/out" ] && stat -c %s "$dir/out" || echo 0) ))
        read -r secs kb < "$dir/time"
        printf '%-30s exit %s  %10d bytes (%5.1f per span)  %5.2f s  %6.1f MB\n' "${args% -o*}" "$rc" "$bytes" \
            "$(echo "$bytes / $depth" | bc -l)" "$secs" "$(echo "$kb / 1024" | bc -l)"
    done
done
