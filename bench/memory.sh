#!/usr/bin/env bash
# Memory: runs `ferret analyze` on each file (or, with --diff, `ferret diff`
# on two files) under a cgroup-v1 memory limit (default 256M) and prints
# elapsed time, peak RSS and the cgroup's peak (which includes page cache).
#
# usage: bench/memory.sh [LIMIT] FILE...
#        bench/memory.sh [LIMIT] --diff BASE CANDIDATE [DIFF OPTIONS...]
source "$(dirname "$0")/lib.sh"
limit=256M
case "${1:-}" in *M|*G) limit=$1; shift;; esac
build
if [ "${1:-}" = "--diff" ]; then
    base=$2; cand=$3; shift 3
    echo "== ferret diff $base ($(du -h "$base" | cut -f1)) $cand ($(du -h "$cand" | cut -f1)) under $limit"
    # Exit 1 means "regression found", not a failure of the measurement.
    rc=0
    run_limited "$limit" "$FERRET" diff "$base" "$cand" "$@" 2>&1 | tail -8 || rc=$?
    echo "(elapsed_s peak_rss_kb above; diff exit status is in the cgroup line)"
    exit 0
fi
for f in "$@"; do
    echo "== $f ($(du -h "$f" | cut -f1)) under $limit"
    run_limited "$limit" "$FERRET" analyze "$f" --limit 5 2>&1 | tail -4
done
