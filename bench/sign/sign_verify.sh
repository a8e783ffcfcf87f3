#!/usr/bin/env bash
# sign + verify of a large SIF image against `sha256sum` of the same file, the floor: both must
# read every byte and hash it once (SHA-256). Goal (issue 23): each within 1.2x of sha256sum.
#
#   bench/sign/sign_verify.sh [SIZE_MIB] [RUNS]     (defaults: 1024 MiB, 5 runs; median shown)
#
# The image is one group: a small raw partition and a primary partition of SIZE_MIB random
# bytes. PGP signs with a fresh unprotected key in a throwaway keys directory, DSSE with a fresh
# Ed25519 PEM key (openssl). The file is read once before timing, so every run reads from the
# page cache, as sha256sum does. Measures $SIFR, else this tree's release build (made).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
need sha256sum coreutils
need openssl openssl
size=${1:-1024}
runs=${2:-5}
sifr=$(sifr_release "$PWD")
work=$(mktemp -d "${TMPDIR:-/tmp}/sifr-bench-sign.XXXXXX")
trap 'rm -rf "$work"' EXIT
export APPTAINER_KEYSDIR=$work/keys

head -c $((size * 1024 * 1024)) /dev/urandom >"$work/part.bin"
printf 'raw' >"$work/raw.bin"
"$sifr" sif new "$work/base.sif"
"$sifr" sif add "$work/base.sif" "$work/raw.bin" --datatype 4 --parttype 1 --partfs 4 --partarch 2 --groupid 1
"$sifr" sif add "$work/base.sif" "$work/part.bin" --datatype 4 --parttype 2 --partfs 1 --partarch 2 --groupid 1
rm "$work/part.bin"
"$sifr" key newpair --name bench --email bench@example.org --comment bench --password "" --bit-length 2048 >/dev/null
openssl genpkey -algorithm ed25519 -out "$work/ed.pem" 2>/dev/null
openssl pkey -in "$work/ed.pem" -pubout -out "$work/ed.pub.pem"
cat "$work/base.sif" >/dev/null

# time_once CMD...: seconds the command took.
time_once() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

# median NAME SETUP CMD...: runs SETUP (untimed) then CMD, $runs times; prints the median.
median() {
    local name=$1 setup=$2 i
    shift 2
    local times=()
    for ((i = 0; i < runs; i++)); do
        eval "$setup"
        times+=("$(time_once "$@")")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%-14s %8.3f s\n", n, m; print m > "/dev/stderr"}' 2>"$work/$name.t"
}

fresh='cp "$work/base.sif" "$work/img.sif"; cat "$work/img.sif" >/dev/null'
echo "image: $(du -h "$work/base.sif" | cut -f1), $runs runs, median"
median sha256sum ":" sha256sum "$work/base.sif"
# coreutils' sha256sum may not use the CPU's SHA instructions; openssl does: a harder floor.
median openssl-sha256 ":" openssl dgst -sha256 "$work/base.sif"
median sign-pgp "$fresh" "$sifr" sign --keyidx 0 "$work/img.sif"
median verify-pgp ":" "$sifr" verify "$work/img.sif"
median sign-dsse "$fresh" "$sifr" sign --key "$work/ed.pem" "$work/img.sif"
median verify-dsse ":" "$sifr" verify --key "$work/ed.pub.pem" "$work/img.sif"
floor=$(cat "$work/sha256sum.t")
ossl=$(cat "$work/openssl-sha256.t")
for n in sign-pgp verify-pgp sign-dsse verify-dsse; do
    printf '%-14s %8.2fx sha256sum %8.2fx openssl\n' "$n" \
        "$(echo "$(cat "$work/$n.t") / $floor" | bc -l)" "$(echo "$(cat "$work/$n.t") / $ossl" | bc -l)"
done
