#!/usr/bin/env bash
# Cold build cost of a program that only records spans: a one-line binary
# depending on the `ferret` crate (default features) of two checkouts,
# built from scratch with an empty target dir, alternating, N rounds.
# Prints wall and CPU (user+sys) seconds per build and the medians.
#
#   bench/build_time.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS] [--release]
#
# Both checkouts must be workspaces with crates/ferret (e.g. a `git
# worktree add /tmp/base <rev>`). Dependencies come from the local cargo
# registry cache, so downloads do not count.
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); rounds=${3:-3}; profile=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mk() { # name checkout
    mkdir -p "$work/$1/src"
    cat > "$work/$1/Cargo.toml" <<TOML
[package]
name = "rec-only-$1"
version = "0.1.0"
edition = "2021"

[dependencies]
ferret = { path = "$2/crates/ferret" }

[workspace]
TOML
    cat > "$work/$1/src/main.rs" <<'RS'
fn main() {
    let p = ferret::Profiler::open("ferret.db").unwrap();
    p.install();
    ferret::measure("work", || std::hint::black_box(1 + 1));
    p.close().unwrap();
}
RS
    (cd "$work/$1" && cargo generate-lockfile -q --offline 2>/dev/null || cargo generate-lockfile -q)
    (cd "$work/$1" && cargo fetch -q)
}
mk old "$old"; mk new "$new"
declare -A wall cpu
for i in $(seq "$rounds"); do
    for v in old new; do
        rm -rf "$work/$v/target"
        /usr/bin/time -o "$work/time" -f "%e %U %S" \
            cargo build -q $profile --manifest-path "$work/$v/Cargo.toml" >/dev/null 2>&1
        read -r w u s <"$work/time"
        c=$(echo "$u + $s" | bc)
        wall[$v]+="$w "; cpu[$v]+="$c "
        n=$(cd "$work/$v" && cargo tree -e normal --prefix none 2>/dev/null | sort -u | wc -l)
        echo "round $i $v: wall ${w}s cpu ${c}s crates $n"
    done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for v in old new; do
    echo "median $v: wall $(echo "${wall[$v]}" | med)s cpu $(echo "${cpu[$v]}" | med)s"
done
