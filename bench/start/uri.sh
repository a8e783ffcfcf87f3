#!/usr/bin/env bash
# Start latency of an image URI already in the cache (issue 20): `sifr exec docker://... /bin/true`
# against `sifr exec` of the very SIF file the cache holds for it, side by side in one hyperfine
# run, as root, warm cache. The URI launch checks the tag with one HEAD request to a local
# `docker-registry` on 127.0.0.1 (plain HTTP, APPTAINER_NOHTTPS), as every launch of a tag does;
# a digest-pinned URI (`docker://...@sha256:...`) needs no request and is timed too, and so is
# an `oci-archive:` file. Goal: the tag's launch within 1.2x of the SIF's.
#
# The image is a static busybox (as /bin/true), written as an OCI layout here and pushed with
# skopeo.
#
# Usage: sudo bench/start/uri.sh
# Env:   BENCH_WORK (scratch, default mktemp -d), RUNS (default 100), SIFR (default: release
#        build of this tree).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
runs=${RUNS:-100}
mkdir -p "$work/json"
chmod 755 "$work"

need hyperfine "apt-get install hyperfine"
need busybox "apt-get install busybox-static"
need docker-registry "apt-get install docker-registry"
need skopeo "apt-get install skopeo"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
sifr=$(sifr_release "$repo")

# blob FILE MEDIATYPE: store FILE as a blob of the layout; print its descriptor.
blob() {
  local d s
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  cp "$1" "$layout/blobs/sha256/$d"
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$d" "$s"
}

layout=$work/layout
rm -rf "$layout" "$work/tree"
mkdir -p "$layout/blobs/sha256" "$work/tree/bin"
cp "$(command -v busybox)" "$work/tree/bin/busybox"
ln -s busybox "$work/tree/bin/true"
ln -s busybox "$work/tree/bin/sh"
tar --numeric-owner --owner=0 --group=0 -C "$work/tree" -czf "$work/layer.tar.gz" .
case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}' \
  "$arch" >"$work/config.json"
cfg=$(blob "$work/config.json" application/vnd.oci.image.config.v1+json)
lay=$(blob "$work/layer.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
  "$cfg" "$lay" >"$work/manifest.json"
man=$(blob "$work/manifest.json" application/vnd.oci.image.manifest.v1+json)
printf '{"schemaVersion":2,"manifests":[%s]}' \
  "${man%\}},\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}" >"$layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
tar -C "$layout" -cf "$work/image.tar" .

# The registry, on a free port of 127.0.0.1, stopped on exit.
rm -rf "$work/registry"
start_registry "$work/registry"
# shellcheck disable=SC2154 # start_registry (bench/lib.sh) sets $port
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$layout:v1" \
  "docker://127.0.0.1:$port/bench/img:v1"

export APPTAINER_CACHEDIR=$work/cache APPTAINER_NOHTTPS=1 USER=root
uri=docker://127.0.0.1:$port/bench/img:v1
digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "$uri")
pinned=docker://127.0.0.1:$port/bench/img@$digest
archive=oci-archive:$work/image.tar:v1
# Fill the cache (and check each launch works) before anything is timed.
for i in "$uri" "$pinned" "$archive"; do "$sifr" -q exec "$i" /bin/true; done
sif=$(ls -t "$work"/cache/oci-tmp/* | tail -1)
[ -f "$sif" ] || { echo "no cached SIF" >&2; exit 1; }

hf uri root "$runs" \
  -n "sifr exec SIF" "$sifr exec $sif /bin/true" \
  -n "sifr exec docker://TAG (cached)" "$sifr exec $uri /bin/true" \
  -n "sifr exec docker://@DIGEST (cached)" "$sifr exec $pinned /bin/true" \
  -n "sifr exec oci-archive: (cached)" "$sifr exec $archive /bin/true"
table "sifr exec SIF" "$work/json/uri.json"
echo
echo "RUNS=$runs, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
