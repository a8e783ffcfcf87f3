#!/usr/bin/env bash
# Pull benchmark: registry image to a runnable SquashFS image, cold cache, on a local
# docker-registry (127.0.0.1, plain HTTP), comparing
#   sifr      `sifr pull --compression gzip` (download in parallel into the blob cache, layers
#             merged straight into the SIF's SquashFS partition, nothing extracted)
#   apptainer Apptainer's pipeline: `skopeo copy docker:// oci:` + `umoci unpack` +
#             `mksquashfs -comp gzip` (what `apptainer pull` runs, minus the SIF wrapping)
#   skopeo    `skopeo copy docker:// oci:` alone: the download, as a floor
#   ch-image  `ch-image pull` when installed
# for two images made from Debian trees: minbase (one layer) and minbase + python3/numpy/pandas
# (two layers: the base, then the difference umoci computes).
#
# Usage: sudo bench/pull/run.sh            (root: debootstrap, chroot and umoci need it)
# Env:   BENCH_WORK  scratch directory (default: a new mktemp -d); `rootfs` and `rootfs-py`
#                    trees there are reused when they hold a `.bench-done` marker (the trees
#                    of bench/pack/run.sh are the same)
#        REPEAT      runs per configuration, median reported (default 3)
#        SIFR        sifr binary (default: cargo build --release, then target/release/sifr)
#        MIRROR      Debian mirror (default: the first deb URI in the host's apt sources)
#        SUITE       Debian suite (default: the host's VERSION_CODENAME)
#        PREP_ONLY   set: make the trees and the OCI layout, then stop
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
repeat=${REPEAT:-3}
mkdir -p "$work"

need debootstrap "apt-get install debootstrap"
need mksquashfs "apt-get install squashfs-tools"
need docker-registry "apt-get install docker-registry"
need skopeo "apt-get install skopeo"
need umoci "apt-get install umoci"

rootfs=$work/rootfs
rootfs_py=$work/rootfs-py
debian_trees "$work"
# The trees may be links to another benchmark's (BENCH_WORK shared with bench/pack).
rootfs=$(readlink -f "$rootfs")
rootfs_py=$(readlink -f "$rootfs_py")

# The images, as an OCI layout: minbase is one layer; py adds the difference to minbase.
layout=$work/pull-layout
if [ ! -e "$layout/.bench-done" ]; then
  rm -rf "$layout" "$work/bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:minbase"
  umoci insert --image "$layout:minbase" "$rootfs" /
  umoci config --image "$layout:minbase" --config.cmd /bin/bash --config.env LANG=C.UTF-8
  umoci unpack --image "$layout:minbase" "$work/bundle" >/dev/null
  # cp -a keeps modes, owners and times, so umoci's mtree diff sees only what apt changed.
  rm -rf "$work/bundle/rootfs" && cp -a "$rootfs_py" "$work/bundle/rootfs"
  umoci repack --image "$layout:py" "$work/bundle"
  rm -rf "$work/bundle"
  touch "$layout/.bench-done"
fi
[ -z "${PREP_ONLY:-}" ] || exit 0

sifr=$(sifr_release "$repo")

# A registry on a free port, its storage in the work directory.
reg=$work/registry
rm -rf "$reg"
start_registry "$reg"
# shellcheck disable=SC2154 # start_registry (bench/lib.sh) sets $port
host=127.0.0.1:$port
for img in minbase py; do
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$layout:$img" "docker://$host/bench/$img:v1"
done

out=$work/out
secs() { date +%s.%N; }
# Time one command (all output to a log); prints seconds.
timed() {
  local t0 t1
  t0=$(secs)
  "$@" >>"$work/run.log" 2>&1 || { echo "failed: $* (see $work/run.log)" >&2; exit 1; }
  t1=$(secs)
  echo "$t1 - $t0" | bc
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_sifr() {
  rm -rf "$out" && mkdir -p "$out"
  APPTAINER_CACHEDIR=$out/cache timed "$sifr" -q pull --nohttps --compression gzip "$out/i.sif" "docker://$host/bench/$1:v1"
}
# sifr's default codec (zstd:3), as a user who does not pass --compression gets it.
run_sifrzstd() {
  rm -rf "$out" && mkdir -p "$out"
  APPTAINER_CACHEDIR=$out/cache timed "$sifr" -q pull --nohttps "$out/i.sif" "docker://$host/bench/$1:v1"
}
run_skopeo() {
  rm -rf "$out" && mkdir -p "$out"
  timed skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$host/bench/$1:v1" "oci:$out/oci:$1"
}
run_apptainer() {
  rm -rf "$out" && mkdir -p "$out"
  local a b c
  a=$(timed skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$host/bench/$1:v1" "oci:$out/oci:$1")
  b=$(timed umoci unpack --image "$out/oci:$1" "$out/bundle")
  c=$(timed mksquashfs "$out/bundle/rootfs" "$out/i.sqfs" -comp gzip -noappend -quiet -no-progress)
  echo "$a + $b + $c" | bc
}
run_chimage() {
  rm -rf "$out" && mkdir -p "$out"
  CH_IMAGE_STORAGE=$out/ch timed ch-image pull --tls-no-verify "$host/bench/$1:v1"
}

tools="sifr sifrzstd apptainer skopeo"
# Only a working ch-image counts (Debian's package needs python3-lark).
ch-image --version >/dev/null 2>&1 && tools="$tools chimage"

echo "| image | sifr pull, gzip (s) | sifr pull, default zstd:3 (s) | skopeo+umoci+mksquashfs gzip (s) | skopeo copy alone (s) | Apptainer's pipeline / sifr gzip | Apptainer's pipeline / sifr default | sifr default / skopeo copy |"
echo "|---|---|---|---|---|---|---|---|"
for img in minbase py; do
  declare -A t=()
  for tool in $tools; do
    t[$tool]=$(for _ in $(seq "$repeat"); do "run_$tool" "$img"; done | median)
  done
  printf '| %s | %.2f | %.2f | %.2f | %.2f | %.1fx | %.1fx | %.2fx |\n' "$img" "${t[sifr]}" "${t[sifrzstd]}" \
    "${t[apptainer]}" "${t[skopeo]}" \
    "$(echo "${t[apptainer]} / ${t[sifr]}" | bc -l)" "$(echo "${t[apptainer]} / ${t[sifrzstd]}" | bc -l)" \
    "$(echo "${t[sifrzstd]} / ${t[skopeo]}" | bc -l)"
  [ -n "${t[chimage]:-}" ] && printf '| %s (ch-image pull) | | | | %.2f s | |\n' "$img" "${t[chimage]}"
  unset t
done
rm -rf "$out"
