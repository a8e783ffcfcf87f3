#!/usr/bin/env bash
# Issue 21's end-to-end test: the environment activations HPC images use, evaluated by sifr with
# bash semantics on a Debian image whose /bin/sh is dash (tests/activation/activation.def):
# conda's `conda init` hook + `conda activate` (the course page's %environment), Lmod's
# `module load`, and a real venv's `source .../bin/activate`; also Apptainer's e2e/env rows that
# need a Debian image (the default LD_LIBRARY_PATH). The image is built once, as root;
# every check runs as root and as an ordinary user (WHO below), with `exec`, `run` and `shell`.
# Called by scripts/test.sh; usable alone:
#
#   scripts/activation.sh
#
# Env: SIFR (default target/debug/sifr, built if missing), ACTIVATION_USER (default sifrtest,
# created if missing), ACTIVATION_WORK=DIR to build in DIR and keep the image (default: a
# temporary directory, removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

SIFR=${SIFR:-$repo/target/debug/sifr}
[ -x "$SIFR" ] || cargo build -p sifr-cli --locked
user=${ACTIVATION_USER:-sifrtest}
if [ -n "${ACTIVATION_WORK:-}" ]; then
    work=$ACTIVATION_WORK
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
chmod 755 "$work"
id "$user" >/dev/null 2>&1 || useradd -m "$user"

cp tests/activation/* "$work/"
img=$work/activation.sif
if [ ! -s "$img" ]; then
    echo "== activation: build"
    t0=$SECONDS
    (cd "$work" && "$SIFR" build "$img" activation.def)
    echo "== activation: built in $((SECONDS - t0)) s, $(du -h "$img" | cut -f1)"
fi
# The venv activation, as a second environment script bound into the image.
printf 'source /opt/venv/bin/activate\n' >"$work/95-venv.sh"
chmod 644 "$work/95-venv.sh"

# The user's launches mount the image with FUSE, as on an HPC node where /dev/fuse is 0666
# (the extraction path is covered by the examples); its mode is put back at exit.
fuse_mode=$(stat -c %a /dev/fuse)
trap 'chmod "$fuse_mode" /dev/fuse; [ -n "${ACTIVATION_WORK:-}" ] || rm -rf "$work"' EXIT
chmod 666 /dev/fuse

fails=0
passes=0
# expect NAME WANT CMD...: run CMD, compare its stdout with WANT; stderr must hold no warning.
expect() {
    local name=$1 want=$2 out err rc=0
    shift 2
    err=$(mktemp)
    out=$("$@" 2>"$err") || rc=$?
    if [ $rc != 0 ] || [ "$out" != "$want" ] || grep -qE "^(WARNING|ERROR|FATAL)|command not found|syntax error" "$err"; then
        echo "FAIL $name (status $rc)"
        echo "  want: $want"
        echo "  got:  $out"
        sed 's/^/  stderr: /' "$err"
        fails=$((fails + 1))
    else
        echo "ok   $name"
        passes=$((passes + 1))
    fi
    rm -f "$err"
}

as() { # WHO CMD...
    local who=$1
    shift
    if [ "$who" = root ]; then
        (cd "$work" && "$@")
    else
        (cd "$work" && setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@")
    fi
}

for who in root "$user"; do
    expect "$who: the image's /bin/sh is dash" /usr/bin/dash \
        as "$who" "$SIFR" exec "$img" readlink -f /bin/sh
    # The course page: `exec img python -c 'import pandas'` (python exists only in the env).
    expect "$who: conda activate, exec" "/opt/conda/envs/singularityenv ok" \
        as "$who" "$SIFR" exec "$img" python -c 'import sys, pandas; print(sys.prefix, "ok")'
    expect "$who: conda activate, run" "singularityenv" \
        as "$who" "$SIFR" run "$img" -c 'import os; print(os.environ["CONDA_DEFAULT_ENV"])'
    expect "$who: shell starts with the environment active" \
        "singularityenv 1 loaded pandas" \
        as "$who" "$SIFR" shell "$img" \
        <<<'echo "$CONDA_DEFAULT_ENV $CONDA_SHLVL $HELLO_MODULE $(python -c "import pandas; print(pandas.__name__)")"'
    expect "$who: module load" "hello from a module hello/1.0" \
        as "$who" "$SIFR" exec "$img" bash -c 'echo "$(hello) $LOADEDMODULES"'
    expect "$who: venv activate" "/opt/venv /opt/venv" \
        as "$who" "$SIFR" exec -B "$work/95-venv.sh:/.singularity.d/env/95-venv.sh" "$img" \
        python -c 'import os, sys; print(sys.prefix, os.environ["VIRTUAL_ENV"])'
    # Values injected from the host are evaluated inside the container after %environment.
    expect "$who: APPTAINERENV_ sees the activation" "/opt/conda/envs/singularityenv/bin/python" \
        as "$who" env 'APPTAINERENV_PY=$(command -v python)' "$SIFR" exec "$img" printenv PY
    # Apptainer's e2e/env/env.go apptainerEnvOption rows that need a Debian (glibc) image:
    # with /.singularity.d/libs not empty, the default LD_LIBRARY_PATH gets ldconfig's
    # directories first; PREPEND_/APPEND_LD_LIBRARY_PATH go around them.
    dirs=/usr/local/lib:/lib/x86_64-linux-gnu:/lib
    if [ "$(uname -m)" = x86_64 ]; then
        expect "$who: TestDefaultLdLibraryPathWithBind" "$dirs:/.singularity.d/libs" \
            as "$who" "$SIFR" exec -B /etc/os-release:/.singularity.d/libs/os-release "$img" \
            /bin/sh -c 'echo $LD_LIBRARY_PATH'
        expect "$who: TestPrependLdLibraryPath" "/foo:$dirs:/.singularity.d/libs" \
            as "$who" "$SIFR" exec --env PREPEND_LD_LIBRARY_PATH=/foo "$img" \
            /bin/sh -c 'echo $LD_LIBRARY_PATH'
        expect "$who: TestAppendLdLibraryPath" "$dirs:/.singularity.d/libs:/foo" \
            as "$who" "$SIFR" exec --env APPEND_LD_LIBRARY_PATH=/foo "$img" \
            /bin/sh -c 'echo $LD_LIBRARY_PATH'
    fi
done

echo "activation: $passes passed, $fails failed"
[ "$fails" = 0 ]
