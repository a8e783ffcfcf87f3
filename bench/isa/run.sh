#!/usr/bin/env bash
# ISA scan benchmark: how long recording "what the image's programs need from the CPU" takes
# on a ~300 MiB Debian tree (debootstrap minbase + python3-numpy), two ways:
#   (a) the directory scan `sifr build` runs before packing (isa::ImageFacts::scan, through
#       the `scan` example of the isa crate), and
#   (b) `sifr inspect --isa --rescan IMAGE.sif`: the same scan through the SquashFS reader,
#       for images built elsewhere.
# Reports the median wall time and CPU time (user+sys) of REPEAT runs as a markdown table.
#
# Usage: sudo bench/isa/run.sh            (root: debootstrap needs it, unless TREE is given)
# Env:   TREE        an existing root filesystem to scan (default: BENCH_WORK/rootfs-py, made
#                    with debootstrap when missing; bench/pack/run.sh makes the same tree)
#        BENCH_WORK  scratch directory (default: a new mktemp -d)
#        REPEAT      runs per measurement, median reported (default 5)
#        MIRROR      Debian mirror (default: the first deb URI in the host's apt sources)
#        SUITE       Debian suite (default: the host's VERSION_CODENAME)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
repeat=${REPEAT:-5}
mkdir -p "$work"
[ -x /usr/bin/time ] || { echo "missing: /usr/bin/time (apt-get install time)" >&2; exit 1; }

tree=${TREE:-$work/rootfs-py}
if [ ! -d "$tree/usr" ]; then
  command -v debootstrap >/dev/null || { echo "missing: debootstrap" >&2; exit 1; }
  # The mirror comes from the host's apt configuration at run time, never hard-coded.
  mirror=$(host_mirror)
  suite=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
  echo "debootstrap --variant=minbase --include=python3-numpy $suite from $mirror" >&2
  debootstrap --variant=minbase --include=python3-numpy "$suite" "$tree" "$mirror" \
    >"$work/debootstrap.log" 2>&1
  chroot "$tree" apt-get clean
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build -q --release -p sifr-isa --example scan && cargo build -q --release -p sifr-cli)
scan=$CARGO_TARGET_DIR/release/examples/scan
sifr=$CARGO_TARGET_DIR/release/sifr

sif=$work/isa-bench.sif
"$sifr" -q build -F "$sif" "$tree"

# Prints "wall cpu" for one run of the command.
measure() {
  /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >/dev/null 2>&1
  awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$work/time"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

run() {
  local label=$1; shift
  "$@" >/dev/null 2>&1 # warm the page cache: the figure is the scan, not the disk
  : >"$work/runs"
  for _ in $(seq "$repeat"); do measure "$@" >>"$work/runs"; done
  printf '| %s | %s | %s |\n' "$label" \
    "$(cut -d' ' -f1 "$work/runs" | median)" "$(cut -d' ' -f2 "$work/runs" | median)"
}

size=$(du -sm --apparent-size "$tree" | cut -f1)
elf=$("$scan" "$tree" 2>/dev/null | tail -1)
echo "tree: $tree, $size MiB; $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "scan: $elf"
echo
echo "| scan | wall s (median of $repeat) | CPU s |"
echo "|---|---|---|"
run "directory (as in \`sifr build\`)" "$scan" "$tree"
run "\`sifr inspect --isa --rescan\` on the SIF" "$sifr" inspect --isa --rescan "$sif"
