#!/usr/bin/env bash
# Packing benchmark: sifr's native SquashFS writer against mksquashfs on two Debian root
# filesystems (debootstrap minbase, and minbase + python3/numpy/pandas), at
#   (a) gzip level 9 (Apptainer's `mksquashfs -comp gzip` default), and
#   (b) zstd level 3 (sifr's default codec),
# reporting wall time, CPU time (user+sys), peak RSS and image size as a markdown table.
#
# Usage: sudo bench/pack/run.sh            (root: debootstrap and chroot need it)
# Env:   BENCH_WORK  scratch directory (default: a new mktemp -d; rootfs trees are reused
#                    when BENCH_WORK already holds them)
#        REPEAT      runs per configuration, median reported (default 3)
#        SIFR        sifr binary (default: cargo build --release, then target/release/sifr)
#        MIRROR      Debian mirror (default: the first deb URI in the host's apt sources)
#        SUITE       Debian suite (default: the host's VERSION_CODENAME)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
repeat=${REPEAT:-3}
mkdir -p "$work"

need debootstrap "apt-get install debootstrap"
need mksquashfs "apt-get install squashfs-tools"
[ -x /usr/bin/time ] || { echo "missing: /usr/bin/time (apt-get install time)" >&2; exit 1; }


rootfs=$work/rootfs
rootfs_py=$work/rootfs-py
debian_trees "$work"

sifr=$(sifr_release "$repo")

# Size of the SquashFS inside a SIF: the primary partition's length, read from the image's
# bytes_used (superblock at the partition start, found by its magic at a 4 KiB boundary).
sqfs_size() {
  python3 - "$1" <<'EOF'
import struct, sys
d = open(sys.argv[1], 'rb').read()
for off in range(0, len(d), 4096):
    if d[off:off + 4] == b'hsqs':
        used = struct.unpack_from('<Q', d, off + 40)[0]
        print((used + 4095) // 4096 * 4096)
        break
EOF
}

# One measured run: prints "wall_s cpu_s rss_mib".
measure() {
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >/dev/null 2>&1
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, t, ":"); w = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { r = $2 / 1024 }
    END { printf "%.2f %.2f %.0f\n", w, u + s, r }' "$log"
}

# Median over $repeat runs (by wall time) of a command that writes $out.
bench() {
  local out=$1; shift
  local rows=()
  for _ in $(seq "$repeat"); do
    rm -f "$out"
    rows+=("$(measure "$@")")
  done
  printf '%s\n' "${rows[@]}" | sort -n | sed -n "$(( (repeat + 1) / 2 ))p"
}

threads=$(nproc)
echo "| rootfs | settings | tool | wall s | CPU s | peak RSS MiB | image MiB | size vs mksquashfs | speed vs mksquashfs |"
echo "|---|---|---|---|---|---|---|---|---|"
for tree in rootfs rootfs-py; do
  dir=$work/$tree
  tar -C "$dir" -cf - . | wc -c >/dev/null   # warm the page cache
  for cfg in "gzip 9" "zstd 3"; do
    set -- $cfg
    codec=$1 level=$2
    m_out=$work/m.sqfs s_out=$work/s.sif
    read -r mw mc mr < <(bench "$m_out" mksquashfs "$dir" "$m_out" -noappend -no-progress -quiet \
      -processors "$threads" -comp "$codec" -Xcompression-level "$level")
    m_size=$(stat -c %s "$m_out")
    read -r sw sc sr < <(bench "$s_out" "$sifr" -q build --force --compression "$codec:$level" "$s_out" "$dir")
    s_size=$(sqfs_size "$s_out")
    mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
    ratio=$(awk -v a="$s_size" -v b="$m_size" 'BEGIN { printf "%.3f", a / b }')
    speed=$(awk -v a="$mw" -v b="$sw" 'BEGIN { printf "%.1fx", a / b }')
    echo "| $tree | $codec -$level | mksquashfs | $mw | $mc | $mr | $(mib "$m_size") | 1 | 1 |"
    echo "| $tree | $codec -$level | sifr | $sw | $sc | $sr | $(mib "$s_size") | $ratio | $speed |"
  done
done
echo
echo "REPEAT=$repeat, $(nproc) CPUs, mksquashfs $(mksquashfs -version 2>&1 | head -1 | awk '{print $3}'), $(uname -r), $(date -u +%Y-%m-%d)"
