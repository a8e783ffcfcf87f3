#!/usr/bin/env bash
# Build cache benchmark: examples/python-env (debootstrap, then a venv with numpy and pandas
# made by pip in %post) built cold by `sifr build`, then rebuilt after a change to %runscript,
# to %environment and to a %files source, each against the cold build of the same run.
#
# Apptainer has no build cache: every one of these rebuilds costs it a cold build, so the cold
# row is also the peer's time for each rebuild (measured side by side in bench/build/run.sh).
#
# Usage: bench/build/cache.sh            (as root, or as a user with fakeroot's subordinate ids)
# Env:   SIFR        sifr binary (default: cargo build --release, then target/release/sifr)
#        BENCH_WORK  scratch directory (default: mktemp -d, removed at the end)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
SIFR=$(sifr_release "$repo")
work=${BENCH_WORK:-$(mktemp -d)}
keep=${BENCH_WORK:+1}
mkdir -p "$work"
trap '[ -n "$keep" ] || rm -rf "$work"' EXIT

cp -r "$repo/examples/python-env/." "$work/"
cd "$work"
export APPTAINER_CACHEDIR=$work/cache
rm -rf "$APPTAINER_CACHEDIR"
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
bind=()
[ -f "$ca" ] && bind=(-B "$ca:/etc/ssl/certs/ca-certificates.crt:ro")

now() { date +%s.%N; }
# timed NAME: build python-env.sif, print NAME, seconds and what the cache reused.
timed() {
    local t0 t1 log
    t0=$(now)
    log=$("$SIFR" build -F "${bind[@]}" python-env.sif python-env.def 2>&1) || { echo "$log" >&2; exit 1; }
    t1=$(now)
    secs=$(echo "$t1 - $t0" | bc -l)
    reused=$(grep -o "build cache: reusing [^(]*" <<<"$log" | sed 's/build cache: reusing //; s/ $//' | tail -1)
    printf '%s\t%.2f\t%s\n' "$1" "$secs" "${reused:--}"
}

echo "sifr: $SIFR ($("$SIFR" version 2>/dev/null || true))"
echo "host: $(nproc) CPUs, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')"
printf 'build\tseconds\treused\n'
cold_line=$(timed cold)
echo "$cold_line"
cold=$(cut -f2 <<<"$cold_line")

sed -i 's/^    exec python3 "\$@"$/    echo changed; exec python3 "$@"/' python-env.def
line=$(timed "after a %runscript change"); echo "$line"
sed -i 's/^    export PYTHONNOUSERSITE=1$/    export PYTHONNOUSERSITE=1\n    export BENCH=1/' python-env.def
line2=$(timed "after a %environment change"); echo "$line2"
echo "# bench" >>requirements.txt
line3=$(timed "after a %files change"); echo "$line3"

echo
printf 'ratio to cold: runscript %.3f, environment %.3f, files %.3f\n' \
    "$(echo "$(cut -f2 <<<"$line") / $cold" | bc -l)" \
    "$(echo "$(cut -f2 <<<"$line2") / $cold" | bc -l)" \
    "$(echo "$(cut -f2 <<<"$line3") / $cold" | bc -l)"
"$SIFR" cache list --type build
