#!/usr/bin/env bash
# Memory: runs `ferret analyze` on each file under a cgroup-v1 memory limit
# (default 256M) and prints elapsed time, peak RSS and the cgroup's peak.
#
# usage: bench/memory.sh [LIMIT] FILE...
source "$(dirname "$0")/lib.sh"
limit=256M
case "${1:-}" in *M|*G) limit=$1; shift;; esac
build
for f in "$@"; do
    echo "== $f ($(du -h "$f" | cut -f1)) under $limit"
    run_limited "$limit" "$FERRET" analyze "$f" --limit 5 2>&1 | tail -4
done
