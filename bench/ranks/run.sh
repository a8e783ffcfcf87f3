#!/usr/bin/env bash
# Many ranks of one image on one node: what N concurrent container launches cost, what an MPI job
# pays for running in a container, and how often the image file is opened and read as the rank
# count grows. sifr rows come twice: as is (the launches of a node share one holder: one attached
# image, one user namespace) and with SIFR_SHARE=0 (each launch attaches the image itself, as
# Apptainer does).
#
#   1. N (default 32) concurrent launches of `/bin/true` and of `sleep 0.3`, as root and as the
#      user: `sifr exec IMG.sif` against `ch-run IMG.sqfs` (each launch mounts its own
#      squashfuse), `ch-run --join IMG.sqfs` (the N launches share one container) and
#      `ch-run DIR`; the floor is the N commands without a container. /dev/fuse is opened to
#      everyone for the run (as bench/start does), so the user's sifr uses its FUSE server.
#   2. `mpirun -np 4` of the MPI probe (4 MiB ring, examples/mpi/mpi_hello.c): natively
#      (compiled with the host's mpicc) against `sifr exec mpi.sif` as root and as the user, and
#      `ch-run --join IMG.sqfs`. A row whose trial run fails or hangs is left out with the
#      reason (ranks in separate user namespaces hang OpenMPI; those rows run with its
#      single-copy off).
#   3. `mpirun -np R sifr exec IMG.sif /bin/true` under `strace -f` for R in 1 4 16 32, as root
#      and as the user (with FUSE, and without: /dev/fuse 0600, extraction): opens and reads of
#      the SIF file, bytes read from it, loop devices attached and /dev/fuse opened (the
#      kernel's own reads through a loop device are not system calls and are not counted).
#
# The image is the MPI example image (examples/mpi/mpi.def); IMG.sqfs is its SquashFS partition
# (`sifr sif dump`), DIR that unpacked, so every runtime runs the same bytes.
#
# Usage: sudo bench/ranks/run.sh           (rerun after a change: the same command)
# Env:   BENCH_WORK  scratch directory (default: a new mktemp -d; images there are reused)
#        MPI_SIF     a built mpi.sif (default: BENCH_WORK/mpi.sif, else built by scripts/examples.sh)
#        N           concurrent launches (default 32); RUNS hyperfine runs (default 10)
#        RANKS       rank counts for the strace counts (default "1 4 16 32"); EXTRACT_RANKS
#                    those for the user without FUSE, where each rank unpacks the image (default "1 4")
#        USER_NAME   the unprivileged user (default sifrtest); SIFR as bench/start/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
runs=${RUNS:-10}
n=${N:-32}
ranks=${RANKS:-1 4 16 32}
extract_ranks=${EXTRACT_RANKS:-1 4}
user=${USER_NAME:-sifrtest}
mkdir -p "$work"
chmod 755 "$work"

need hyperfine "apt-get install hyperfine"
need ch-run "apt-get install charliecloud"
need unsquashfs "apt-get install squashfs-tools"
need strace "apt-get install strace"
need mpirun.openmpi "apt-get install openmpi-bin"
need mpicc.openmpi "apt-get install libopenmpi-dev"
need python3 "apt-get install python3"
[ "$(id -u)" = 0 ] || { echo "run as root (loop devices, /dev/fuse's mode, the test user)" >&2; exit 1; }

sifr=$(sifr_release "$repo")
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
# argument @TAG@ becomes a tag unique to this fan (ch-run --join's peer group). The copies'
# stderr is appended to errors/PROGRAM.err next to fan, for the report.
mkdir -p "$work/errors"
chmod 1777 "$work/errors"
rm -f "$work/errors"/*.err
cat >"$work/fan" <<'EOF'
#!/bin/bash
n=$1; shift
args=("${@//@TAG@/ranksbench$$}")
prog=$1
[ "$prog" = env ] && for a in "$@"; do [[ $a == env || $a == *=* ]] || { prog=$a; break; }; done
exec 2>>"$(dirname "$0")/errors/${prog##*/}.err"
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
# ch-run --join leaves its peer group's semaphore and shared memory when a peer fails.
trap 'chmod "$fuse_mode" /dev/fuse; rm -f /dev/shm/ch-run_shm-ranksbench* /dev/shm/sem.ch-run_sem-ranksbench*' EXIT
chmod 666 /dev/fuse
export USER=root

# try ROWS WHO NAME MUST CMD...: a trial run of CMD as WHO under a 60 s limit; when it succeeds
# and its output matches the regex MUST (if any), add `-n NAME CMD` to the array named ROWS for
# hyperfine, else note in $trials why it failed and fail.
trials=()
try() {
  local -n rows=$1
  local who=$2 name=$3 must=$4
  shift 4
  local as=() out rc=0 why
  [ "$who" = root ] || as=(setpriv --reuid="$uid" --regid="$gid" --init-groups --)
  out=$(cd "$work/json" && env USER="$who" "${as[@]}" timeout -k 5 60 "$@" 2>&1) || rc=$?
  if [ $rc = 0 ] && { [ -z "$must" ] || grep -qE "$must" <<<"$out"; }; then
    rows+=(-n "$name" "$*")
    return 0
  fi
  case $rc in
    0) why="no \`$must\` in the output" ;;
    124 | 137) why="no exit within 60 s" ;;
    *) why="exit status $rc" ;;
  esac
  if grep -q "different user namespaces" <<<"$out"; then
    why="$why; ranks in different user namespaces (OpenMPI: CMA not available)"
  else
    # (fan sends its launches' stderr to the error lines of the report instead)
    why="$why; $(grep -m1 -A3 -iE 'error|fail' <<<"$out" | tr -s ' \n' ' ' || true)"
  fi
  why=${why%; }
  ((${#why} < 240)) || why="${why:0:240}..."
  trials+=("$([ "$who" = root ] && echo root || echo user), $name: $why")
  return 1
}

# --- 1. N concurrent launches -------------------------------------------------------------------
# fan_row NAME CMD...: a row of the launch tables, timed even when its trial run fails.
fan_row() {
  local name=$1
  shift
  try fan_rows "$who" "$name" "" "$@" || fan_rows+=(-n "$name" "$*")
}
for who in root "$user"; do
  w=$([ "$who" = root ] && echo root || echo user)
  for cmd in /bin/true "sleep 0.3"; do
    k=$([ "$cmd" = /bin/true ] && echo true || echo sleep)
    fan_rows=()
    # $cmd is two words for sleep: split on purpose.
    # shellcheck disable=SC2086
    {
      fan_row "floor: $n x $cmd" "$fan" "$n" $cmd
      fan_row "ch-run DIR" "$fan" "$n" ch-run "$dir" -- $cmd
      fan_row "ch-run IMG.sqfs" "$fan" "$n" ch-run "$sqfs" -- $cmd
      fan_row "ch-run --join IMG.sqfs" "$fan" "$n" ch-run --join-ct="$n" --join-tag=@TAG@ "$sqfs" -- $cmd
      fan_row "sifr exec IMG.sif" "$fan" "$n" "$sifr" -q exec "$sif" $cmd
      fan_row "sifr exec IMG.sif, SIFR_SHARE=0" "$fan" "$n" env SIFR_SHARE=0 "$sifr" -q exec "$sif" $cmd
    }
    # -i: ch-run --join fails now and then (the peers lose the image when the first one, which
    # holds its squashfuse mount, exits); failed runs are counted in the table.
    hf "fan-$w-$k" "$who" "$runs" -i "${fan_rows[@]}"
  done
done

# --- 2. MPI probe, np 4 ---------------------------------------------------------------------------
ompi=(mpirun.openmpi --oversubscribe -np 4)
touch "$work/mpi-stamp"
ok="^world 4 ALL_OK=1"
# shellcheck disable=SC2034 # filled by try through a name reference
mpi_root=() mpi_user=()
try mpi_root root "native" "$ok" "${ompi[@]}" --allow-run-as-root "$work/hello" || true
try mpi_root root "sifr exec mpi.sif" "$ok" "${ompi[@]}" --allow-run-as-root "$sifr" -q exec "$sif" /opt/mpitest || true
try mpi_root root "sifr exec mpi.sif, SIFR_SHARE=0" "$ok" env SIFR_SHARE=0 "${ompi[@]}" --allow-run-as-root "$sifr" -q exec "$sif" /opt/mpitest || true
try mpi_root root "ch-run --join IMG.sqfs" "$ok" "${ompi[@]}" --allow-run-as-root ch-run --join "$sqfs" -- /opt/mpitest || true
try mpi_user "$user" "native" "$ok" "${ompi[@]}" "$work/hello" || true
try mpi_user "$user" "sifr exec mpi.sif" "$ok" "${ompi[@]}" "$sifr" -q exec "$sif" /opt/mpitest ||
  try mpi_user "$user" "sifr exec mpi.sif, single copy off" "$ok" env OMPI_MCA_btl_vader_single_copy_mechanism=none "${ompi[@]}" "$sifr" -q exec "$sif" /opt/mpitest || true
# Without sharing the ranks are in 4 user namespaces, where OpenMPI hangs unless told not to use CMA.
try mpi_user "$user" "sifr exec mpi.sif, SIFR_SHARE=0, single copy off" "$ok" env SIFR_SHARE=0 OMPI_MCA_btl_vader_single_copy_mechanism=none "${ompi[@]}" "$sifr" -q exec "$sif" /opt/mpitest || true
try mpi_user "$user" "ch-run --join IMG.sqfs" "$ok" "${ompi[@]}" ch-run --join "$sqfs" -- /opt/mpitest || true
hf mpi-root root "$runs" "${mpi_root[@]}"
hf mpi-user "$user" "$runs" "${mpi_user[@]}"
# A killed rank leaves its OpenMPI segments behind: remove this run's, the user's only.
find /dev/shm -maxdepth 1 -uid "$uid" -name "vader_segment.*" -newer "$work/mpi-stamp" -delete 2>/dev/null || true

# --- 3. SIF opens and reads per node as the ranks grow --------------------------------------------
counts=$work/counts.tsv
printf 'as\tranks\topenat\treads\tMiB\tloop\tfuse\n' >"$counts"
for mode in root root-noshare fuse fuse-noshare extraction; do
  who=$user rs=$ranks share=1
  case $mode in
    root) who=root ;;
    root-noshare) who=root share=0 ;;
    fuse) chmod 666 /dev/fuse ;;
    fuse-noshare) chmod 666 /dev/fuse; share=0 ;;
    # Every rank unpacks the whole image: only the smaller counts (disk and time).
    extraction) chmod 600 /dev/fuse; rs=$extract_ranks ;;
  esac
  for r in $rs; do
    log=$work/strace-$mode-$r.log
    as=()
    [ "$who" = root ] || as=(setpriv --reuid="$uid" --regid="$gid" --init-groups --)
    # strace runs as root (it may trace the user's processes); the launch runs as WHO.
    (cd "$work/json" && strace -f -qq -y -s 0 -o "$log" -e trace=openat,read,pread64,ioctl \
      env USER="$who" SIFR_SHARE=$share "${as[@]}" timeout -k 5 120 mpirun.openmpi --oversubscribe --allow-run-as-root \
      -np "$r" "$sifr" -q exec "$sif" /bin/true >/dev/null 2>&1) || echo "warning: $mode, $r ranks: the launch failed" >&2
    python3 - "$log" "$sif" "$mode" "$r" >>"$counts" <<'EOF'
import re, sys
log, sif, mode, r = sys.argv[1:]
opens = reads = nbytes = loops = fuse = 0
pending = {}  # pid -> the call strace split with <unfinished ...>, until its <... resumed> line
for line in open(log, errors="replace"):
    pid, _, rest = line.strip().partition(" ")
    rest = rest.lstrip()
    m = re.match(r"<\.\.\. (\w+) resumed>", rest)
    if m:
        rest = pending.pop(pid, "") + rest[m.end():]
    elif rest.rstrip().endswith("<unfinished ...>"):
        pending[pid] = rest.rstrip()[: -len("<unfinished ...>")]
        continue
    if rest.startswith("openat(") and '"%s"' % sif in rest and "= -1" not in rest:
        opens += 1
    elif re.match(r"(read|pread64)\(\d+<%s>" % re.escape(sif), rest):
        reads += 1
        m = re.search(r"=\s+(\d+)\s*$", rest)
        nbytes += int(m.group(1)) if m else 0
    elif rest.startswith("ioctl(") and ("LOOP_CONFIGURE" in rest or "LOOP_SET_FD" in rest) and re.search(r"=\s+0$", rest):
        loops += 1
    elif rest.startswith("openat(") and '"/dev/fuse"' in rest and "= -1" not in rest:
        fuse += 1
print("%s\t%s\t%d\t%d\t%.1f\t%d\t%d" % ({"root": "root (loop)", "root-noshare": "root (loop), SIFR_SHARE=0", "fuse": "user (FUSE)",
     "fuse-noshare": "user (FUSE), SIFR_SHARE=0"}.get(mode, "user (extraction)"), r, opens, reads, nbytes / 2**20, loops, fuse))
EOF
    rm -f "$log"
  done
done

# --- report --------------------------------------------------------------------------------------
for w in root user; do
  echo "### $n concurrent launches, as $w"
  echo
  table "floor: $n x /bin/true;ch-run IMG.sqfs" "$work/json/fan-$w-true.json"
  echo
  table "floor: $n x sleep 0.3;ch-run IMG.sqfs" "$work/json/fan-$w-sleep.json"
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
for f in "$work"/errors/*.err; do
  [ -s "$f" ] || continue
  echo "Most frequent error lines of the $(basename "$f" .err) launches (numbers masked):"
  echo
  sed -E 's/[0-9]+/N/g' "$f" | sort | uniq -c | sort -rn | head -5 | sed 's/^ */- /'
  echo
done
if ((${#trials[@]})); then
  echo "Trial runs that failed (launch rows are timed anyway, with their failed runs counted; MPI"
  echo "rows are left out):"
  echo
  for s in "${trials[@]}"; do echo "- $s"; done
fi
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
