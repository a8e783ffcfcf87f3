#!/usr/bin/env bash
# The main job of README.md on a fresh machine: build sifr, check the example definition files,
# pack a small root filesystem into a SIF image, and run a command in it.
#
# Building images from definition files (examples/*/…def) arrives with the build issue; until
# then the image is packed from a directory holding a static busybox.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo build --release --locked
SIFR=$PWD/target/release/sifr

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== sifr version"
"$SIFR" version

echo "== checking every example definition file"
"$SIFR" deffile check examples/*/*.def
echo "all example definition files are valid"

echo "== packing a root filesystem into a SIF image"
mkdir -p "$work/rootfs/bin"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for tool in sh echo id uname cat ls; do ln -s busybox "$work/rootfs/bin/$tool"; done
"$SIFR" build "$work/demo.sif" "$work/rootfs"
"$SIFR" sif list "$work/demo.sif"

echo "== running a command in it"
"$SIFR" exec "$work/demo.sif" /bin/sh -c 'echo "hello from a $(uname -m) container, as uid $(id -u)"'
