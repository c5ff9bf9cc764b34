#!/usr/bin/env bash
# Analysis speed: ferret analyze on a native file against the raw read floor
# (same rows out of SQLite, no decoding), and on a ferret-io file against
# ferret-io's own analyzer when the reference chroot exists
# (../shared/tools/setup-ferret-io.sh). Repeats each run and prints medians.
#
# usage: bench/analyze.sh NATIVE.db [FERRET_IO.db] [REPEATS]
source "$(dirname "$0")/lib.sh"
native=$1; fio=${2:-}; n=${3:-5}
build
spans=$("$FERRET" analyze "$native" --format json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["spans"])')
echo "native file: $native ($(du -h "$native" | cut -f1)), $spans spans in the latest run"
t=$(for _ in $(seq "$n"); do /usr/bin/time -f %e "$FERRET" analyze "$native" 2>&1 >/dev/null | tail -1; done | median)
echo "analyze:     median $t s = $(python3 -c "print(round($spans/$t/1e6,1))") M spans/s"
f=$(for _ in $(seq "$n"); do "$ROOT/target/release/examples/read_floor" "$native" | sed -E 's/.* in ([0-9.]+) s .*/\1/'; done | median)
echo "read floor:  median $f s = $(python3 -c "print(round($spans/$f/1e6,1))") M spans/s (analyze takes $(python3 -c "print(round($t/$f,2))")x the floor)"
if [ -n "$fio" ]; then
    echo "ferret-io file: $fio ($(du -h "$fio" | cut -f1))"
    ours=$(for _ in $(seq "$n"); do /usr/bin/time -f "%e %M" "$FERRET" analyze "$fio" 2>&1 >/dev/null | tail -1; done)
    t=$(echo "$ours" | cut -d' ' -f1 | median); m=$(echo "$ours" | cut -d' ' -f2 | median)
    echo "ferret analyze:    median $t s, $((m / 1024)) MB peak RSS"
    if [ -x /tmp/trixie/opt/fv/bin/ferret ]; then
        cp "$fio" /tmp/trixie/work/bench.db
        # ferret-io takes ~25 s per 1M spans: at most 3 runs.
        refs=$(for _ in $(seq "$(( n < 3 ? n : 3 ))"); do /usr/bin/time -f "%e %M" chroot /tmp/trixie /opt/fv/bin/ferret analyze /work/bench.db 2>&1 >/dev/null | tail -1; done)
        rt=$(echo "$refs" | cut -d' ' -f1 | median); rm=$(echo "$refs" | cut -d' ' -f2 | median)
        echo "ferret-io analyze: median $rt s, $((rm / 1024)) MB peak RSS"
        echo "ratio: $(python3 -c "print(round($rt/$t,1))")x faster, $(python3 -c "print(round($rm/$m,1))")x less memory"
        rm -f /tmp/trixie/work/bench.db
    fi
fi
