#!/usr/bin/env bash
# Build every example of examples/ from its definition file and run it, as users do: as root,
# and (when started as root) again as an ordinary user, whose build runs as fakeroot in a user
# namespace with subordinate ids. Called by scripts/test.sh; usable alone:
#
#   scripts/examples.sh [NAME...]        (default: multistage python-env mpi mpi/mpich gpu)
#
# NAME is a folder of examples/ (its definition file is FOLDER/FOLDER.def) or FOLDER/STEM for
# another definition file of that folder (mpi/mpich is examples/mpi/mpich.def). The image of
# NAME built as WHO is WORK/WHO/FOLDER/STEM.sif.
#
# Env: SIFR (the binary; default target/debug/sifr, built if missing), EXAMPLES_USER (default
# sifrtest, created if missing), EXAMPLES_AS_USER=0 to build as root only, EXAMPLES_WORK=DIR
# to build in DIR and keep the images there for later tests (scripts/hpc.sh reuses the MPI
# ones); by default a temporary directory, removed at exit. EXAMPLES_PARALLEL=0 builds as root
# first and as the user after, instead of side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

SIFR=${SIFR:-$repo/target/debug/sifr}
[ -x "$SIFR" ] || cargo build -p sifr-cli --locked
user=${EXAMPLES_USER:-sifrtest}
names=("$@")
((${#names[@]})) || names=(multistage python-env mpi mpi/mpich gpu)

if [ -n "${EXAMPLES_WORK:-}" ]; then
    work=$EXAMPLES_WORK
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
chmod 755 "$work"

as_user=0
if [ "$(id -u)" = 0 ] && [ "${EXAMPLES_AS_USER:-1}" = 1 ]; then
    id "$user" >/dev/null 2>&1 || useradd -m "$user"
    # Give the user a subordinate id range, as `useradd` does where /etc/subuid exists and as
    # an administrator does for fakeroot builds (`apt` in %post needs the system users' ids).
    if ! grep -qs "^$user:" /etc/subuid || ! grep -qs "^$user:" /etc/subgid; then
        touch /etc/subuid /etc/subgid
        usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$user"
    fi
    as_user=1
fi

# Sites that inspect TLS (a proxy with its own CA) make pip inside %post fail certificate
# checks against the image's CA list. Apptainer users bind the host's bundle for the build; so
# do we, when the host has one (its path is read from the environment first).
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
ca_bind=()
[ -f "$ca" ] && ca_bind=(-B "$ca:/etc/ssl/certs/ca-certificates.crt:ro")

# run WHO CMD...: as root, or as the example user from the work directory.
run() {
    local who=$1; shift
    if [ "$who" = root ]; then
        "$@"
    else
        setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
    fi
}

check() { # NAME WHO
    local name=$1 who=$2 stem=${1##*/} dir="$work/$2/${1%%/*}" img
    img="$dir/$stem.sif"
    local -a extra=()
    [ "$name" = python-env ] && extra=("${ca_bind[@]}")
    echo "== $name: build as $who"
    local t0=$SECONDS
    # A build cache of this run's own (removed with it), so every step really runs here once;
    # mpi and mpich share their Debian bootstrap through it, as a user's builds do.
    local cache="$work/$who/cache"
    (cd "$dir" && run "$who" env APPTAINER_CACHEDIR="$cache" "$SIFR" build "${extra[@]}" "$img" "$stem.def")
    echo "== $name: built as $who in $((SECONDS - t0)) s, $(du -h "$img" | cut -f1)"
    case $stem in
        multistage)
            out=$(cd "$dir" && run "$who" "$SIFR" exec "$img" /usr/local/bin/hello)
            echo "$out"
            [[ $out == "hello from a "* ]]
            # The point of the example: the shipped image holds the binary, not the compiler.
            if run "$who" "$SIFR" exec "$img" /bin/sh -c true 2>/dev/null; then
                echo "the final stage should not contain a shell" >&2
                return 1
            fi
            ;;
        python-env)
            out=$(cd "$dir" && run "$who" "$SIFR" exec "$img" python3 -c 'import pandas, sys; print("pandas", pandas.__version__, sys.prefix)')
            echo "$out"
            [[ $out == "pandas "*" /opt/venv" ]]
            (cd "$dir" && run "$who" "$SIFR" test "$img")
            # numpy and OpenBLAS wheels pick AVX2/AVX-512 code at run time: the image must not
            # be reported as needing more than the wheels' x86-64-v2 baseline.
            if [ "$(uname -m)" = x86_64 ]; then
                isa=$(cd "$dir" && run "$who" "$SIFR" inspect --isa "$img")
                grep -E "^Highest level: +x86-64-v[12]$" <<<"$isa" || { echo "$isa" >&2; return 1; }
            fi
            # A changed %runscript rebuilds from the build cache: no debootstrap, no pip.
            sed 's/^    exec python3 "\$@"$/    echo rebuilt; exec python3 "$@"/' "$dir/$stem.def" >"$dir/rerun.def"
            grep -q "echo rebuilt" "$dir/rerun.def"
            t0=$SECONDS
            out=$(cd "$dir" && run "$who" env APPTAINER_CACHEDIR="$cache" "$SIFR" build "${extra[@]}" rerun.sif rerun.def 2>&1)
            echo "== $name: rebuilt after a %runscript change as $who in $((SECONDS - t0)) s"
            grep -q "build cache: reusing bootstrap, %files, %post" <<<"$out" || { echo "$out" >&2; return 1; }
            ! grep -q "running %post" <<<"$out" || { echo "$out" >&2; return 1; }
            out=$(cd "$dir" && run "$who" "$SIFR" run rerun.sif -c 'import pandas; print("ok")')
            [ "$out" = $'rebuilt\nok' ] || { echo "rerun.sif ran: $out" >&2; return 1; }
            rm -f "$dir/rerun.sif" "$dir/rerun.def"
            ;;
        mpi)
            out=$(cd "$dir" && run "$who" "$SIFR" exec "$img" mpirun --oversubscribe --allow-run-as-root -np 2 /opt/mpitest)
            echo "$out"
            grep -q "world 2 ALL_OK=1" <<<"$out"
            ;;
        mpich)
            # MPICH's own launcher inside the image (hydra: no --allow-run-as-root needed).
            out=$(cd "$dir" && run "$who" "$SIFR" exec "$img" mpirun.mpich -np 2 /opt/mpitest)
            echo "$out"
            grep -q "world 2 ALL_OK=1" <<<"$out"
            ;;
        gpu)
            # No GPU here: the script must start and say why it sees none (exit 2, not a crash).
            set +e
            out=$(cd "$dir" && run "$who" "$SIFR" exec "$img" python3 /opt/list_gpus.py 2>&1)
            rc=$?
            set -e
            echo "$out"
            [ $rc = 2 ] && grep -q "run with --nv" <<<"$out"
            ;;
    esac
}

# all_as WHO: every example built and run as WHO.
all_as() {
    local who=$1 n
    rm -rf "${work:?}/$who"
    mkdir -p "$work/$who"
    cp -r examples/. "$work/$who/"
    [ "$who" = root ] || chown -R "$user" "$work/$who"
    for n in "${names[@]}"; do
        check "$n" "$who"
        # Only root's MPI images are kept (scripts/hpc.sh runs them); the rest go at once, so
        # the disk holds one image at a time besides those.
        if [ "$who" != root ] || [ "${n%%/*}" != mpi ]; then
            rm -f "$work/$who/${n%%/*}/${n##*/}.sif"
        fi
        # The build cache too, but for mpi's, which mpich's build reuses.
        [ "${n%%/*}" = mpi ] || rm -rf "${work:?}/$who/cache"
    done
    rm -rf "${work:?}/$who/cache"
}
if ((as_user)) && [ "${EXAMPLES_PARALLEL:-1}" = 1 ]; then
    # Root's and the user's builds side by side: much of a Debian build waits on dpkg's disk
    # writes and the mirror, so two builds at once take far less than twice one (CI has two
    # cores). Each side's output is kept in its own log and shown whole when it is done.
    logs=$(mktemp -d)
    (set -e; all_as root) >"$logs/root" 2>&1 &
    root_job=$!
    (set -e; all_as "$user") >"$logs/user" 2>&1 &
    user_job=$!
    rc=0
    wait "$root_job" || rc=$?
    echo "== as root:"
    cat "$logs/root"
    urc=0
    wait "$user_job" || urc=$?
    echo "== as $user:"
    cat "$logs/user"
    rm -rf "$logs"
    if [ "$rc" != 0 ] || [ "$urc" != 0 ]; then
        echo "== examples failed (root: exit $rc, $user: exit $urc)" >&2
        exit 1
    fi
else
    for who in root $( ((as_user)) && echo "$user"); do
        all_as "$who"
    done
fi
echo "== all examples built and ran: ${names[*]}"
