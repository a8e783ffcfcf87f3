#!/usr/bin/env bash
# Installs the Debian packages sifr's tests and examples need. Idempotent and quick when
# everything is already there. Needs root (or sudo); without either it says what is missing and
# carries on, and the tests that need a missing tool skip with a printed reason (or fail, under
# SIFR_TEST_STRICT=1, as .ci/run runs them: every tool a test asks for must be listed here).
set -euo pipefail

# Peers the tests use as judges, and tools the examples use.
PACKAGES=(
    squashfs-tools   # mksquashfs/unsquashfs: judge our SquashFS writer and reader
    e2fsprogs        # mkfs.ext3 -d (overlay create makes ext3 overlays with it), debugfs, e2fsck: judge them
    squashfuse       # a second, independent SquashFS reader
    fuse3            # fusermount3, /dev/fuse users
    util-linux       # losetup, mount, unshare, setpriv
    debootstrap      # Debian root filesystems for examples and benchmarks
    time             # /usr/bin/time -v for peak memory in benchmarks
    gcc              # compiles the static probe that test images carry
    libc6-dev        # ... and its static libc
    busybox-static   # a /bin/sh for test images
    python3-numpy    # sifr-isa's Debian-files test: numpy's AVX-512 code is dispatched, not needed
    libsodium23      # ... and so is libsodium's (the other libraries it reads are apt's own deps)
    docker-registry  # a real OCI distribution server on 127.0.0.1 for the registry tests
    skopeo           # pushes test images to it
    umoci            # builds OCI image layouts from a root filesystem
    openssl          # a throwaway CA for the registry's TLS
    apache2-utils    # htpasswd for the registry's basic auth
    uidmap           # newuidmap/newgidmap: subordinate ids for unprivileged (fakeroot) builds
    python3          # scripts/flag-coverage
    iproute2         # ip netns: the network-namespace tests join one made with it
    python3-venv     # scripts/clients.sh: the clients' virtual environment, with pip (Debian's python3)
    lmod             # scripts/clients.sh: shpc's modules are loaded with Lmod
    curl             # scripts/clients.sh: uploads an ORAS artifact to the test registry
    gnupg            # gpg --verify: an independent judge of the OpenPGP signatures sifr makes
    e2fsprogs        # mkfs.ext3 -d, e2fsck, debugfs and libext2fs.so.2: sifr-extfs and its judges
    fuse2fs          # bench/overlay_ext3.sh: Apptainer's unprivileged ext3 path, to compare against
    fuse-overlayfs   # ... the overlay it stacks on fuse2fs
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "deps: not root and no sudo: cannot install ${missing[*]}; tests needing them will skip" >&2
    exit 0
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
