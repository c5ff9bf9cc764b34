#!/usr/bin/env bash
# One-core native analysis on several files (e.g. the same demo recorded
# with different SQLite page sizes): per round and file, the read floor
# (`read_floor`: SQLite alone) and `ferret analyze --threads 1` pinned to
# core 0, rounds interleaved across files; medians of ROUNDS runs. Prints
# the page size, file size, spans, read floor and analyze wall/CPU seconds
# and M spans/s (the machine is shared: quote medians).
#
# usage: [FERRET=bin/ferret] bench/files.sh ROUNDS FILE...
source "$(dirname "$0")/lib.sh"
n=$1; shift
build
FLOOR=$ROOT/target/release/examples/read_floor
res=$(mktemp)
for f in "$@"; do cat "$f" >/dev/null; done # warm the page cache
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$n"); do
    for f in "$@"; do
        fl=$(taskset -c 0 "$FLOOR" "$f" | sed -E 's/.* in ([0-9.]+) s = .*/\1/')
        t=$( { /usr/bin/time -f '%e %U %S' taskset -c 0 "$FERRET" analyze "$f" --threads 1 >/dev/null; } 2>&1 | tail -1)
        echo "$f|$fl $t" >>"$res"
    done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %6s %8s %6s %9s %8s %8s %10s\n' file page MB 'M spans' 'floor s' 'wall s' 'cpu s' 'M spans/s'
for f in "$@"; do
    rows=$(grep "^$f|" "$res" | cut -d'|' -f2)
    fl=$(echo "$rows" | cut -d' ' -f1 | median)
    w=$(echo "$rows" | cut -d' ' -f2 | median)
    c=$(echo "$rows" | awk '{print $3 + $4}' | median)
    spans=$(sqlite3 "file:$f?mode=ro" "SELECT sum(count) FROM ferret_blocks")
    ps=$(sqlite3 "file:$f?mode=ro" "PRAGMA page_size")
    printf '%-34s %6s %8s %6s %9s %8s %8s %10s\n' "$f" "$ps" "$(($(stat -c %s "$f") / 1000000))" \
        "$((spans / 1000000))" "$fl" "$w" "$c" "$(python3 -c "print(round($spans/$w/1e6,1))")"
done
echo "all runs (file|floor_s wall_s user_s sys_s):"
cat "$res"
rm -f "$res"
