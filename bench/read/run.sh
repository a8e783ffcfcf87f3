#!/usr/bin/env bash
# Read-path benchmark: one squashfs image of a Debian tree with python3 + pandas, mounted three
# ways, the same workloads run in a sifr container on each, in one run with hyperfine (warm
# page cache):
#   kernel        `mount -t squashfs -o loop,ro` on the host, the mount point run as a sandbox
#   squashfuse_ll `squashfuse_ll IMG MNT` on the host, the mount point run as a sandbox
#   sifr FUSE     `sifr exec --userns IMG`: sifr's own server, a fresh mount per container
#   kernel, fresh `sifr exec IMG` as root: kernel squashfs on a new loop device per container
#                 (cold block cache each time: the per-launch counterpart of sifr FUSE)
#   sifr FUSE, holder kept  as sifr FUSE, with SIFR_SHARE_IDLE=30: the node's holder of the
#                 image stays between containers, so each container joins the same warm mount
#                 (what ranks of a job, an instance, or a script's sequence of execs get)
#   (and, for reference, the unpacked directory itself as a sandbox)
# Every command but the fresh loop is `sifr exec --userns ...`, so the namespaces and mounts are
# the same and only the image's backing differs. Workloads: `python3 -c 'import pandas'`, a full
# `find / -xdev -type f | wc -l`, and reading every byte (`tar --one-file-system -cf - / | wc -c`).
#
# The kernel and squashfuse_ll mounts stay up for the whole run, so their page caches are warm
# from the second run on; sifr's FUSE mount is new in every container, as it is in real use, so
# each run starts with an empty FUSE page cache (the image file itself is in the host's page
# cache). The second table isolates the server: hyperfine runs *inside* one container per backing
# (the host's hyperfine bound in), so sifr's mount stays warm like the others.
#
# Usage: sudo bench/read/run.sh
# Env:   BENCH_WORK  scratch directory (default: a new mktemp -d; a `rootfs-py` tree with a
#                    `.bench-done` marker is reused, else made with debootstrap + apt)
#        RUNS        hyperfine runs per command (default 10)
#        SIFR        sifr binary (default: cargo build --release, then target/release/sifr)
#        MIRROR, SUITE  as bench/pack/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
runs=${RUNS:-10}
mkdir -p "$work"
chmod 755 "$work"

need hyperfine "apt-get install hyperfine"
need squashfuse_ll "apt-get install squashfuse"
need mksquashfs "apt-get install squashfs-tools"
need python3 "apt-get install python3"
[ "$(id -u)" = 0 ] || { echo "run as root (kernel squashfs mount)" >&2; exit 1; }

tree=$work/rootfs-py
if [ ! -e "$tree/.bench-done" ]; then
  need debootstrap "apt-get install debootstrap"
  mirror=$(host_mirror)
  suite=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
  rm -rf "$tree"
  debootstrap --variant=minbase "$suite" "$tree" "$mirror" >"$work/debootstrap.log" 2>&1
  mount -t proc proc "$tree/proc"
  trap 'umount "$tree/proc" 2>/dev/null || true' EXIT
  chroot "$tree" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-numpy python3-pandas && apt-get clean && rm -rf /var/lib/apt/lists/*' >"$work/apt.log" 2>&1
  umount "$tree/proc"
  trap - EXIT
  touch "$tree/.bench-done"
fi

sifr=$(sifr_release "$repo")
install -m 755 "$sifr" "$work/sifr"
sifr=$work/sifr

img=$work/read.sqfs
[ -e "$img" ] || mksquashfs "$tree" "$img" -noappend -quiet -no-progress >/dev/null
mk=$work/mnt-kernel ms=$work/mnt-squashfuse
mkdir -p "$mk" "$ms"
cleanup() {
  umount "$mk" 2>/dev/null || true
  fusermount3 -u "$ms" 2>/dev/null || umount "$ms" 2>/dev/null || true
}
trap cleanup EXIT
mount -t squashfs -o loop,ro "$img" "$mk"
squashfuse_ll "$img" "$ms"

export USER=root
cd "$work"
x="$sifr -q exec --userns --no-home"
declare -A cmd=(
  [import pandas]="python3 -c 'import pandas'"
  [find]="sh -c 'find / -xdev -type f | wc -l'"
  [read every byte]="sh -c 'tar --one-file-system -C / -cf - . | wc -c'"
)
backings=("kernel:$mk" "squashfuse_ll:$ms" "sifr FUSE:$img" "directory:$tree")

# Per container: hyperfine on the host, one container per run.
for w in "import pandas" "find" "read every byte"; do
  args=()
  for b in "${backings[@]}"; do
    args+=(-n "${b%%:*}" "$x ${b#*:} ${cmd[$w]}")
  done
  args+=(-n "kernel, fresh loop" "$sifr -q exec --no-home $img ${cmd[$w]}")
  args+=(-n "sifr FUSE, holder kept" "env SIFR_SHARE_IDLE=30 $x $img ${cmd[$w]}")
  hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/per-$w.json" "${args[@]}" >/dev/null
done

# Inside one container: the host's hyperfine bound in, its JSON written to the bound /tmp.
for w in "import pandas" "find" "read every byte"; do
  for b in "${backings[@]}"; do
    name=${b%%:*}
    $x -B "$(command -v hyperfine)":/usr/local/bin/hyperfine "${b#*:}" \
      hyperfine -N --warmup 2 --runs "$runs" -n "$name" --export-json "/tmp/in-$$.json" "${cmd[$w]}" >/dev/null
    mv "/tmp/in-$$.json" "$work/in-$w-$name.json"
  done
done

table() {
  python3 - "$@" <<'EOF'
import json, sys
kind = sys.argv[1]
fresh = kind == "per"
print("| workload | backing | median ms | mean ± sd ms | vs kernel |" + (" vs kernel, fresh loop |" if fresh else ""))
print("|---|---|---|---|---|" + ("---|" if fresh else ""))
for w in ["import pandas", "find", "read every byte"]:
    if fresh:
        rows = json.load(open("per-%s.json" % w))["results"]
    else:
        rows = [json.load(open("in-%s-%s.json" % (w, b)))["results"][0]
                for b in ["kernel", "squashfuse_ll", "sifr FUSE", "directory"]]
    base = next(r["median"] for r in rows if r["command"] == "kernel")
    cold = next((r["median"] for r in rows if r["command"] == "kernel, fresh loop"), None)
    for r in rows:
        line = "| %s | %s | %.1f | %.1f ± %.1f | %.2fx |" % (
            w, r["command"], r["median"] * 1e3, r["mean"] * 1e3, r["stddev"] * 1e3,
            r["median"] / base)
        if fresh:
            line += " %.2fx |" % (r["median"] / cold)
        print(line)
EOF
}

echo "### One container per run (sifr exec on the host)"
echo
table per
echo
echo "### Inside one container (hyperfine in the container)"
echo
table in
echo
echo "RUNS=$runs, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), squashfuse $(dpkg-query -W -f='${Version}' squashfuse 2>/dev/null), image $(du -m "$img" | cut -f1) MiB gzip, $(date -u +%Y-%m-%dT%H:%MZ)"
