#!/usr/bin/env bash
# Many ranks of one image on one node: what N concurrent container launches cost, what an MPI job
# pays for running in a container, and how often the image file is opened and read as the rank
# count grows (what per-node sharing of the attached image should make flat).
#
#   1. N (default 32) concurrent launches of `/bin/true` and of `sleep 0.3`, as root and as the
#      user: `sifr exec IMG.sif` against `ch-run IMG.sqfs` (each launch mounts its own
#      squashfuse), `ch-run --join IMG.sqfs` (the N launches share one container) and
#      `ch-run DIR`; the floor is the N commands without a container. /dev/fuse is opened to
#      everyone for the run (as bench/start does), so the user's sifr uses its FUSE server.
#   2. `mpirun -np 4` of the MPI probe (4 MiB ring, examples/mpi/mpi_hello.c): natively
#      (compiled with the host's mpicc) against `sifr exec mpi.sif` as root and as the user, and
#      `ch-run --join IMG.sqfs`. A row whose command fails or hangs (the user's ranks in separate
#      user namespaces hang OpenMPI) is left out with the reason; the user's row is then also
#      measured with OpenMPI's single-copy off.
#   3. `mpirun -np R sifr exec IMG.sif /bin/true` under `strace -f` for R in 1 4 16 32, as root
#      and as the user: opens and reads of the SIF file, bytes read from it, loop devices
#      attached and /dev/fuse opened (the kernel's own reads through a loop device are not
#      system calls and are not counted).
#
# The image is the MPI example image (examples/mpi/mpi.def); IMG.sqfs is its SquashFS partition
# (`sifr sif dump`), DIR that unpacked, so every runtime runs the same bytes.
#
# Usage: sudo bench/ranks/run.sh           (rerun after a change: the same command)
# Env:   BENCH_WORK  scratch directory (default: a new mktemp -d; images there are reused)
#        MPI_SIF     a built mpi.sif (default: BENCH_WORK/mpi.sif, else built by scripts/examples.sh)
#        N           concurrent launches (default 32); RUNS hyperfine runs (default 10)
#        RANKS       rank counts for the strace counts (default "1 4 16 32")
#        USER_NAME   the unprivileged user (default sifrtest); SIFR as bench/start/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
runs=${RUNS:-10}
n=${N:-32}
ranks=${RANKS:-1 4 16 32}
user=${USER_NAME:-sifrtest}
mkdir -p "$work"
chmod 755 "$work"

need() { command -v "$1" >/dev/null || { echo "missing: $1 ($2)" >&2; exit 1; }; }
need hyperfine "apt-get install hyperfine"
need ch-run "apt-get install charliecloud"
need unsquashfs "apt-get install squashfs-tools"
need strace "apt-get install strace"
need mpirun.openmpi "apt-get install openmpi-bin"
need mpicc.openmpi "apt-get install libopenmpi-dev"
need python3 "apt-get install python3"
[ "$(id -u)" = 0 ] || { echo "run as root (loop devices, /dev/fuse's mode, the test user)" >&2; exit 1; }

sifr=${SIFR:-}
if [ -z "$sifr" ]; then
  (cd "$repo" && cargo build --release -q -p sifr-cli)
  sifr=${CARGO_TARGET_DIR:-$repo/target}/release/sifr
fi
install -m 755 "$sifr" "$work/sifr"
sifr=$work/sifr

id "$user" >/dev/null 2>&1 || useradd -m "$user"
uid=$(id -u "$user") gid=$(id -g "$user")

sif=$work/mpi.sif sqfs=$work/mpi.sqfs dir=$work/mpi-dir
if [ ! -e "$sif" ]; then
  if [ -n "${MPI_SIF:-}" ]; then
    cp "$MPI_SIF" "$sif"
  else
    (cd "$repo" && EXAMPLES_WORK=$work/examples EXAMPLES_AS_USER=0 SIFR=$sifr scripts/examples.sh mpi >"$work/examples.log")
    mv "$work/examples/root/mpi/mpi.sif" "$sif"
    rm -rf "$work/examples"
  fi
fi
if [ ! -e "$sqfs" ]; then
  part=$("$sifr" sif list "$sif" | awk -F'|' '/FS \(Squashfs/ {gsub(/ /, "", $1); print $1; exit}')
  "$sifr" sif dump "$part" "$sif" >"$sqfs"
fi
[ -e "$dir/.done" ] || { rm -rf "$dir"; unsquashfs -q -n -d "$dir" "$sqfs" >/dev/null; touch "$dir/.done"; }
chmod 644 "$sif" "$sqfs"
[ -e "$work/hello" ] || mpicc.openmpi -O2 -o "$work/hello" "$repo/examples/mpi/mpi_hello.c"

# fan N CMD...: start N copies of CMD at once and wait for all; fails if one failed. An
# argument @TAG@ becomes a tag unique to this fan (ch-run --join's peer group).
cat >"$work/fan" <<'EOF'
#!/bin/bash
n=$1; shift
args=("${@//@TAG@/fan$$}")
pids=()
for ((i = 0; i < n; i++)); do "${args[@]}" & pids+=($!); done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
EOF
chmod 755 "$work/fan"
fan=$work/fan

mkdir -p "$work/json"
chmod 1777 "$work/json"
fuse_mode=$(stat -c %a /dev/fuse)
trap 'chmod "$fuse_mode" /dev/fuse' EXIT
chmod 666 /dev/fuse
export USER=root

# --- 1. N concurrent launches -------------------------------------------------------------------
for who in root "$user"; do
  w=$([ "$who" = root ] && echo root || echo user)
  for cmd in /bin/true "sleep 0.3"; do
    k=$([ "$cmd" = /bin/true ] && echo true || echo sleep)
    hf "fan-$w-$k" "$who" "$runs" \
      -n "floor: $n x $cmd" "$fan $n $cmd" \
      -n "ch-run DIR" "$fan $n ch-run $dir -- $cmd" \
      -n "ch-run IMG.sqfs" "$fan $n ch-run $sqfs -- $cmd" \
      -n "ch-run --join IMG.sqfs" "$fan $n ch-run --join-ct=$n --join-tag=@TAG@ $sqfs -- $cmd" \
      -n "sifr exec IMG.sif" "$fan $n $sifr -q exec $sif $cmd"
  done
done

# --- 2. MPI probe, np 4 ---------------------------------------------------------------------------
ompi=(mpirun.openmpi --oversubscribe -np 4)
touch "$work/mpi-stamp"
# try WHO NAME CMD...: one run under a 60 s limit; on success the row goes to hyperfine.
mpi_rows_root=() mpi_rows_user=() skipped=()
try() {
  local who=$1 name=$2; shift 2
  local as=() out rc=0 why
  [ "$who" = root ] || as=(setpriv --reuid="$uid" --regid="$gid" --init-groups --)
  out=$(cd "$work/json" && env USER="$who" "${as[@]}" timeout -k 5 60 "$@" 2>&1) || rc=$?
  if [ $rc = 0 ] && grep -q "^world 4 ALL_OK=1" <<<"$out"; then
    if [ "$who" = root ]; then mpi_rows_root+=(-n "$name" "$*"); else mpi_rows_user+=(-n "$name" "$*"); fi
    return 0
  fi
  case $rc in 124 | 137) why="no exit within 60 s" ;; *) why="exit status $rc" ;; esac
  grep -q "different user namespaces" <<<"$out" && why="$why, ranks in different user namespaces (OpenMPI: CMA not available)"
  skipped+=("$([ "$who" = root ] && echo root || echo user): $name: $why")
  return 1
}
try root "native" "${ompi[@]}" --allow-run-as-root "$work/hello" || true
try root "sifr exec mpi.sif" "${ompi[@]}" --allow-run-as-root "$sifr" -q exec "$sif" /opt/mpitest || true
try root "ch-run --join IMG.sqfs" "${ompi[@]}" --allow-run-as-root ch-run --join "$sqfs" -- /opt/mpitest || true
try "$user" "native" "${ompi[@]}" "$work/hello" || true
try "$user" "sifr exec mpi.sif" "${ompi[@]}" "$sifr" -q exec "$sif" /opt/mpitest ||
  try "$user" "sifr exec mpi.sif, single copy off" env OMPI_MCA_btl_vader_single_copy_mechanism=none "${ompi[@]}" "$sifr" -q exec "$sif" /opt/mpitest || true
try "$user" "ch-run --join IMG.sqfs" "${ompi[@]}" ch-run --join "$sqfs" -- /opt/mpitest || true
((${#mpi_rows_root[@]})) && hf mpi-root root "$runs" "${mpi_rows_root[@]}"
((${#mpi_rows_user[@]})) && hf mpi-user "$user" "$runs" "${mpi_rows_user[@]}"
# A killed rank leaves its OpenMPI segments behind: remove this run's, the user's only.
find /dev/shm -maxdepth 1 -uid "$uid" -name "vader_segment.*" -newer "$work/mpi-stamp" -delete 2>/dev/null || true

# --- 3. SIF opens and reads per node as the ranks grow --------------------------------------------
counts=$work/counts.tsv
printf 'as\tranks\topenat\treads\tMiB\tloop\tfuse\n' >"$counts"
for who in root "$user"; do
  for r in $ranks; do
    log=$work/strace-$who-$r.log
    as=()
    [ "$who" = root ] || as=(setpriv --reuid="$uid" --regid="$gid" --init-groups --)
    # strace runs as root (it may trace the user's processes); the launch runs as WHO.
    (cd "$work/json" && strace -f -qq -y -s 0 -o "$log" -e trace=openat,read,pread64,ioctl \
      env USER="$who" "${as[@]}" timeout -k 5 120 mpirun.openmpi --oversubscribe --allow-run-as-root \
      -np "$r" "$sifr" -q exec "$sif" /bin/true >/dev/null 2>&1) || echo "warning: $who, $r ranks: the launch failed" >&2
    python3 - "$log" "$sif" "$who" "$r" >>"$counts" <<'EOF'
import re, sys
log, sif, who, r = sys.argv[1:]
opens = reads = nbytes = loops = fuse = 0
for line in open(log, errors="replace"):
    if "openat(" in line and '"%s"' % sif in line:
        opens += 1
    elif re.search(r"\b(read|pread64)\(\d+<%s>" % re.escape(sif), line):
        reads += 1
        m = re.search(r"=\s+(\d+)\s*$", line)
        nbytes += int(m.group(1)) if m else 0
    elif "LOOP_CONFIGURE" in line or "LOOP_SET_FD" in line:
        loops += 1
    elif "openat(" in line and '"/dev/fuse"' in line and "= -1" not in line:
        fuse += 1
print("%s\t%s\t%d\t%d\t%.1f\t%d\t%d" % ("root" if who == "root" else "user", r, opens, reads, nbytes / 2**20, loops, fuse))
EOF
    rm -f "$log"
  done
done

# --- report --------------------------------------------------------------------------------------
for w in root user; do
  echo "### $n concurrent launches, as $w"
  echo
  table "ch-run IMG.sqfs" "$work/json/fan-$w-true.json"
  echo
  table "ch-run IMG.sqfs" "$work/json/fan-$w-sleep.json"
  echo
done
echo "### mpirun -np 4, MPI probe with a 4 MiB ring"
echo
for w in root user; do
  [ -e "$work/json/mpi-$w.json" ] || continue
  echo "As $w:"
  echo
  table native "$work/json/mpi-$w.json"
  echo
done
for s in "${skipped[@]}"; do echo "- not measured: $s"; done
echo
echo "### The SIF file per node: mpirun -np R sifr exec mpi.sif /bin/true under strace -f"
echo
python3 - "$counts" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| as | ranks | opens of the SIF | reads of the SIF | MiB read | per rank: opens / reads | loop devices | /dev/fuse opens |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    k = int(r["ranks"])
    print("| %s | %d | %s | %s | %s | %.1f / %.1f | %s | %s |" % (
        r["as"], k, r["openat"], r["reads"], r["MiB"], int(r["openat"]) / k,
        int(r["reads"]) / k, r["loop"], r["fuse"]))
EOF
echo
echo "N=$n, RUNS=$runs, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $(ch-run --version 2>&1) ch-run, $(mpirun.openmpi --version 2>&1 | head -1), $(date -u +%Y-%m-%dT%H:%MZ)"
