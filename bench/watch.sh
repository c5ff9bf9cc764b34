#!/usr/bin/env bash
# `ferret watch` on a file receiving ~1M spans/s: CPU share, peak RSS and
# commit-to-screen latency (see bench/watch.py). Needs tmux.
#
# usage: bench/watch.sh [ROUNDS]     (env: DIR for the files, default
#        /work/big/watch or a temp dir; SPANS per round, MEASURE seconds)
source "$(dirname "$0")/lib.sh"
command -v tmux >/dev/null || { echo "bench/watch.sh needs tmux (apt-get install tmux)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -q -p ferret-cli)
dir=${DIR:-}
if [ -z "$dir" ]; then
    if [ -d /work/big ]; then dir=/work/big/watch; mkdir -p "$dir"; else dir=$(mktemp -d); fi
fi
echo "== ferret watch cost, files in $dir ($(df -h "$dir" | awk 'NR==2 {print $4}') free)"
python3 "$ROOT/bench/watch.py" "$FERRET" "$dir" "${1:-3}"
