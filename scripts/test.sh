#!/usr/bin/env bash
# The test command of README.md: installs what the tests need, runs every test, then builds
# every example of examples/ from its definition file and runs it (as root and as an ordinary
# user; see scripts/examples.sh). SIFR_SKIP_EXAMPLES=1 leaves the examples out.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi

if [ "${SIFR_SKIP_EXAMPLES:-0}" != 1 ]; then
    cargo build -p sifr-cli --locked
    SIFR=$PWD/target/debug/sifr scripts/examples.sh
fi
