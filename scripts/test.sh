#!/usr/bin/env bash
# The test command of README.md: installs what the tests need, runs every test, checks the
# flag coverage against Apptainer's (scripts/flag-coverage), then builds
# every example of examples/ from its definition file and runs it (as root and as an ordinary
# user; see scripts/examples.sh), checks the environment activations of tests/activation (see
# scripts/activation.sh), runs the clients that call Apptainer for researchers (spython,
# snakemake, singularity-compose, shpc; see scripts/clients.sh), then runs MPI jobs of the MPI
# example images under mpirun and Slurm (scripts/hpc.sh). SIFR_SKIP_EXAMPLES=1 leaves the
# examples, the clients and the MPI jobs out, SIFR_SKIP_CLIENTS=1 the clients only (they are
# installed from PyPI), SIFR_SKIP_HPC=1 the MPI jobs only. SIFR_TEST_STRICT=1 (set by .ci/run)
# makes every test that would skip for want of a tool, fixture or root fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi

# Apptainer's commands and flags that sifr accepts, per command; fails below the goal.
scripts/flag-coverage

if [ "${SIFR_SKIP_EXAMPLES:-0}" != 1 ]; then
    cargo build -p sifr-cli --locked
    # The binary just built, wherever CARGO_TARGET_DIR puts it (never a stale target/debug).
    sifr_bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/sifr
    # The example images are built once and kept for the MPI jobs.
    fixtures=$(mktemp -d)
    trap 'rm -rf "$fixtures"' EXIT
    SIFR=$sifr_bin EXAMPLES_WORK=$fixtures scripts/examples.sh
    # conda/venv/Lmod activations in %environment on a Debian (dash) image.
    SIFR=$sifr_bin scripts/activation.sh
    # spython, snakemake, singularity-compose and shpc against sifr as apptainer/singularity.
    if [ "${SIFR_SKIP_CLIENTS:-0}" != 1 ]; then
        SIFR=$sifr_bin scripts/clients.sh
    fi
    if [ "${SIFR_SKIP_HPC:-0}" != 1 ]; then
        SIFR=$sifr_bin HPC_IMAGES=$fixtures/root/mpi scripts/hpc.sh
    fi
fi
