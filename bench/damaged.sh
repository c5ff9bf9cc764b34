#!/usr/bin/env bash
# The hunting test with many seeds: damaged and random SQLite files through
# every command; prints how many command runs exited 0 and how many were bad
# (a panic, a signal, a hang, or an exit code other than 0 and 2).
#
# usage: bench/damaged.sh [SEEDS]     (default 200 seeds × 8 kinds × 2 bases × 16 commands;
#                                      SEEDS = N, or FROM..TO for seeds not tried yet)
#        FERRET_DAMAGE_SEED=S bench/damaged.sh   replays one seed
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
FERRET_DAMAGE_SEEDS=${1:-200} cargo test --release -q -p ferret-cli --test damaged -- --nocapture 2>&1 \
    | grep -E "command runs|bad exits|^seed|test result"
