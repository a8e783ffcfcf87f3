#!/usr/bin/env bash
# Writing and reading back through every overlay kind of `sifr exec`, against a directory
# overlay and against the peers a user would otherwise have, side by side in one run:
#
#   sifr paths (timed as whole user-facing commands, `sifr exec ... IMG.sif /bin/sh -c W`):
#     dir       --overlay DIR              read back with --overlay DIR:ro
#     ext3      --overlay OVL.img          (sifr overlay create) read back with OVL.img:ro
#     sif       --writable IMG.sif         (overlay partition from sifr overlay create IMG.sif)
#                                          read back with plain IMG.sif (the partition read-only)
#     squashfs  --overlay DATA.sqfs        read side only (mksquashfs of the dir run's upper/)
#   peers (the same busybox workload run on the host in the merged directory):
#     kernel-dir   kernel overlayfs over a plain directory (as root: mount -t overlay; as the
#                  user: in `unshare -Urm`, with userxattr)
#     fuse2fs+fo   Apptainer's path, by hand: `fuse2fs -f [-o fakeroot] OVL.img M` then
#                  `fuse-overlayfs -f -o lowerdir=ROOTFS,upperdir=M/upper,workdir=M/work,noacl
#                  MERGED` (the options Apptainer 1.5.3's image driver passes; fakeroot only
#                  for a non-root caller); reading: fuse2fs -o ro and lowerdir=M/upper:ROOTFS.
#                  Apptainer itself is not packaged for this host, so its path is rebuilt
#                  from these two tools.
#
# Workloads (busybox sh, the same script for every path): N small files of SMALL bytes,
# PER_DIR per directory, written then read back (one `cat` of them all, byte count checked);
# one file of BIG_MB MiB written with dd, then read back with dd. Each write and each read is
# its own command, timed from its start to its exit: for sifr that includes starting the
# container and unmounting, so the image is clean when the clock stops; for the peers the clock
# runs from starting the servers (or mount) to their exit (or umount). `e2fsck -fn` must pass
# on every ext3 image and SIF after every run (checked; a failure stops the benchmark).
# Medians of ROUNDS rounds, each on fresh images; reads find the image files in the host's
# page cache (no cache drop: the machine is shared).
#
# Parts: `root` (sifr as root: loop devices and the kernel's ext3/SquashFS) and `user` (sifr as
# BENCH_USER, default sifrtest: sifr's FUSE servers). The user part needs /dev/fuse usable by BENCH_USER;
# with OPEN_DEV_FUSE=1 the script sets it 0666 for that part and puts the old mode back on
# every exit path; otherwise the user part is skipped when /dev/fuse is not 0666.
#
# Run as root: bench/overlay/run.sh
# Knobs: PARTS ("root user"), ROUNDS (3), N (10000), SMALL (1024), PER_DIR (100),
#   BIG_MB (256; the issue asks 1024: BIG_MB=1024 adds about a minute per round and part on
#   the 2-vCPU VM, where the root part's 3 rounds at 256 MiB already take 5 minutes),
#   OVL_MB (overlay image size; default fits the data),
#   BENCH_USER (sifrtest), SIFR (binary; default the release build, made as other benches make it),
#   OPEN_DEV_FUSE (0).
# Everything is made under one mktemp -d, in a private mount namespace; the trap unmounts,
# stops the servers it started and removes it.
set -euo pipefail

PARTS=${PARTS:-root user}
ROUNDS=${ROUNDS:-3}
N=${N:-10000}
SMALL=${SMALL:-1024}
PER_DIR=${PER_DIR:-100}
BIG_MB=${BIG_MB:-256}
OVL_MB=${OVL_MB:-$((BIG_MB + N * 8 / 1024 + 256))}
BENCH_USER=${BENCH_USER:-sifrtest}
OPEN_DEV_FUSE=${OPEN_DEV_FUSE:-0}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/bench/lib.sh"

if [ "$(id -u)" != 0 ]; then
    echo "overlay/run.sh: run as root (it mounts and switches to $BENCH_USER for the user part)" >&2
    exit 1
fi
need busybox "the static /bin/busybox makes the image"
need fuse2fs "apt install fuse2fs"
need fuse-overlayfs "apt install fuse-overlayfs"
need fusermount3 "apt install fuse3"
need mksquashfs "apt install squashfs-tools"
need e2fsck "apt install e2fsprogs"
need setpriv "apt install util-linux"
need python3 "apt install python3"

if [ -z "${OVERLAY_BENCH_INNER:-}" ]; then
    SIFR=$(sifr_release "$repo")
    export SIFR
    if [ "$OPEN_DEV_FUSE" = 1 ]; then
        # The inner part opens /dev/fuse; its old mode is put back here, outside the
        # namespace, on every exit path. Without OPEN_DEV_FUSE the mode is never touched.
        fuse_mode=$(stat -c %a /dev/fuse)
        restore_fuse() { chmod "$fuse_mode" /dev/fuse; }
        trap restore_fuse EXIT INT TERM HUP
    fi
    OVERLAY_BENCH_INNER=1 unshare --mount --propagation private "$0" "$@"
    exit $?
fi

uid=$(id -u "$BENCH_USER")
gid=$(id -g "$BENCH_USER")
work=$(mktemp -d /tmp/overlay-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    local m
    # Innermost first: merged views, then the FUSE mounts under them.
    for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM HUP

# The image: busybox, as the tests' fixture makes it, built into a SIF by sifr.
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/data" "$rootfs/.singularity.d/env"
cp /bin/busybox "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sh"
echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"
# /data belongs to the bench user so every path, the user's kernel overlayfs in `unshare -Ur`
# included (it cannot copy up a directory of an unmapped owner), may write below it.
chown "$uid:$gid" "$rootfs/data"
"$SIFR" build -F "$work/image.sif" "$rootfs" >/dev/null 2>&1 ||
    { echo "overlay/run.sh: sifr build of the busybox image failed" >&2; exit 1; }
chmod 644 "$work/image.sif"

# The workloads; $R is the root of the view ("" in the container, the merged dir outside).
w_small='set -e; d=0; while [ $d -lt $(((N + PER - 1) / PER)) ]; do busybox mkdir -p "$R/data/d$d"; d=$((d + 1)); done
p=$(busybox head -c $((SMALL - 1)) /dev/zero | busybox tr "\0" x); i=0
while [ $i -lt $N ]; do echo "$p" >"$R/data/d$((i / PER))/f$i"; i=$((i + 1)); done'
r_small='set -e; n=$(busybox cat "$R"/data/d*/f* | busybox wc -c); [ "$n" -eq $((N * SMALL)) ] || { echo "read $n bytes" >&2; exit 1; }'
w_big='set -e; busybox mkdir -p "$R/data"; busybox dd if=/dev/zero of="$R/data/big" bs=1048576 count=$BIG 2>/dev/null'
r_big='set -e; n=$(busybox dd if="$R/data/big" bs=1048576 2>/dev/null | busybox wc -c); [ "$n" -eq $((BIG * 1048576)) ] || { echo "read $n bytes" >&2; exit 1; }'
wl() { # the script of workload $1
    case $1 in small-write) echo "$w_small" ;; small-read) echo "$r_small" ;;
        big-write) echo "$w_big" ;; big-read) echo "$r_big" ;; esac
}
wenv=(N="$N" SMALL="$SMALL" PER="$PER_DIR" BIG="$BIG_MB")

now() { date +%s%N; }
results=$work/results.tsv
: >"$results"
# record WHO PATH WORKLOAD ROUND T0: append the seconds since T0.
record() {
    local ns=$(($(now) - $5))
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(python3 -c "print($ns / 1e9)")" >>"$results"
}
# as WHO CMD...: CMD as root or as the bench user (HOME in the work dir).
as() {
    local who=$1; shift
    if [ "$who" = root ]; then
        env HOME="$work/home-root" "$@"
    else
        env HOME="$work/home-user" USER="$BENCH_USER" \
            setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
    fi
}
fsck_ok() { # e2fsck -fn on $1 (a SIF: its ext3 overlay partition, dumped by `sifr sif dump`)
    local img=$1 id rc=0
    case $img in
        *.sif)
            id=$("$SIFR" sif list "$img" | awk '/Ext3/ {print $1; exit}')
            [ -n "$id" ] || { echo "no ext3 partition in $img" >"$work/fsck.log"; return 1; }
            "$SIFR" sif dump "$id" "$img" >"$work/part.img"
            e2fsck -fn "$work/part.img" >"$work/fsck.log" 2>&1 || rc=$?
            rm -f "$work/part.img"
            return $rc ;;
        *) e2fsck -fn "$img" >"$work/fsck.log" 2>&1 ;;
    esac
}
check() { # check WHAT IMG: stop when e2fsck finds IMG unclean
    if ! fsck_ok "$2"; then
        echo "overlay/run.sh: e2fsck -fn found $2 unclean after $1:" >&2
        cat "$work/fsck.log" >&2
        exit 1
    fi
}

# sifr_run WHO PATH WORKLOAD ROUND ARGS...: time `sifr exec ARGS /bin/sh -c WORKLOAD`.
sifr_run() {
    local who=$1 path=$2 load=$3 round=$4 t0; shift 4
    t0=$(now)
    as "$who" env "${wenv[@]}" R= "$SIFR" exec "$@" /bin/sh -c "$(wl "$load")" ||
        { echo "overlay/run.sh: $who $path $load failed" >&2; exit 1; }
    record "$who" "$path" "$load" "$round" "$t0"
}

wait_mounted() {
    local i
    for i in $(seq 1000); do
        # From the mount table: root may not stat a user's FUSE mount (no allow_other).
        awk -v m="$1" '$2 == m {f = 1} END {exit !f}' /proc/self/mounts && return 0
        sleep 0.01
    done
    echo "overlay/run.sh: $1 did not get mounted" >&2
    return 1
}
host_sh() { # host_sh WHO ROOT WORKLOAD: the workload run on the host under ROOT
    as "$1" env "${wenv[@]}" R="$2" /bin/busybox sh -c "$(wl "$3")"
}

# fo_run WHO WORKLOAD ROUND IMG DIR: Apptainer's user path by hand.
fo_run() {
    local who=$1 load=$2 round=$3 img=$4 dir=$5 t0 f2 fo o2=() ofo
    mkdir -p "$dir/m" "$dir/merged"
    [ "$who" = root ] || { chown "$uid:$gid" "$dir/m" "$dir/merged"; o2=(-o fakeroot); }
    ofo="lowerdir=$rootfs,upperdir=$dir/m/upper,workdir=$dir/m/work,noacl"
    case $load in *read)
        if [ "$who" = root ]; then o2=(-o ro); else o2=(-o ro,fakeroot); fi
        ofo="lowerdir=$dir/m/upper:$rootfs,noacl" ;;
    esac
    t0=$(now)
    as "$who" fuse2fs -f "${o2[@]}" "$img" "$dir/m" >"$dir/fuse2fs.log" 2>&1 &
    f2=$!; pids+=("$f2")
    wait_mounted "$dir/m" || { cat "$dir/fuse2fs.log" >&2; ls -l /dev/fuse >&2; exit 1; }
    as "$who" fuse-overlayfs -f -o "$ofo" "$dir/merged" 2>/dev/null &
    fo=$!; pids+=("$fo")
    wait_mounted "$dir/merged"
    host_sh "$who" "$dir/merged" "$load" ||
        { echo "overlay/run.sh: $who fuse2fs+fo $load failed" >&2; exit 1; }
    as "$who" fusermount3 -u "$dir/merged"
    wait "$fo" || true
    as "$who" fusermount3 -u "$dir/m"
    wait "$f2" || true
    record "$who" fuse2fs+fo "$load" "$round" "$t0"
}

# kdir_run WHO WORKLOAD ROUND DIR: kernel overlayfs over a plain directory.
kdir_run() {
    local who=$1 load=$2 round=$3 dir=$4 t0 opts
    mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
    [ "$who" = root ] || chown -R "$uid:$gid" "$dir"
    opts="lowerdir=$rootfs,upperdir=$dir/upper,workdir=$dir/work"
    case $load in *read) opts="lowerdir=$dir/upper:$rootfs" ;; esac
    t0=$(now)
    if [ "$who" = root ]; then
        mount -t overlay overlay -o "$opts" "$dir/merged"
        host_sh root "$dir/merged" "$load"
        umount "$dir/merged"
    else
        opts="$opts,userxattr"
        as "$who" env "${wenv[@]}" R="$dir/merged" W="$(wl "$load")" O="$opts" M="$dir/merged" \
            unshare -Urm /bin/busybox sh -c 'mount -t overlay overlay -o "$O" "$M" && /bin/busybox sh -c "$W"'
    fi
    record "$who" kernel-dir "$load" "$round" "$t0"
}

loads=(small-write small-read big-write big-read)
part() {
    local who=$1 round d
    [ "$who" = root ] && owner=0:0 || owner=$uid:$gid
    for round in $(seq "$ROUNDS"); do
        d=$work/$who-$round
        mkdir -p "$d" "$work/home-root" "$work/home-user"
        chown "$owner" "$d"; chown "$uid:$gid" "$work/home-user"
        # Fresh layers for this round, made by the user who writes them.
        as "$who" "$SIFR" overlay create --size "$OVL_MB" "$d/ovl.img" >/dev/null
        as "$who" "$SIFR" overlay create --size "$OVL_MB" "$d/fo.img" >/dev/null
        as "$who" cp "$work/image.sif" "$d/part.sif"
        as "$who" "$SIFR" overlay create --size "$OVL_MB" "$d/part.sif" >/dev/null
        as "$who" mkdir "$d/dir"
        for load in "${loads[@]}"; do
            case $load in *write) ro= ;; *) ro=:ro ;; esac
            sifr_run "$who" dir "$load" "$round" --overlay "$d/dir$ro" "$work/image.sif"
            sifr_run "$who" ext3 "$load" "$round" --overlay "$d/ovl.img$ro" "$work/image.sif"
            check "$who ext3 $load" "$d/ovl.img"
            if [ -z "$ro" ]; then
                sifr_run "$who" sif "$load" "$round" --writable "$d/part.sif"
            else
                sifr_run "$who" sif "$load" "$round" "$d/part.sif"
            fi
            check "$who sif $load" "$d/part.sif"
            if [ -n "$ro" ]; then
                rm -f "$d/data.sqfs"
                as "$who" mksquashfs "$d/dir/upper" "$d/data.sqfs" -quiet -no-progress >/dev/null
                sifr_run "$who" squashfs "$load" "$round" --overlay "$d/data.sqfs:ro" "$work/image.sif"
            fi
            kdir_run "$who" "$load" "$round" "$d/kdir"
            fo_run "$who" "$load" "$round" "$d/fo.img" "$d/fo"
            check "$who fuse2fs+fo $load" "$d/fo.img"
        done
        rm -rf "$d"
        echo "overlay/run.sh: $who round $round done" >&2
    done
}

for p in $PARTS; do
    if [ "$p" = user ]; then
        if [ "$OPEN_DEV_FUSE" = 1 ]; then
            chmod 666 /dev/fuse
        elif [ "$(stat -c %a /dev/fuse)" != 666 ]; then
            echo "overlay/run.sh: /dev/fuse is not 0666: user part skipped (OPEN_DEV_FUSE=1 opens it for the run)" >&2
            continue
        fi
        part user
    else
        part root
    fi
done

# Medians and ratios.
python3 - "$results" "$ROUNDS" "$N" "$SMALL" "$BIG_MB" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
t = defaultdict(list)
for who, path, load, _, s in rows:
    t[(who, path, load)].append(float(s))
rounds, n, small, big = sys.argv[2:]
print(f"rounds {rounds}, {n} files of {small} B, one file of {big} MiB; seconds, medians")
loads = ["small-write", "small-read", "big-write", "big-read"]
paths = ["dir", "ext3", "sif", "squashfs", "kernel-dir", "fuse2fs+fo"]
for who in ["root", "user"]:
    if not any(k[0] == who for k in t):
        continue
    print(f"\n{who}\n| path | " + " | ".join(loads) + " |")
    print("|---|" + "---|" * len(loads))
    med = {(p, l): statistics.median(t[(who, p, l)]) for p in paths for l in loads if t[(who, p, l)]}
    for p in paths:
        cells = []
        for l in loads:
            m = med.get((p, l))
            if m is None:
                cells.append("-"); continue
            r = [f"{m / med[(q, l)]:.2f}" for q in ("dir", "fuse2fs+fo") if (q, l) in med and q != p]
            cells.append(f"{m:.2f}" + (f" ({' / '.join(r)})" if r else ""))
        print(f"| {p} | " + " | ".join(cells) + " |")
    if ("ext3", "small-write") in med and ("fuse2fs+fo", "small-write") in med:
        print(f"goal ({who}): fuse2fs+fo / ext3 small writes = "
              f"{med[('fuse2fs+fo', 'small-write')] / med[('ext3', 'small-write')]:.2f}x (goal 1.5x)")
print("\n(in brackets: time / the dir overlay's, / fuse2fs+fuse-overlayfs's, same workload)")
EOF
