#!/usr/bin/env bash
# Start latency benchmark: `sifr exec IMAGE /bin/true` against Charliecloud's `ch-run` on the
# same Debian minbase tree, with `unshare -mUr chroot DIR /bin/true` as the floor, all in one
# run with hyperfine (warm page cache).
#
#   as root:  sifr on the directory, on a SIF and on the bare squashfs (kernel squashfs on a
#             loop device), vs `ch-run DIR` and `ch-run IMG.sqfs`;
#   as USER:  sifr on the SIF and the squashfs through its FUSE server (/dev/fuse opened to
#             everyone for the run, then put back), through extraction (/dev/fuse 0600), vs
#             `ch-run DIR` and `ch-run IMG.sqfs` as that user, and the floor.
#
# sifr rows: the default (each launch here is alone on the node, so it starts the node's holder
# and the holder leaves with it), SIFR_SHARE=0 (no holder: the image attached by the launch, as
# Apptainer does), and a holder kept between launches (SIFR_SHARE_IDLE: a job script's sequence
# of short execs, or ranks joining a running one) where a launch only joins.
#
# IMG.sqfs is made by `mksquashfs` with its defaults (gzip), the SIF by `sifr build` with its
# default codec (zstd level 3); both sifr and ch-run run the same IMG.sqfs.
#
# Usage: sudo bench/start/run.sh
# Env:   BENCH_WORK  scratch directory (default: a new mktemp -d; a `rootfs` tree with a
#                    `.bench-done` marker is reused, else made with debootstrap)
#        RUNS        hyperfine runs per command (default 50; extraction runs RUNS/10)
#        USER_NAME   the unprivileged user (default: sifrtest, created with useradd when missing)
#        SIFR        sifr binary (default: cargo build --release, then target/release/sifr)
#        MIRROR, SUITE  as bench/pack/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
runs=${RUNS:-50}
user=${USER_NAME:-sifrtest}
mkdir -p "$work"
chmod 755 "$work"

need hyperfine "apt-get install hyperfine"
need ch-run "apt-get install charliecloud"
need mksquashfs "apt-get install squashfs-tools"
need python3 "apt-get install python3"
[ "$(id -u)" = 0 ] || { echo "run as root (loop devices, /dev/fuse's mode, the test user)" >&2; exit 1; }

rootfs=$work/rootfs
if [ ! -e "$rootfs/.bench-done" ]; then
  need debootstrap "apt-get install debootstrap"
  mirror=$(host_mirror)
  suite=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
  rm -rf "$rootfs"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1
  chroot "$rootfs" apt-get clean
  touch "$rootfs/.bench-done"
fi

sifr=$(sifr_release "$repo")
install -m 755 "$sifr" "$work/sifr"
sifr=$work/sifr

id "$user" >/dev/null 2>&1 || useradd -m "$user"
# shellcheck disable=SC2034 # read by hf (lib.sh)
uid=$(id -u "$user") gid=$(id -g "$user")

sqfs=$work/start.sqfs sif=$work/start.sif
[ -e "$sqfs" ] || mksquashfs "$rootfs" "$sqfs" -noappend -quiet -no-progress >/dev/null
[ -e "$sif" ] || "$sifr" -q build "$sif" "$rootfs"
chmod 644 "$sqfs" "$sif"

# Written by hyperfine as root and as the user; also the commands' working directory.
mkdir -p "$work/json"
chmod 1777 "$work/json"

fuse_mode=$(stat -c %a /dev/fuse)
trap 'chmod "$fuse_mode" /dev/fuse' EXIT

export USER=root
hf root root "$runs" \
  -n "floor: unshare -mUr chroot DIR" "unshare -mUr chroot $rootfs /bin/true" \
  -n "ch-run DIR" "ch-run $rootfs -- /bin/true" \
  -n "ch-run IMG.sqfs" "ch-run $sqfs -- /bin/true" \
  -n "sifr exec DIR" "$sifr exec $rootfs /bin/true" \
  -n "sifr exec IMG.sif (loop)" "$sifr exec $sif /bin/true" \
  -n "sifr exec IMG.sif (loop, SIFR_SHARE=0)" "env SIFR_SHARE=0 $sifr exec $sif /bin/true" \
  -n "sifr exec IMG.sif (loop, holder kept: SIFR_SHARE_IDLE=10)" "env SIFR_SHARE_IDLE=10 $sifr exec $sif /bin/true" \
  -n "sifr exec IMG.sqfs (loop)" "$sifr exec $sqfs /bin/true"

chmod 666 /dev/fuse
hf user "$user" "$runs" \
  -n "floor: unshare -mUr chroot DIR" "unshare -mUr chroot $rootfs /bin/true" \
  -n "ch-run DIR" "ch-run $rootfs -- /bin/true" \
  -n "ch-run IMG.sqfs" "ch-run $sqfs -- /bin/true" \
  -n "sifr exec DIR" "$sifr exec $rootfs /bin/true" \
  -n "sifr exec IMG.sif (FUSE)" "$sifr exec $sif /bin/true" \
  -n "sifr exec IMG.sif (FUSE, SIFR_SHARE=0)" "env SIFR_SHARE=0 $sifr exec $sif /bin/true" \
  -n "sifr exec IMG.sif (FUSE, holder kept: SIFR_SHARE_IDLE=10)" "env SIFR_SHARE_IDLE=10 $sifr exec $sif /bin/true" \
  -n "sifr exec IMG.sqfs (FUSE)" "$sifr exec $sqfs /bin/true"

# SIFR_SHARE=0: the kept holder of the row above may still run, and a launch joins it whatever
# /dev/fuse's mode.
chmod 600 /dev/fuse
hf extract "$user" "$(( runs / 10 > 3 ? runs / 10 : 3 ))" \
  -n "sifr exec IMG.sif (extraction)" "env SIFR_SHARE=0 $sifr -q exec $sif /bin/true"
chmod "$fuse_mode" /dev/fuse

echo "### As root"
echo
table "ch-run DIR" "$work/json/root.json"
echo
echo "### As an unprivileged user"
echo
table "ch-run IMG.sqfs" "$work/json/user.json" "$work/json/extract.json"
echo
echo "RUNS=$runs, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $(ch-run --version 2>&1) ch-run, $(date -u +%Y-%m-%dT%H:%MZ)"
