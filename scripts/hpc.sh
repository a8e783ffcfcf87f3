#!/usr/bin/env bash
# HPC launch tests: MPI ranks started by the host's launcher, one `sifr exec` per rank (the
# hybrid model), as root and as an ordinary user, under mpirun and under Slurm; plus the bind
# model (the host's OpenMPI bound into an image that has none). Called by scripts/test.sh after
# the examples, reusing their MPI images; usable alone:
#
#   scripts/hpc.sh [REGEX]          run the cases whose name matches REGEX (default: all)
#
# Every case runs the probe of examples/mpi/mpi_hello.c (4 MiB ring, Allreduce, a
# process_vm_readv of a peer's buffer) and must show: exit status 0, the expected world size
# with one line per rank, `ALL_OK=1`, `CMA=ok` and all ranks in one user namespace (that is
# what lets MPI use cross-memory attach between ranks of one node), no process of the case left
# behind and no loop device left on the image. A hang, the known failure mode of MPI across
# user namespaces, fails the case after HPC_TIMEOUT seconds; its processes are then killed.
# Shared-memory segments the MPI libraries leave in /dev/shm are removed after each case, only
# those of the case's user created during the case.
#
# The user's cases run with /dev/fuse open to everyone (0666, as a distribution's udev rule sets
# it; put back at exit), so the image is served by FUSE; the `-extraction` cases run with it
# 0600, where sifr unpacks the image instead. SIFR_SHARE_IDLE=0 makes the node's holder leave with
# the last rank, so nothing may be left once a case's launcher has returned.
#
# Env: SIFR (default target/debug/sifr, built if missing); HPC_IMAGES, a directory holding
# mpi.sif and mpich.sif (default: built here with scripts/examples.sh); HPC_USER (default
# sifrtest, created if missing); HPC_TIMEOUT (default 60 s per case); HPC_NP (default 4);
# HPC_GRACE (default 5 s for a case's processes to go after its launcher returned).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# skip_all REASON: the jobs cannot run here; a failure under SIFR_TEST_STRICT=1 (.ci/run), as a
# skipped test is (CI runs as root and can install the packages).
skip_all() {
    echo "hpc: skipped: $1" >&2
    [ "${SIFR_TEST_STRICT:-}" != 1 ] || { echo "hpc: SIFR_TEST_STRICT=1: a skip fails" >&2; exit 1; }
    exit 0
}

if [ "$(id -u)" != 0 ]; then
    skip_all "needs root (Slurm daemons, the test user, /dev/shm of other users)"
fi

SIFR=${SIFR:-$repo/target/debug/sifr}
[ -x "$SIFR" ] || cargo build -p sifr-cli --locked
user=${HPC_USER:-sifrtest}
limit=${HPC_TIMEOUT:-60}
np=${HPC_NP:-4}
grace=${HPC_GRACE:-5}
filter=${1:-.}

work=$(mktemp -d)
chmod 755 "$work"
slurm_started=0
fuse_mode=$(stat -c %a /dev/fuse 2>/dev/null || true)
cleanup() {
    if ((slurm_started)); then scripts/slurm.sh down || true; fi
    if [ -n "$fuse_mode" ]; then chmod "$fuse_mode" /dev/fuse; fi
    rm -rf "$work"
}
trap cleanup EXIT
export SIFR_SHARE_IDLE=0

id "$user" >/dev/null 2>&1 || useradd -m "$user"
uid=$(id -u "$user")
home=$(getent passwd "$user" | cut -d: -f6)

# as WHO CMD...: run CMD as root, or as the test user with its own HOME (setpriv keeps the rest
# of the environment, SLURM_CONF included).
as() {
    local who=$1
    shift
    if [ "$who" = root ]; then
        "$@"
    else
        setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- \
            env HOME="$home" USER="$user" LOGNAME="$user" "$@"
    fi
}

# --- fixtures: the example images, Slurm, the host's MPI -------------------------------------

images=${HPC_IMAGES:-}
if [ -z "$images" ] || [ ! -e "$images/mpi.sif" ] || [ ! -e "$images/mpich.sif" ]; then
    echo "== hpc: building the MPI example images (set HPC_IMAGES to reuse built ones)"
    EXAMPLES_WORK=$work/examples EXAMPLES_AS_USER=0 SIFR=$SIFR scripts/examples.sh mpi mpi/mpich
    images=$work/examples/root/mpi
fi
ompi_img=$images/mpi.sif
mpich_img=$images/mpich.sif
# The user reads the images built by root.
for f in "$ompi_img" "$mpich_img"; do
    as "$user" test -r "$f" || { echo "hpc: $user cannot read $f" >&2; exit 1; }
done

# slurm.sh installs the host's OpenMPI and MPICH launchers too; exit 2 means the packages
# cannot be installed, the only reason to skip.
slurm_skip=""
t0=$SECONDS
set +e
slurm_env=$(scripts/slurm.sh up)
rc=$?
set -e
case $rc in
    0)
        eval "$slurm_env"
        slurm_started=1
        echo "== hpc: Slurm up in $((SECONDS - t0)) s ($SLURM_CONF)"
        ;;
    2) slurm_skip="Slurm or MPI packages cannot be installed (scripts/slurm.sh up said why)" ;;
    *)
        echo "hpc: scripts/slurm.sh up failed" >&2
        exit 1
        ;;
esac
for launcher in mpirun.openmpi mpirun.mpich; do
    command -v "$launcher" >/dev/null || skip_all "no $launcher on the host and it cannot be installed"
done

# --- one case ---------------------------------------------------------------------------------

failed=()
passed=0
skipped=0

# sifr_procs: the pids running this $SIFR, whatever their environment (a helper of sifr's may
# start with a clean one). Programs in the container are found by the tag only: matching them by
# name would take in other users' jobs on a shared machine.
sifr_real=$(readlink -f "$SIFR")
sifr_procs() {
    local d
    for d in /proc/[0-9]*; do
        [ "$(readlink "$d/exe" 2>/dev/null)" = "$sifr_real" ] && echo "${d#/proc/}"
    done
    return 0
}

# alive TAG: the pids of the case's processes: those whose environment holds HPC_CASE=TAG (the
# launcher, the sifr processes and the ranks inherit it; sifr passes the host environment
# through), and those of sifr_procs that did not run before the case ($work/before).
alive() {
    local e
    for e in /proc/[0-9]*/environ; do
        grep -qzx "HPC_CASE=$1" "$e" 2>/dev/null && { e=${e#/proc/}; echo "${e%/environ}"; }
    done
    sifr_procs | grep -vxF -f "$work/before" || true
}

# verify NAME WHO NP RC LOG TAG IMAGE [STAGGER]: judge a finished case.
verify() {
    local name=$1 who=$2 n=$3 rc=$4 log=$5 tag=$6 img=$7 stagger=${8:-0} why=()
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        why+=("hang: no exit within $limit s")
    elif [ "$rc" != 0 ]; then
        why+=("exit status $rc")
    fi
    grep -q "^world $n ALL_OK=1 " "$log" || why+=("no \`world $n ALL_OK=1\` line")
    local ranks
    ranks=$({ grep -oE "^rank [0-9]+ of $n on " "$log" || true; } | sort -u | wc -l)
    [ "$ranks" = "$n" ] || why+=("$ranks of $n ranks reported in a world of $n")
    grep -qE "^rank [0-9]+ of 1 on " "$log" && why+=("singleton ranks (wrong PMI?)")
    local cma userns
    cma=$(sed -n 's/^world .* CMA=\([A-Za-z0-9?]*\)$/\1/p' "$log" | head -1)
    userns=$(sed -n 's/^userns \([0-9]*\)$/\1/p' "$log" | head -1)
    [ "$cma" = ok ] || why+=("CMA=${cma:-none} (cross-memory attach between ranks)")
    [ "$userns" = 1 ] || why+=("ranks in ${userns:-?} user namespaces, not 1")
    if [ "$stagger" != 0 ]; then
        local left
        left=$(grep -c "^rank [0-9]* left after [0-9]* ms: image readable$" "$log" || true)
        [ "$left" = "$n" ] || why+=("$left of $n ranks could still read the image when they left")
    fi
    # Nothing of the case may outlive it.
    local pids=""
    for _ in $(seq $((grace * 10))); do
        pids=$(alive "$tag" | sort -u)
        [ -z "$pids" ] && [ -z "$(losetup -j "$img" 2>/dev/null)" ] && break
        sleep 0.1
    done
    if [ -n "$pids" ]; then
        local -a left
        mapfile -t left <<<"$pids"
        why+=("processes left: $(for p in "${left[@]}"; do printf '%s(%s) ' "$p" "$(cat "/proc/$p/comm" 2>/dev/null)"; done)")
        kill -9 "${left[@]}" 2>/dev/null || true
    fi
    local loops
    loops=$(losetup -j "$img" 2>/dev/null | cut -d: -f1 | tr '\n' ' ')
    [ -z "$loops" ] || why+=("loop devices left on the image: $loops")
    # MPI's shared-memory files of this user from this case (a killed rank leaves its own).
    local uid_of=0 shm
    [ "$who" = root ] || uid_of=$uid
    shm=$(find /dev/shm -maxdepth 1 -uid "$uid_of" -newer "$work/stamp" \
        \( -name 'vader_segment.*' -o -name 'ucx_shm_posix_*' -o -name 'mpich_shar_tmp*' \) \
        -print -delete | wc -l)

    local secs=$((SECONDS - case_t0)) summary
    summary=$(grep -m1 "^world " "$log" || echo "no world line")
    if ((${#why[@]})); then
        failed+=("$name")
        echo "FAIL $name (${secs} s): $(IFS=';'; echo "${why[*]}")"
        sed 's/^/    | /' "$log" | tail -25
    else
        passed=$((passed + 1))
        local extra=""
        [ "$stagger" = 0 ] || extra=", every rank read the image as it left"
        echo "ok   $name (${secs} s): $summary, userns $userns$extra"
    fi
    ((shm == 0)) || echo "     removed $shm shared-memory segment(s) of $who left in /dev/shm"
}

# begin_case: note the time, the files and the processes there are before a case.
begin_case() {
    touch "$work/stamp"
    sifr_procs >"$work/before"
    case_t0=$SECONDS
}

# case NAME WHO IMAGE [STAGGER] -- CMD...: run the launcher CMD as WHO under the timeout.
case_t0=0
run_case() {
    local name=$1 who=$2 img=$3 stagger=0
    shift 3
    [ "$1" = -- ] || { stagger=$1; shift; }
    shift
    [[ $name =~ $filter ]] || return 0
    local tag="sifr-hpc-$$-$name" log=$work/$name.log
    begin_case
    set +e
    (cd "$work/$who" && as "$who" env HPC_CASE="$tag" timeout -k 5 "$limit" "$@") >"$log" 2>&1
    local rc=$?
    set -e
    verify "$name" "$who" "$np" "$rc" "$log" "$tag" "$img" "$stagger"
}

# slurm_case NAME WHO IMAGE LAUNCH...: sbatch a job script (the course-page form) whose body is
# LAUNCH, as WHO; poll until the job ends, then judge its output file and its state.
slurm_case() {
    local name=$1 who=$2 img=$3
    shift 3
    [[ $name =~ $filter ]] || return 0
    if [ -n "$slurm_skip" ]; then
        skipped=$((skipped + 1))
        echo "skip $name: $slurm_skip"
        return 0
    fi
    local tag="sifr-hpc-$$-$name" dir=$work/$who log=$work/$name.log
    cat >"$dir/$name.sbatch" <<EOF
#!/bin/bash
#SBATCH --job-name=$name
#SBATCH --nodes=1
#SBATCH --ntasks=$np
#SBATCH --time=$(((limit + 59) / 60 + 1))
#SBATCH --output=$dir/$name.out
$*
EOF
    begin_case
    local job state="" rc=0
    job=$(cd "$dir" && as "$who" env HPC_CASE="$tag" sbatch --parsable "$dir/$name.sbatch")
    while ((SECONDS - case_t0 < limit)); do
        state=$(scontrol show job -o "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
        case $state in
            PENDING | RUNNING | CONFIGURING | COMPLETING | "") sleep 0.5 ;;
            *) break ;;
        esac
    done
    case $state in
        COMPLETED) rc=0 ;;
        PENDING | RUNNING | CONFIGURING | COMPLETING | "")
            scancel "$job" || true
            rc=124
            ;;
        *) rc="$state (job $job)" ;;
    esac
    cat "$dir/$name.out" >"$log" 2>/dev/null || echo "no output file" >"$log"
    verify "$name" "$who" "$np" "$rc" "$log" "$tag" "$img"
}

mkdir -p "$work/root" "$work/$user"
chown "$user" "$work/$user"
ompi_run=(mpirun.openmpi --oversubscribe -np "$np")
mpich_run=(mpirun.mpich -np "$np")

echo "== hpc: $np ranks per case, $limit s limit, images in $images"
if [ -n "$fuse_mode" ]; then
    chmod 666 /dev/fuse
else
    echo "== hpc: no /dev/fuse: the user's cases extract the image"
fi

# Hybrid model under the host's mpirun.
run_case ompi-mpirun-root root "$ompi_img" -- "${ompi_run[@]}" --allow-run-as-root "$SIFR" exec "$ompi_img" /opt/mpitest
run_case ompi-mpirun-user "$user" "$ompi_img" -- "${ompi_run[@]}" "$SIFR" exec "$ompi_img" /opt/mpitest
run_case mpich-mpirun-root root "$mpich_img" -- "${mpich_run[@]}" "$SIFR" exec "$mpich_img" /opt/mpitest
run_case mpich-mpirun-user "$user" "$mpich_img" -- "${mpich_run[@]}" "$SIFR" exec "$mpich_img" /opt/mpitest

# Hybrid model under Slurm: srun with the PMI each MPI needs (Debian's OpenMPI has no PMI-2
# client; MPICH under --mpi=pmix or none silently starts singletons), and the course page's
# `mpirun` inside the job.
for who in root "$user"; do
    w=$([ "$who" = root ] && echo root || echo user)
    slurm_case "slurm-ompi-srun-$w" "$who" "$ompi_img" srun --mpi=pmix "$SIFR" exec "$ompi_img" /opt/mpitest
    slurm_case "slurm-mpich-srun-$w" "$who" "$mpich_img" srun --mpi=pmi2 "$SIFR" exec "$mpich_img" /opt/mpitest
    allow=()
    [ "$who" = root ] && allow=(--allow-run-as-root)
    slurm_case "slurm-ompi-mpirun-$w" "$who" "$ompi_img" mpirun.openmpi "${allow[@]}" "$SIFR" exec "$ompi_img" /opt/mpitest
done

# Staggered exit: the ranks leave one second apart, the first one first (rank 0 is the first to
# go) or last; each reads a file of the image just before it exits.
run_case stagger-ompi-root root "$ompi_img" -1000 -- "${ompi_run[@]}" --allow-run-as-root "$SIFR" exec "$ompi_img" /opt/mpitest --stagger-ms -1000
run_case stagger-ompi-user "$user" "$ompi_img" 1000 -- "${ompi_run[@]}" "$SIFR" exec "$ompi_img" /opt/mpitest --stagger-ms 1000
run_case stagger-mpich-user "$user" "$mpich_img" -1000 -- "${mpich_run[@]}" "$SIFR" exec "$mpich_img" /opt/mpitest --stagger-ms -1000

# Unprivileged without FUSE: each launch would unpack the image; the node's ranks must still
# share one container.
if [ -n "$fuse_mode" ]; then
    chmod 600 /dev/fuse
    run_case ompi-mpirun-user-extraction "$user" "$ompi_img" -- "${ompi_run[@]}" "$SIFR" exec "$ompi_img" /opt/mpitest
    run_case mpich-mpirun-user-extraction "$user" "$mpich_img" -- "${mpich_run[@]}" "$SIFR" exec "$mpich_img" /opt/mpitest
    chmod 666 /dev/fuse
fi

# Bind model: an image with a C library and the program but no MPI; the host's OpenMPI (and
# what it loads) bound in with the list examples/mpi/host-mpi-binds.sh makes.
if [[ bind-ompi-root =~ $filter ]]; then
    b=$work/bind
    mkdir -p "$b/rootfs/opt"
    mpicc.openmpi -O2 -o "$b/rootfs/opt/mpitest" examples/mpi/mpi_hello.c
    # The image's C library: the loader and libc/libm parts the program and the MPI plugins use,
    # at the paths ldd reports (a real image would bring its own, at least as new as the host's).
    for l in $(ldd "$b/rootfs/opt/mpitest" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        case ${l##*/} in
            ld-linux* | libc.so.* | libm.so.*) install -D -m 755 "$l" "$b/rootfs$l" ;;
        esac
    done
    "$SIFR" -q build "$b/bind.sif" "$b/rootfs"
    binds=$(examples/mpi/host-mpi-binds.sh "$b/rootfs/opt/mpitest")
    # Without the binds the program cannot start: the image really has no MPI.
    if "$SIFR" -q exec "$b/bind.sif" /opt/mpitest >"$work/bind-none.log" 2>&1 ||
        ! grep -q "libmpi.so" "$work/bind-none.log"; then
        failed+=(bind-ompi-root)
        echo "FAIL bind-ompi-root: the image without binds should not find libmpi.so"
        sed 's/^/    | /' "$work/bind-none.log" | tail -5
    else
        echo "     bind model: $(tr ',' '\n' <<<"$binds" | wc -l) binds, $(du -h "$b/bind.sif" | cut -f1) image"
        run_case bind-ompi-root root "$b/bind.sif" -- "${ompi_run[@]}" --allow-run-as-root "$SIFR" exec -B "$binds" "$b/bind.sif" /opt/mpitest
    fi
fi

# Portability before the job runs: an image with an x86-64-v3 program judged from here against
# each kind of node of the partition "isa", which scripts/slurm.sh declares with tagged nodes
# (nehalem, skylake-avx512) beside the real, untagged one (read through srun's /proc/cpuinfo).
if [[ isa-partition =~ $filter ]] && ((slurm_started)) && [ "$(uname -m)" = x86_64 ]; then
    i=$work/isa
    mkdir -p "$i/rootfs/bin"
    cat >"$i/v3.c" <<'EOF'
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) int sum(const int *p, int n) {
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i + 8 <= n; i += 8)
        acc = _mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(p + i)));
    int r[8];
    _mm256_storeu_si256((__m256i *)r, acc);
    return r[0] + r[7];
}
int main(int c, char **v) {
    int n = c * 64, *p = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) p[i] = i ^ c;
    printf("%d\n", sum(p, n));
    return 0;
}
EOF
    begin=$SECONDS
    if gcc -O2 -static -march=x86-64-v3 -o "$i/rootfs/bin/v3" "$i/v3.c" &&
        "$SIFR" -q build "$i/isa.sif" "$i/rootfs" &&
        "$SIFR" inspect --isa --partition isa "$i/isa.sif" >"$i/out" 2>&1 &&
        grep -q 'Nodes oldcpu1,oldcpu2 \[nehalem,ib\] (from its features): amd64, x86-64-v2: 1 file needs features it lacks' "$i/out" &&
        grep -q '^  /bin/v3: ' "$i/out" &&
        grep -q 'Nodes newcpu1 \[skylake-avx512\] (from its features): amd64, x86-64-v4: every program can run' "$i/out" &&
        grep -q '\[no features\] (cpuinfo of ' "$i/out"; then
        passed=$((passed + 1))
        echo "ok   isa-partition ($((SECONDS - begin)) s)"
    else
        failed+=(isa-partition)
        echo "FAIL isa-partition: sifr inspect --isa --partition isa said:"
        sed 's/^/    | /' "$i/out" 2>/dev/null | tail -12
    fi
fi

echo "== hpc: $passed passed, ${#failed[@]} failed, $skipped skipped${failed:+: ${failed[*]}}"
if ((skipped > 0)) && [ "${SIFR_TEST_STRICT:-}" = 1 ]; then
    echo "hpc: SIFR_TEST_STRICT=1: $skipped skipped cases fail the run" >&2
    exit 1
fi
((${#failed[@]} == 0))
