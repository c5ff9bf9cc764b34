#!/usr/bin/env bash
# Native analysis rate and thread scaling on one big file: `ferret analyze
# --threads T` pinned to T cores with taskset (1 thread on core 0, 2 on
# cores 0-1, ...), rounds interleaved across thread counts (and the
# baseline binary, BASE=, pinned to one core), medians of ROUNDS runs.
# Prints wall seconds, M spans/s, CPU seconds, peak RSS, speed-up over one
# thread, and the load average (the machine is shared: quote medians).
#
# PAIR=1 (the default on 2 or more cores) adds a row "pair": two
# independent one-thread analyses at once, on cores 0 and 1. Its speed-up
# is the machine's own ceiling for two threads (2 × t1 wall / the pair's
# slower wall): on a VM whose cores slow each other down (shared caches,
# memory bandwidth, the host), perfectly independent work scales by less
# than 2×, and "t2" should be read against this row, not against 2.
#
# The file: e.g. `ferret demo --db /big/demo200m.db --spans 200000000
# --threads 1 --no-analyze` (~2.4 GB; one recording thread keeps the writer
# from shedding on a busy 2-core machine).
#
# BASE_FILE= makes the baseline read another file: the same spans in the
# block encoding it knows (an older Ferret refuses files with columnar
# blocks; `cargo run --release -p ferret-analyze --example reencode -- SRC
# DST 1` writes the row-wise copy).
#
# ARGS= adds arguments to every `ferret analyze` (baseline included), e.g.
# ARGS=--tree for the slowest trees.
#
# usage: [BASE=old/ferret [BASE_FILE=same-spans.db]] [THREADS="1 2"] [ARGS=...] [FERRET=new/ferret NO_BUILD=1] bench/threads.sh FILE [ROUNDS]
# e.g.   BASE=/tmp/ferret-main ARGS=--tree bench/threads.sh /big/demo20m.db 5
source "$(dirname "$0")/lib.sh"
file=$1; n=${2:-5}
THREADS=${THREADS:-1 2}
PAIR=${PAIR:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
ARGS=${ARGS:-}
[ -n "${NO_BUILD:-}" ] || build
spans=$("$FERRET" analyze "$file" --format json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["spans"])')
echo "file: $file ($(du -h "$file" | cut -f1)), $spans spans; $(nproc) cores; ferret analyze $ARGS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
res=$(mktemp)
cat "$file" ${BASE_FILE:-} >/dev/null # warm the page cache
for _ in $(seq "$n"); do
    if [ -n "${BASE:-}" ]; then
        echo "base|$( { /usr/bin/time -f '%e %M %U %S' taskset -c 0 "$BASE" analyze "${BASE_FILE:-$file}" $ARGS >/dev/null; } 2>&1 | tail -1)" >>"$res"
    fi
    for t in $THREADS; do
        cpus=0-$((t - 1))
        echo "t$t|$( { /usr/bin/time -f '%e %M %U %S' taskset -c "$cpus" "$FERRET" analyze "$file" $ARGS --threads "$t" >/dev/null; } 2>&1 | tail -1)" >>"$res"
    done
    if [ "$PAIR" = 1 ]; then
        a=$(mktemp); b=$(mktemp)
        { /usr/bin/time -f '%e %M %U %S' taskset -c 0 "$FERRET" analyze "$file" $ARGS --threads 1 >/dev/null; } 2>"$a" &
        { /usr/bin/time -f '%e %M %U %S' taskset -c 1 "$FERRET" analyze "$file" $ARGS --threads 1 >/dev/null; } 2>"$b"
        wait
        # The slower of the two is the pair's wall; CPU is per analysis (the mean).
        echo "pair|$(tail -1 "$a") $(tail -1 "$b")" | awk -F'|' '{split($2,x," "); w=(x[1]>x[5]?x[1]:x[5]); m=(x[2]>x[6]?x[2]:x[6]); printf "pair|%s %s %.2f %.2f\n", w, m, (x[3]+x[7])/2, (x[4]+x[8])/2}' >>"$res"
        rm -f "$a" "$b"
    fi
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %8s %10s %8s %8s %8s\n' run 'wall s' 'M spans/s' 'cpu s' 'MB peak' 'speedup'
t1=
for label in ${BASE:+base} $(for t in $THREADS; do echo "t$t"; done) $([ "$PAIR" = 1 ] && echo pair); do
    rows=$(grep "^$label|" "$res" | cut -d'|' -f2)
    w=$(echo "$rows" | cut -d' ' -f1 | median)
    m=$(echo "$rows" | cut -d' ' -f2 | median)
    c=$(echo "$rows" | awk '{print $3 + $4}' | median)
    [ "$label" = t1 ] && t1=$w
    if [ "$label" = pair ]; then
        # two analyses in the pair's wall time
        sp=$([ -n "$t1" ] && python3 -c "print(f'{2*$t1/$w:.2f}x')" || echo -)
    else
        sp=$([ -n "$t1" ] && python3 -c "print(f'{$t1/$w:.2f}x')" || echo -)
    fi
    k=$([ "$label" = pair ] && echo 2 || echo 1) # the pair reads the file twice
    printf '%-6s %8s %10s %8s %8s %8s\n' "$label" "$w" "$(python3 -c "print(round($k*$spans/$w/1e6,1))")" "$c" "$((${m%.*} / 1024))" "$sp"
done
[ "$PAIR" = 1 ] && echo "pair: two one-thread analyses at once; its speedup (2 x t1 / pair wall) is the machine's ceiling for t2"
echo "all runs (label|wall peak_kb user sys):"
cat "$res"
rm -f "$res"
