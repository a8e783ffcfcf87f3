#!/usr/bin/env bash
# The test command of README.md: installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
