#!/usr/bin/env bash
# Argument parsing cost of `sifr exec` with many options (the goal: under 0.3 ms), from the
# release build of the `parse-cost` example. With a git revision as $1, the same example is
# also built at that revision and run beside it, for a before/after ratio; it is built in its
# own target directory ($BASE_TARGET_DIR, default target/bench-base), as a tree at another
# revision with the same crate paths must not share the current one's.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
run() { cargo run --quiet --release -p sifr-cli --example parse-cost; }
now=$(run)
echo "HEAD: $now"
if [ -n "${1:-}" ]; then
    wt=$(mktemp -d)
    trap 'git worktree remove --force "$wt"' EXIT
    git worktree add --quiet --detach "$wt" "$1"
    mkdir -p "$wt/crates/sifr-cli/examples"
    cp crates/sifr-cli/examples/parse-cost.rs "$wt/crates/sifr-cli/examples/"
    # Flags the older revision lacks are dropped from its command line.
    (cd "$wt" && sed -i -E 's/"--(no-init|no-umask|unsquash|no-env|no-eval|compat|no-https|disable-cache)",[[:space:]]*//g; s/"X,Y",[[:space:]]*//' crates/sifr-cli/examples/parse-cost.rs &&
        CARGO_TARGET_DIR=${BASE_TARGET_DIR:-$root/target/bench-base} cargo run --quiet --release -p sifr-cli --example parse-cost | sed "s/^/$1: /")
fi
