#!/usr/bin/env bash
# Where a service's CPU goes with Ferret on: samples one trial of the
# service benchmark with `perf record` and prints the shares of the samples
# taken by Ferret's own functions on the service's threads, by the
# ferret-writer thread, and by malloc/free (which Ferret's allocations add
# to), with the trial's CPU and allocations per request. Finer than the
# benchmark's req/s, which moves by ±8% between rounds even on a quiet
# machine. Needs `perf` (Debian: linux-perf).
#
# usage: [EXE=<benchmark binary>] bench/service_attribution.sh [MODES] [REQUESTS] [ROUNDS]
# e.g.   bench/service_attribution.sh "native layer" 100000 2
# EXE samples another build of the benchmark (say, one from an older
# commit) instead of building this checkout's.
source "$(dirname "$0")/lib.sh"
modes=${1:-native layer}; n=${2:-100000}; rounds=${3:-1}
if [ -n "${EXE:-}" ]; then
    exe=$EXE
else
    (cd "$ROOT" && cargo build --release -q -p ferret-service-bench)
    exe=$ROOT/target/release/ferret-service-bench
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$rounds"); do
    for m in $modes; do
        perf record -q -F 1999 -o "$tmp/p.data" "$exe" --trial "$m" --requests "$n" >"$tmp/out" 2>&1
        perf report -i "$tmp/p.data" --no-children --sort comm,dso,symbol -F sample,comm,dso,sym 2>/dev/null |
            grep -v '^#' | grep -v '^$' | sed 's/  \+/ /g' >"$tmp/syms"
        python3 - "$m" "$tmp/syms" "$tmp/out" <<'PY'
import collections, json, sys
mode, syms, out = sys.argv[1:]
d = collections.Counter(); total = 0
for line in open(syms):
    parts = line.strip().split(' ', 3)
    if len(parts) < 4:
        continue
    s, comm, dso, sym = parts; s = int(s); total += s
    if 'ferret-writer' in comm:
        d['writer thread'] += s
    elif 'ferret::' in sym or 'ferret_format' in sym:
        d['ferret on service threads'] += s
    if dso.startswith('libc') and any(x in sym for x in ('malloc', 'free', '_int_', 'unlink', 'consolidate')):
        d['malloc/free'] += s
r = [json.loads(l[7:]) for l in open(out) if l.startswith('RESULT ')][0]
shares = '  '.join(f'{k} {100 * v / total:.2f}%' for k, v in sorted(d.items()))
print(f"{mode:<8} {total} samples  {shares}  CPU/req {r['cpu_us_per_req']:.1f} us  allocs/req {r['allocs_per_req']:.1f}")
PY
    done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
