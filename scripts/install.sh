#!/usr/bin/env bash
# Install sifr under PREFIX, as a site or a user would:
#
#   scripts/install.sh [--drop-in] [--modulefiles DIR] PREFIX
#
#   PREFIX/bin/sifr                                   the binary (built --release unless
#                                                     SIFR_BIN names one already built)
#   PREFIX/bin/apptainer, PREFIX/bin/singularity      with --drop-in: links, so that job
#                                                     scripts and workflow tools find sifr
#   PREFIX/share/man/man1/sifr*.1                     man pages (`man sifr-exec`)
#   PREFIX/share/bash-completion/completions/sifr     bash completion (also for the links)
#   PREFIX/share/zsh/site-functions/_sifr             zsh completion
#   PREFIX/share/fish/vendor_completions.d/sifr.fish  fish completion
#   MODULEFILES/sifr/VERSION.lua                      an Lmod modulefile (PATH, MANPATH);
#                                                     MODULEFILES is PREFIX/share/modulefiles
#                                                     unless --modulefiles names another
#
# Everything is written under a temporary name and renamed into place, so a failed install
# leaves no half-written file; running it again replaces what it installed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    echo "usage: $0 [--drop-in] [--modulefiles DIR] PREFIX" >&2
    exit 1
}

drop_in=0
modulefiles=
while [ $# -gt 0 ]; do
    case $1 in
        --drop-in) drop_in=1 ;;
        --modulefiles) [ $# -ge 2 ] || usage; modulefiles=$2; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option \`$1\`" >&2; usage ;;
        *) [ -z "${prefix:-}" ] || usage; prefix=$1 ;;
    esac
    shift
done
[ -n "${prefix:-}" ] || usage
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac
modulefiles=${modulefiles:-$prefix/share/modulefiles}

if [ -n "${SIFR_BIN:-}" ]; then
    bin=$SIFR_BIN
else
    (cd "$here" && cargo build --release --locked -p sifr-cli)
    bin=$(cd "$here/${CARGO_TARGET_DIR:-target}" && pwd)/release/sifr
fi
[ -x "$bin" ] || { echo "error: \`$bin\` is not an executable sifr" >&2; exit 1; }

if [ -e "$prefix" ] && [ ! -d "$prefix" ]; then
    echo "error: PREFIX \`$prefix\` exists and is not a directory" >&2
    exit 1
fi
for d in "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
    "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d" \
    "$modulefiles/sifr"; do
    mkdir -p "$d" || { echo "error: cannot create \`$d\`" >&2; exit 1; }
done

stage=$(mktemp -d "$prefix/.sifr-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# put SRC DEST: rename a staged file into place (atomic on one file system).
put() {
    mv -f "$1" "$2"
}

cp "$bin" "$stage/sifr"
chmod 0755 "$stage/sifr"
version=$("$stage/sifr" version | awk '{print $3}')
"$stage/sifr" man --output "$stage/man"
"$stage/sifr" completion bash > "$stage/bash"
# The links answer to their own names, so bash completes them too.
if [ "$drop_in" = 1 ]; then
    printf 'complete -o bashdefault -o default -F _sifr apptainer singularity 2>/dev/null || true\n' \
        >> "$stage/bash"
fi
"$stage/sifr" completion zsh > "$stage/zsh"
"$stage/sifr" completion fish > "$stage/fish"
cat > "$stage/module.lua" <<EOF
-- sifr $version: Apptainer-compatible containers for HPC (installed by scripts/install.sh)
whatis("Name: sifr")
whatis("Version: $version")
whatis("Description: builds and runs Apptainer/Singularity SIF images")
help([[sifr $version: run \`sifr --help\` or \`man sifr\`.]])
prepend_path("PATH", "$prefix/bin")
prepend_path("MANPATH", "$prefix/share/man")
EOF

put "$stage/sifr" "$prefix/bin/sifr"
for page in "$stage"/man/*.1; do
    put "$page" "$prefix/share/man/man1/$(basename "$page")"
done
put "$stage/bash" "$prefix/share/bash-completion/completions/sifr"
put "$stage/zsh" "$prefix/share/zsh/site-functions/_sifr"
put "$stage/fish" "$prefix/share/fish/vendor_completions.d/sifr.fish"
put "$stage/module.lua" "$modulefiles/sifr/$version.lua"
if [ "$drop_in" = 1 ]; then
    for name in apptainer singularity; do
        ln -sfn sifr "$stage/$name"
        put "$stage/$name" "$prefix/bin/$name"
        # bash-completion loads a command's completion from a file of its name.
        ln -sfn sifr "$stage/$name.bash"
        put "$stage/$name.bash" "$prefix/share/bash-completion/completions/$name"
    done
fi

echo "installed sifr $version under $prefix:"
echo "  $prefix/bin/sifr$([ "$drop_in" = 1 ] && echo " (and apptainer, singularity)")"
echo "  man pages in $prefix/share/man/man1 ($(ls "$prefix/share/man/man1" | grep -c '^sifr'))"
echo "  completions for bash, zsh and fish under $prefix/share"
echo "  Lmod: module use $modulefiles; module load sifr/$version"
