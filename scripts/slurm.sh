#!/usr/bin/env bash
# A one-node Slurm cluster for the HPC tests (scripts/hpc.sh), started without systemd.
#
#   scripts/slurm.sh up      install what is missing (Slurm, munge, the host's OpenMPI and MPICH),
#                            write slurm.conf under the scratch directory, start munged,
#                            slurmctld and slurmd, wait until the node is idle and srun works
#   scripts/slurm.sh down    stop the daemons through their pid files (munged only when `up`
#                            started it) and remove the scratch directory
#   scripts/slurm.sh env     print `export SLURM_CONF=...` for the clients (eval it)
#
# Both are idempotent: `up` on a running cluster restarts the daemons with a fresh
# configuration (slurmctld and slurmd kill the instance named in their pid file), `down` on a
# stopped one does nothing. The clients find the configuration through SLURM_CONF (printed by
# `up` and `env`); nothing under /etc/slurm is written.
#
# Exit status: 0 up, 2 when the packages cannot be installed (not root and no sudo, or apt
# failed; the reason is printed), 1 on any other failure.
#
# Env: SIFR_SLURM_DIR  scratch directory for the configuration, state, logs and pid files
#                      (default: $TMPDIR or /tmp, then sifr-slurm)
set -euo pipefail

dir=${SIFR_SLURM_DIR:-${TMPDIR:-/tmp}/sifr-slurm}
conf=$dir/slurm.conf

log() { echo "slurm: $*" >&2; }

# Slurm, munge and the host MPI launchers the hybrid tests drive (OpenMPI's mpirun and the
# PMIx plugin srun needs for it; MPICH's hydra mpirun.mpich).
MPI_PACKAGES=(openmpi-bin libopenmpi-dev mpich libmpich-dev)
SLURM_PACKAGES=(slurmctld slurmd slurm-client munge)

# apt_install PKG...: apt-get the missing ones; 2 when that is impossible.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            log "not root and no sudo: cannot install ${missing[*]}"
            return 2
        fi
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 -qq)
    # The package lists may be stale or absent (a fresh container): update once on failure.
    if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        "${apt[@]}" update >/dev/null 2>&1 || true
        "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null || {
            log "apt-get could not install ${missing[*]}"
            return 2
        }
    fi
}

# stop NAME: the daemon named in $dir/NAME.pid, if it still runs that program.
stop() {
    local pidfile=$dir/$1.pid pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            [ -e "/proc/$pid" ] || break
            sleep 0.1
        done
        if [ -e "/proc/$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$pidfile"
}

write_conf() {
    local host cpus mem_kb
    host=$(hostname -s)
    # At least 8 CPUs, whatever the machine has (config_overrides keeps slurmd from draining
    # the node for it), so a 4-rank job fits on a 2-core CI runner without --overcommit.
    cpus=$(nproc)
    ((cpus >= 8)) || cpus=8
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    # RealMemory above what slurmd measures drains the node: leave 512 MiB of slack.
    local mem_mb=$((mem_kb / 1024 - 512))
    mkdir -p "$dir"/{state,spool,log}
    chmod 755 "$dir"
    cat >"$conf" <<EOF
# Written by scripts/slurm.sh for a one-node test cluster on $host.
ClusterName=sifrtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=sched_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
# Nodes declared only, at loopback addresses where no slurmd answers (so they stay DOWN), with
# the CPU tags sites give their nodes: the partition "isa" mixes them with the real node
# (untagged) for sifr inspect --isa --partition (scripts/hpc.sh, case isa-partition).
NodeName=oldcpu[1-2] NodeAddr=127.0.0.2 CPUs=1 RealMemory=100 Features=nehalem,ib State=DOWN
NodeName=newcpu1 NodeAddr=127.0.0.3 CPUs=1 RealMemory=100 Features=skylake-avx512 State=DOWN
PartitionName=isa Nodes=$host,oldcpu[1-2],newcpu1 MaxTime=INFINITE State=UP
EOF
    chmod 644 "$conf"
}

start_munge() {
    # Already running (ours or the distribution's): keep it.
    munge -n </dev/null >/dev/null 2>&1 && return 0
    [ -e /etc/munge/munge.key ] || mungekey --create
    install -d -o munge -g munge -m 0755 /run/munge
    # munged refuses to run as root. Its pid file is its own; `down` stops it only when this
    # script started it (the marker below).
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        if munge -n </dev/null >/dev/null 2>&1; then
            cp /run/munge/munged.pid "$dir/munged.pid"
            return 0
        fi
        sleep 0.1
    done
    log "munged did not start"
    return 1
}

wait_idle() {
    local host state
    host=$(hostname -s)
    for _ in $(seq 150); do
        state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n1 || true)
        case $state in
            idle | mixed | allocated) return 0 ;;
        esac
        sleep 0.2
    done
    log "node $host is not idle after 30 s (state: ${state:-none}); see $dir/log"
    return 1
}

up() {
    local rc=0
    apt_install "${MPI_PACKAGES[@]}" || rc=$?
    ((rc == 0)) && { apt_install "${SLURM_PACKAGES[@]}" || rc=$?; }
    ((rc == 0)) || return "$rc"
    if [ "$(id -u)" != 0 ]; then
        log "starting the daemons needs root"
        return 2
    fi
    write_conf
    export SLURM_CONF=$conf
    start_munge
    stop slurmd
    stop slurmctld
    # -i: ignore saved state from an earlier run of this scratch directory.
    slurmctld -i -f "$conf"
    slurmd -f "$conf"
    wait_idle
    timeout 30 srun -N1 -n1 true || { log "srun does not work; see $dir/log"; return 1; }
    log "up: $(sinfo -h -o '%N %T %c CPUs') (SLURM_CONF=$conf)"
    echo "export SLURM_CONF=$conf"
}

down() {
    stop slurmd
    stop slurmctld
    stop munged
    # The configuration, state and logs go too: `up` writes them afresh.
    rm -rf "$dir"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    env) echo "export SLURM_CONF=$conf" ;;
    *)
        echo "usage: $0 up|down|env" >&2
        exit 1
        ;;
esac
