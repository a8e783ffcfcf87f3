#!/usr/bin/env bash
# Small-file writes through an ext3 overlay image, the two unprivileged paths side by side in
# one run:
#   sifr:     sifr-extfs (FUSE, libext2fs) serving the image + kernel overlayfs on top
#             (one FUSE hop), started through crates/sifr-extfs/examples/extfs-run.rs;
#   apptainer: fuse2fs serving the image + fuse-overlayfs on top (two FUSE hops), started by
#             hand with the options Apptainer 1.5 passes (fuse2fs -o fakeroot,
#             fuse-overlayfs -o lowerdir,upperdir,workdir,noacl).
# Each writes N files of SIZE bytes (PER_DIR, default 100, per directory) into the merged view, then reads them
# back; the clock stops for "to clean image" when the overlay and the image are unmounted and
# the server has exited. Both images are made alike (mkfs.ext3 -d with upper/ and work/) and
# checked with e2fsck -fn afterwards.
#
# Run as root (it mounts, in a private mount namespace of its own): bench/overlay_ext3.sh
# Knobs: N (default 10000), SIZE (default 1024), PER_DIR (default 100), IMAGE_SIZE (default 1G), ROUNDS (default 1),
# SIFR_FLAGS (extfs-run flags, e.g. --no-writeback-cache).
# Builds the example with cargo (debug profile, as the workspace rules ask); a release build
# of sifr is faster still. Leaves nothing behind: the temporary directory is removed and
# every mount goes with the namespace.
set -euo pipefail

N=${N:-10000}
SIZE=${SIZE:-1024}
IMAGE_SIZE=${IMAGE_SIZE:-1G}
ROUNDS=${ROUNDS:-1}
# Extra flags for extfs-run, e.g. --no-writeback-cache.
SIFR_FLAGS=${SIFR_FLAGS:-}
# Files per directory.
PER_DIR=${PER_DIR:-100}

if [ "$(id -u)" != 0 ]; then
    echo "overlay_ext3.sh: run as root (it mounts FUSE and overlay filesystems)" >&2
    exit 1
fi
for tool in mkfs.ext3 e2fsck fuse2fs fuse-overlayfs python3 unshare; do
    command -v "$tool" >/dev/null || { echo "overlay_ext3.sh: $tool is missing" >&2; exit 1; }
done

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${OVERLAY_EXT3_INNER:-}" ]; then
    (cd "$repo" && cargo build -q -p sifr-extfs --example extfs-run)
    exec unshare --mount --propagation private env OVERLAY_EXT3_INNER=1 "$0" "$@"
fi
runner=$repo/target/debug/examples/extfs-run

work=$(mktemp -d /tmp/overlay_ext3.XXXXXX)
pids=()
cleanup() {
    for m in "$work"/merged "$work"/m; do umount -l "$m" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/lower/etc" "$work/seed/upper" "$work/seed/work" "$work/m" "$work/merged"
echo "lower" >"$work/lower/etc/hostname"

cat >"$work/files.py" <<'EOF'
import os, sys
root, mode, n, size, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = b"x" * size
if mode == "write":
    for d in range((n + per - 1) // per):
        os.mkdir(f"{root}/d{d:03}")
    for i in range(n):
        with open(f"{root}/d{i // per:03}/f{i:05}", "wb") as f:
            f.write(data)
else:
    for i in range(n):
        with open(f"{root}/d{i // per:03}/f{i:05}", "rb") as f:
            assert len(f.read()) == size
EOF

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
wait_mounted() {
    for _ in $(seq 500); do
        mountpoint -q "$1" && return 0
        sleep 0.01
    done
    echo "overlay_ext3.sh: $1 did not get mounted" >&2
    return 1
}

# The workload inside the merged view; prints "write read" seconds.
workload() {
    local t0 t1 t2
    t0=$(now)
    python3 "$work/files.py" "$work/merged/data" write "$N" "$SIZE" "$PER_DIR"
    t1=$(now)
    python3 "$work/files.py" "$work/merged/data" read "$N" "$SIZE" "$PER_DIR"
    t2=$(now)
    echo "$(secs "$t0" "$t1") $(secs "$t1" "$t2")"
}

run_sifr() {
    local img=$1 t0 t3 times
    t0=$(now)
    times=$("$runner" $SIFR_FLAGS "$img" "$work/m" -- bash -c "
        set -e
        mount -t overlay overlay -o lowerdir=$work/lower,upperdir=$work/m/upper,workdir=$work/m/work $work/merged
        mkdir $work/merged/data
        $(declare -f now secs workload)
        work=$work N=$N SIZE=$SIZE PER_DIR=$PER_DIR workload
        umount $work/merged")
    t3=$(now)
    echo "$times $(secs "$t0" "$t3")"
}

run_apptainer() {
    local img=$1 t0 t3 times f2 fo
    t0=$(now)
    fuse2fs -f -o fakeroot "$img" "$work/m" >/dev/null 2>&1 &
    f2=$!
    pids+=("$f2")
    wait_mounted "$work/m"
    fuse-overlayfs -f -o "lowerdir=$work/lower,upperdir=$work/m/upper,workdir=$work/m/work,noacl" \
        "$work/merged" 2>/dev/null &
    fo=$!
    pids+=("$fo")
    wait_mounted "$work/merged"
    mkdir "$work/merged/data"
    times=$(workload)
    umount "$work/merged"
    wait "$fo" || true
    umount "$work/m"
    wait "$f2" || true
    t3=$(now)
    echo "$times $(secs "$t0" "$t3")"
}

printf '%-10s %5s %8s %9s %9s %17s %s\n' path round files "write s" "read s" "to clean image s" e2fsck
for round in $(seq "$ROUNDS"); do
    for path in sifr apptainer; do
        img=$work/$path.img
        rm -f "$img"
        mkfs.ext3 -q -F -d "$work/seed" "$img" "$IMAGE_SIZE" >/dev/null
        sync "$img"
        case $path in
            sifr) r=$(run_sifr "$img") ;;
            apptainer) r=$(run_apptainer "$img") ;;
        esac
        read -r w rd total <<<"$r"
        if e2fsck -fn "$img" >/dev/null 2>&1; then fsck=clean; else fsck=ERRORS; fi
        printf '%-10s %5s %8s %9s %9s %17s %s\n' "$path" "$round" "$N" "$w" "$rd" "$total" "$fsck"
    done
done
