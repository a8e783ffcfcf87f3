#!/usr/bin/env bash
# The main job of README.md on a fresh machine: build sifr, check the example definition files,
# build the multi-stage example (gcc in a Debian build stage, only the static binary shipped)
# into a SIF image, and run it. As an ordinary user the build runs as fakeroot.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo build --release --locked
SIFR=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/sifr

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== sifr version"
"$SIFR" version

echo "== checking every example definition file"
"$SIFR" deffile check examples/*/*.def
echo "all example definition files are valid"

echo "== building examples/multistage/multistage.def into a SIF image"
(cd examples/multistage && "$SIFR" build "$work/hello.sif" multistage.def)
"$SIFR" sif list "$work/hello.sif"
echo "image size: $(du -h "$work/hello.sif" | cut -f1) (the build stage's compiler is not in it)"

echo "== running it"
"$SIFR" exec "$work/hello.sif" /usr/local/bin/hello
"$SIFR" inspect --labels "$work/hello.sif"

echo "== done"
echo "sifr is at $SIFR; install it with: scripts/install.sh [--drop-in] PREFIX"
echo "(binary, man pages, completions and an Lmod modulefile; see docs/cli.md)"
