#!/usr/bin/env bash
# Reproducibility check: build one definition N times (default 10) with SOURCE_DATE_EPOCH,
# alternating between two build directories that hold copies of the definition and of the
# files next to it (their times differ: B's copies are touched after A's), and report how many
# images are byte-identical to the first (`cmp`). Goal of issue 28: N out of N.
#
# Usage: bench/build/reproducible.sh DEF [N]
#        (DEF's directory is copied twice; relative %files sources are taken from the copies)
# Env:   SIFR               sifr binary (default: the release build, made if needed)
#        SOURCE_DATE_EPOCH  the epoch (default: 1700000000)
#        BENCH_WORK         scratch directory (default: mktemp -d, removed at the end)
#        BUILD_FLAGS        extra `sifr build` flags (e.g. --fakeroot, --reproducible)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)

def=${1:?usage: $0 DEF [N]}
n=${2:-10}
[ -f "$def" ] || { echo "no such definition: $def" >&2; exit 1; }
src=$(cd "$(dirname "$def")" && pwd)
name=$(basename "$def")
sifr=$(sifr_release "$repo")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

work=${BENCH_WORK:-$(mktemp -d)}
keep=${BENCH_WORK:+1}
mkdir -p "$work"
cleanup() { [ -n "$keep" ] || rm -rf "$work"; }
trap cleanup EXIT

# Two copies of the definition's directory. A relative path in a local image's `From:` is made
# absolute (it named something next to the original, which is not copied).
for d in a b; do
    mkdir -p "$work/$d"
    cp -a "$src/." "$work/$d/"
    awk -v src="$src" '
        /^[[:space:]]*[Bb]ootstrap:/ { agent = tolower($2) }
        /^[[:space:]]*From:/ && agent ~ /^(localimage|oci|oci-archive|docker-archive)$/ && $2 !~ /^\// {
            sub(/From:[[:space:]]*/, "From: " src "/")
        }
        { print }' "$src/$name" >"$work/$d/$name"
    sleep 1
    find "$work/$d" -exec touch -h {} + # B's files are newer than A's
done

same=0
first=
for i in $(seq 1 "$n"); do
    d=$work/$([ $((i % 2)) = 1 ] && echo a || echo b)
    out=$work/image-$i.sif
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    (cd "$d" && "$sifr" build ${BUILD_FLAGS:-} -F "$out" "$name") >"$work/log-$i" 2>&1 || {
        echo "build $i failed:" >&2
        tail -20 "$work/log-$i" >&2
        exit 1
    }
    took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ -z "$first" ]; then
        first=$out
        same=1
        verdict="reference"
    elif cmp -s "$first" "$out"; then
        same=$((same + 1))
        verdict="identical"
    else
        verdict="DIFFERS at byte $(cmp "$first" "$out" | awk '{print $5}' | tr -d , || true)"
    fi
    printf 'build %2d in %s: %5s s  %s  %s\n' "$i" "$(basename "$d")" "$took" \
        "$(sha256sum "$out" | cut -c1-16)" "$verdict"
    sleep 1 # the next build runs at another second
done
echo "byte-identical to the first: $same/$n (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, $(basename "$def"))"
[ "$same" = "$n" ]
