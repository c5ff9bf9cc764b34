#!/usr/bin/env bash
# Span hot path with and without the live state (issue 16), same run,
# interleaved rounds: BASE is a span bench binary built from the code
# before (e.g. f3a25ef), NEW one built from this tree; NEW also measures
# `ferret_live_off` (heartbeat_interval(None): no published open spans).
#
#   bench/span_live.sh BASE_BIN NEW_BIN [ROUNDS]
#
# Prints each round's criterion midpoints (ns per span, thread CPU time),
# then the medians.
set -euo pipefail
base=$1 new=$2 rounds=${3:-5}
opts=(--warm-up-time 1 --measurement-time 3 --noplot)
mid() { grep -A1 -E "^span/$1 *$|^span/$1 +time" | grep -oE 'time: +\[[^]]+\]' | awk '{print $4}'; }
declare -a B N O
for r in $(seq 1 "$rounds"); do
  b=$("$base" --bench "^span/ferret\$" "${opts[@]}" 2>/dev/null | mid ferret)
  n_out=$("$new" --bench "^span/ferret(_live_off)?\$" "${opts[@]}" 2>/dev/null)
  n=$(echo "$n_out" | mid ferret)
  o=$(echo "$n_out" | mid ferret_live_off)
  echo "round $r: base $b ns  new $n ns  new_live_off $o ns"
  B+=("$b") N+=("$n") O+=("$o")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo "median: base $(median "${B[@]}") ns  new $(median "${N[@]}") ns  new_live_off $(median "${O[@]}") ns"
