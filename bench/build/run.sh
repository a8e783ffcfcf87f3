#!/usr/bin/env bash
# Build benchmark: examples/python-env (Debian via debootstrap, a venv with numpy and pandas made
# by pip in %post) built by `sifr build`, against the same steps done the Apptainer way in the
# same run: debootstrap, then chroot for %post, then `mksquashfs -comp gzip`.
#
# Each side is split into bootstrap, %post and packing. The package managers (debootstrap,
# pip) run on both sides, so what is compared is the rest: sifr's own overhead (setting up the
# container for %post, the /.singularity.d tree, packing) against the chroot + mksquashfs steps.
#
# Usage: sudo bench/build/run.sh          (root: debootstrap and chroot need it)
# Env:   SIFR     sifr binary (default: cargo build --release, then target/release/sifr)
#        MIRROR   Debian mirror (default: the first deb URI in the host's apt sources)
#        BENCH_WORK scratch directory (default: mktemp -d, removed at the end)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$(mktemp -d)}
keep=${BENCH_WORK:+1}
mkdir -p "$work"
cleanup() {
    for m in proc dev; do umount -l "$work/peer/rootfs/$m" 2>/dev/null || true; done
    [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap and chroot need it)" >&2; exit 1; }
command -v mksquashfs >/dev/null || { echo "missing: mksquashfs (apt-get install squashfs-tools)" >&2; exit 1; }

if [ -z "${SIFR:-}" ]; then
    (cd "$repo" && cargo build --release --locked -p sifr-cli >/dev/null)
    SIFR=$repo/target/release/sifr
fi

mirror=$(host_mirror)

ex=$repo/examples/python-env
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- sifr: stamp each progress line as it arrives, then take the phase boundaries from them.
echo "== sifr build (python-env)" >&2
stamps=$work/sifr.stamps
t0=$(now)
(cd "$ex" && "$SIFR" build -F -B "$ca:/etc/ssl/certs/ca-certificates.crt:ro" "$work/py.sif" python-env.def) 2>&1 >/dev/null |
    while IFS= read -r line; do printf '%s %s\n' "$(now)" "$line"; done >"$stamps"
t_end=$(now)
at() { awk -v pat="$1" 'index($0, pat) { print $1; exit }' "$stamps"; }
s_boot_end=$(at "copying files from the host")
s_post=$(at "running %post")
s_post_end=$(at "running %test")
s_pack=$(at "creating SIF file")
s_total=$(sub "$t0" "$t_end")
s_bootstrap=$(sub "$t0" "$s_boot_end")
s_postt=$(sub "$s_post" "$s_post_end")
s_packt=$(sub "$s_pack" "$t_end")
s_size=$(stat -c %s "$work/py.sif")

# --- peer: debootstrap, chroot, mksquashfs -comp gzip (Apptainer's pipeline, by hand).
echo "== debootstrap + chroot + mksquashfs -comp gzip" >&2
root=$work/peer/rootfs
mkdir -p "$root"
p0=$(now)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >"$work/peer.debootstrap.log" 2>&1
p1=$(now)
mkdir -p "$root/opt/venv"
cp "$ex/requirements.txt" "$root/opt/venv/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount --bind /proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --bind -o ro "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
p2=$(now)
chroot "$root" /bin/sh -ex -c 'python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /opt/venv/requirements.txt' >"$work/peer.post.log" 2>&1
p3=$(now)
umount "$root/etc/ssl/certs/ca-certificates.crt"
umount -l "$root/dev"
umount "$root/proc"
p4=$(now)
mksquashfs "$root" "$work/peer.sqfs" -comp gzip -noappend -quiet >/dev/null
p5=$(now)
p_size=$(stat -c %s "$work/peer.sqfs")
# The same tree packed by sifr at the peer's codec, so the packing row compares like with like.
g0=$(now)
"$SIFR" -q build --compression gzip "$work/peer-gzip.sif" "$root" >/dev/null 2>&1
g1=$(now)
g_pack=$(sub "$g0" "$g1")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
p_pack=$(sub "$p4" "$p5")
p_total=$(sub "$p0" "$p5")
p_boot=$(sub "$p0" "$p1")
p_post=$(sub "$p2" "$p3")
s_test=$(sub "$s_post_end" "$s_pack")
s_over=$(awk -v t="$s_total" -v b="$s_bootstrap" -v p="$s_postt" -v x="$s_test" 'BEGIN { printf "%.1f", t - b - p - x }')
p_over=$(awk -v t="$p_total" -v b="$p_boot" -v p="$p_post" 'BEGIN { printf "%.1f", t - b - p }')

cat <<EOF

| step | sifr build | debootstrap + chroot + mksquashfs -comp gzip | sifr / peer |
|---|---|---|---|
| bootstrap (debootstrap) | $s_bootstrap s | $p_boot s | $(ratio "$s_bootstrap" "$p_boot") |
| %post (pip install numpy pandas) | $s_postt s | $p_post s | $(ratio "$s_postt" "$p_post") |
| %test (python3 -c 'import pandas'; the peer has none) | $s_test s | - | - |
| packing | $s_packt s (zstd-3) | $p_pack s (gzip) | $(ratio "$s_packt" "$p_pack") |
| packing the peer's tree at gzip level 9 (sifr build DIR) | $g_pack s | $p_pack s | $(ratio "$g_pack" "$p_pack") |
| everything but the package managers and %test | $s_over s | $p_over s | $(ratio "$s_over" "$p_over") |
| total | $s_total s | $p_total s | $(ratio "$s_total" "$p_total") |
| image | $((s_size / 1048576)) MiB SIF | $((p_size / 1048576)) MiB squashfs | $(ratio "$s_size" "$p_size") |
EOF
