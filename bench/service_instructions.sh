#!/usr/bin/env bash
# Instructions per request of the service benchmark, per mode, counted by
# callgrind: a figure that does not move with the machine's load, where
# req/s moves by ±8% between rounds even on a quiet machine (so that a
# 1% target cannot be resolved by timing).
#
# Each mode runs twice under `valgrind --tool=callgrind --separate-threads=yes`,
# with SMALL and LARGE measured requests; the marginal instructions per
# request are (I(LARGE) − I(SMALL)) / (LARGE − SMALL), which cancels the
# start-up (opening the file, calibrating the clock, building the
# service). The ferret-writer thread is counted apart: under valgrind the
# run lasts ~50× longer, so its timed work (a commit every 100 ms, a
# heartbeat a second) is inflated per request; its own cost is measured
# by `cargo run --release -p ferret --example writer_cost`.
#
# usage: [EXE=<benchmark binary>] bench/service_instructions.sh [MODES] [SMALL] [LARGE]
# e.g.   bench/service_instructions.sh "none native layer" 1000 4000
source "$(dirname "$0")/lib.sh"
modes=${1:-none native layer}; small=${2:-1000}; large=${3:-4000}
if [ -n "${EXE:-}" ]; then
    exe=$EXE
else
    (cd "$ROOT" && cargo build --release -q -p ferret-service-bench)
    exe=$ROOT/target/release/ferret-service-bench
fi
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Sums the instructions of a run's threads: "service writer".
count() {
    local out=$1 svc=0 wr=0 f n
    for f in "$out"-*; do
        n=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
        [ -n "$n" ] || continue
        if grep -q 'Writer::run' "$f"; then wr=$((wr + n)); else svc=$((svc + n)); fi
    done
    echo "$svc $wr"
}
printf '%-8s %14s %14s %10s\n' mode 'instr/request' 'vs none' 'writer'
base=
for m in $modes; do
    for n in "$small" "$large"; do
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/$m.$n" \
            "$exe" --trial "$m" --requests "$n" --warmup 200 >"$tmp/$m.$n.log" 2>&1
    done
    read -r s1 w1 < <(count "$tmp/$m.$small")
    read -r s2 w2 < <(count "$tmp/$m.$large")
    per=$(( (s2 - s1) / (large - small) ))
    wper=$(( (w2 - w1) / (large - small) ))
    [ "$m" = none ] && base=$per
    vs=$([ -n "$base" ] && python3 -c "print(f'{($per - $base) / $base * 100:+.1f}%')" || echo -)
    printf '%-8s %14s %14s %10s\n' "$m" "$per" "$vs" "$wper"
done
echo "(service = every thread but ferret-writer; writer = its instructions per request under valgrind, inflated by the slow run)"
