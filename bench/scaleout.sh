#!/usr/bin/env bash
# Scale-out figures: export rates and peak memory of OTLP/JSON and Parquet
# (against jsonl, the simplest exporter, as the baseline of the same run),
# Parquet bytes per span, and fleet analysis of many files (against
# analyzing the same files one after another).
#
# usage: bench/scaleout.sh BIG_FILE [FLEET_GLOB] [ROUNDS]
#   make inputs with: ferret demo --db big.db --spans 10000000 --no-analyze
#                     for i in 0 1 ... 9; do ferret demo --db f$i.db --spans 1000000 --no-analyze; done
# Rounds are interleaved (jsonl, otlp, parquet, jsonl, ...); medians are printed.
source "$(dirname "$0")/lib.sh"
big=$1
fleet=${2:-}
rounds=${3:-3}
build
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
spans=$("$FERRET" runs "$big" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["spans"])')
echo "== export of $big ($spans spans, $(du -h "$big" | cut -f1)), $rounds interleaved rounds"
declare -A secs mem size
for r in $(seq "$rounds"); do
    for f in jsonl otlp parquet; do
        /usr/bin/time -f '%e %M' -o "$out/t" "$FERRET" export "$big" --format "$f" -o "$out/x.$f" 2>/dev/null
        read -r s m < "$out/t"
        secs[$f]+="$s "; mem[$f]+="$m "
        size[$f]=$(stat -c %s "$out/x.$f")
        rm -f "$out/x.$f"
    done
done
base=$(echo ${secs[jsonl]} | tr ' ' '\n' | median)
for f in jsonl otlp parquet; do
    s=$(echo ${secs[$f]} | tr ' ' '\n' | median)
    m=$(echo ${mem[$f]} | tr ' ' '\n' | median)
    awk -v f="$f" -v s="$s" -v m="$m" -v n="$spans" -v b="$base" -v z="${size[$f]}" 'BEGIN {
        printf "%-8s median %6.2f s  %9.0f spans/s  x%.2f of jsonl time  peak RSS %4.0f MB  %6.1f bytes/span  (rounds: ",
            f, s, n / s, s / b, m / 1024, z / n }'
    echo "${secs[$f]})"
done
[ -n "$fleet" ] || exit 0
files=$(ls $fleet)
nf=$(echo "$files" | wc -l)
echo "== fleet analyze of $nf files ($fleet), $rounds interleaved rounds"
one=""; many=""; manymem=""; onemem=""
for r in $(seq "$rounds"); do
    start=$(date +%s.%N); maxm=0
    for f in $files; do
        /usr/bin/time -f '%e %M' -o "$out/t" "$FERRET" analyze "$f" --format json >/dev/null
        read -r s m < "$out/t"; [ "$m" -gt "$maxm" ] && maxm=$m
    done
    one+="$(printf '%.2f' "$(echo "$(date +%s.%N) - $start" | bc)") "; onemem+="$maxm "
    /usr/bin/time -f '%e %M' -o "$out/t" "$FERRET" analyze "$fleet" --format json >/dev/null
    read -r s m < "$out/t"
    many+="$s "; manymem+="$m "
done
a=$(echo $one | tr ' ' '\n' | median); b=$(echo $many | tr ' ' '\n' | median)
echo "one file at a time: median $(printf '%.2f' "$a") s, peak RSS $(( $(echo $onemem | tr ' ' '\n' | median | cut -d. -f1) / 1024 )) MB  (rounds: $one)"
echo "all files at once:  median $b s, peak RSS $(( $(echo $manymem | tr ' ' '\n' | median | cut -d. -f1) / 1024 )) MB  (rounds: $many)"
awk -v a="$a" -v b="$b" 'BEGIN { printf "fleet analyze takes x%.2f the time of the files one after another\n", b / a }'
