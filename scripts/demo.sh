#!/usr/bin/env bash
# The main job of README.md on a fresh machine: build sifr, then check the example definition
# files and show what sifr understood of one of them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo build --release --locked
SIFR=target/release/sifr

echo "== sifr version"
"$SIFR" version

echo "== checking every example definition file"
"$SIFR" deffile check examples/*/*.def
echo "all example definition files are valid"

echo "== the multi-stage example as sifr parsed it"
"$SIFR" deffile check --json examples/multistage/multistage.def
