#!/usr/bin/env bash
# Analysis speed and memory on both shapes and both formats, against a
# baseline binary measured in the same rounds:
#
#   batch    many short roots with 3-9 children (ferret-io: make_ferret_io.py;
#            native: `ferret demo --shape mixed`);
#   service  one root open for the whole run, all other spans directly under
#            it, 300 names like `module_3.function_73`, empty tags
#            (make_ferret_io.py --shape service; `ferret demo --shape service`).
#
# The four files (SPANS spans each, default 1M) are made in DIR on first use.
# Rounds interleave the binaries; each cell is the median of ROUNDS runs of
# `ferret analyze FILE` (wall seconds, CPU seconds user+sys, peak RSS; "vs
# base" is the wall-time ratio). With REF=1 and the
# reference chroot (/work/shared/tools/setup-ferret-io.sh), ferret-io 0.3.1
# itself is timed on the service shape (REF_RUNS runs, default 3: ~20 s each).
#
# usage: [BASE=old/ferret] [THREADS="1 2"] [REF=1] bench/analyze.sh [DIR] [ROUNDS]
# e.g.   BASE=/tmp/ferret-main REF=1 bench/analyze.sh /tmp/ferret-bench 7
source "$(dirname "$0")/lib.sh"
dir=${1:-/tmp/ferret-bench}; n=${2:-5}
SPANS=${SPANS:-1000000}
THREADS=${THREADS:-1 2}
mkdir -p "$dir"
build
[ -s "$dir/batch.fio.db" ] || python3 "$ROOT/bench/make_ferret_io.py" "$dir/batch.fio.db" "$SPANS" >/dev/null
[ -s "$dir/service.fio.db" ] || python3 "$ROOT/bench/make_ferret_io.py" "$dir/service.fio.db" "$SPANS" --shape service >/dev/null
[ -s "$dir/batch.native.db" ] || "$FERRET" demo --db "$dir/batch.native.db" --spans "$SPANS" --shape mixed --no-analyze >/dev/null 2>&1
[ -s "$dir/service.native.db" ] || "$FERRET" demo --db "$dir/service.native.db" --spans "$SPANS" --shape service --no-analyze >/dev/null 2>&1

# Configurations: "label|command prefix".
configs=()
if [ -n "${BASE:-}" ]; then configs+=("base|$BASE analyze"); fi
if "$FERRET" analyze --help | grep -q -- '--threads'; then
    for t in $THREADS; do configs+=("new -t$t|$FERRET analyze --threads $t"); done
else
    configs+=("new|$FERRET analyze")
fi
files=(batch.fio service.fio batch.native service.native)
res=$(mktemp)
for r in $(seq "$n"); do
    for f in "${files[@]}"; do
        for c in "${configs[@]}"; do
            label=${c%%|*}; cmd=${c#*|}
            out=$( { /usr/bin/time -f "%e %M %U %S" $cmd "$dir/$f.db" >/dev/null; } 2>&1 | tail -1)
            echo "$f|$label|$out" >>"$res"
        done
    done
done
spans() { "$FERRET" analyze "$1" --format json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["spans"])'; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $n interleaved rounds, medians"
printf '%-15s %-9s %8s %8s %8s %10s %8s\n' file binary 'wall s' 'cpu s' 'MB peak' 'M spans/s' 'vs base'
for f in "${files[@]}"; do
    s=$(spans "$dir/$f.db")
    bt=
    for c in "${configs[@]}"; do
        label=${c%%|*}
        t=$(grep "^$f|$label|" "$res" | cut -d'|' -f3 | cut -d' ' -f1 | median)
        m=$(grep "^$f|$label|" "$res" | cut -d'|' -f3 | cut -d' ' -f2 | median)
        cpu=$(grep "^$f|$label|" "$res" | cut -d'|' -f3 | awk '{print $3 + $4}' | median)
        [ "$label" = base ] && bt=$t
        ratio=$([ -n "$bt" ] && python3 -c "print(f'{$bt/$t:.2f}x')" || echo -)
        printf '%-15s %-9s %8s %8s %8s %10s %8s\n' "$f" "$label" "$t" "$cpu" "$((${m%.*} / 1024))" \
            "$(python3 -c "print(round($s/$t/1e6,1))")" "$ratio"
    done
done
rm -f "$res"
if [ "${REF:-0}" = 1 ]; then
    if [ ! -x /tmp/trixie/opt/fv/bin/ferret ]; then
        echo "REF=1: no reference chroot; run /work/shared/tools/setup-ferret-io.sh first" >&2
        exit 1
    fi
    cp "$dir/service.fio.db" /tmp/trixie/work/bench-service.db
    refs=$(for _ in $(seq "${REF_RUNS:-3}"); do /usr/bin/time -f "%e %M" chroot /tmp/trixie /opt/fv/bin/ferret analyze /work/bench-service.db 2>&1 >/dev/null | tail -1; done)
    rm -f /tmp/trixie/work/bench-service.db
    rt=$(echo "$refs" | cut -d' ' -f1 | median); rm_=$(echo "$refs" | cut -d' ' -f2 | median)
    echo "ferret-io 0.3.1 on service.fio: median $rt s, $((${rm_%.*} / 1024)) MB peak RSS (${REF_RUNS:-3} runs)"
    ours=$(for _ in 1 2 3 4 5; do /usr/bin/time -f "%e %M" "$FERRET" analyze "$dir/service.fio.db" 2>&1 >/dev/null | tail -1; done)
    t=$(echo "$ours" | cut -d' ' -f1 | median); m=$(echo "$ours" | cut -d' ' -f2 | median)
    echo "ferret analyze on service.fio: median $t s, $((${m%.*} / 1024)) MB => $(python3 -c "print(round($rt/$t,1))")x faster, $(python3 -c "print(round($rm_/$m,1))")x less memory"
fi
