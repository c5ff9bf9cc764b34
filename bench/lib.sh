# Shared helpers for the bench scripts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRET=${FERRET:-$ROOT/target/release/ferret}

build() {
    (cd "$ROOT" && cargo build --release -q -p ferret-cli && cargo build --release -q -p ferret --example read_floor)
}

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# run_limited LIMIT CMD...: runs CMD in a fresh cgroup-v1 memory group
# limited to LIMIT (e.g. 256M); prints "elapsed_s peak_kb exit" on stderr's last line.
run_limited() {
    local limit=$1; shift
    local cg=/sys/fs/cgroup/memory/ferret-bench-$$
    mkdir -p "$cg"
    echo "$limit" > "$cg/memory.limit_in_bytes"
    echo 0 > "$cg/memory.swappiness" 2>/dev/null || true
    local rc=0
    sh -c "echo \$\$ > $cg/cgroup.procs; exec /usr/bin/time -f '%e %M' \"\$@\"" sh "$@" || rc=$?
    local peak; peak=$(cat "$cg/memory.max_usage_in_bytes")
    echo "cgroup peak usage: $((peak / 1024 / 1024)) MB, exit $rc" >&2
    rmdir "$cg" 2>/dev/null || true
    return $rc
}
