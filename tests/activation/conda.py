#!/usr/bin/python3
"""A stand-in for conda's executable that speaks its shell protocol, for sifr's tests.

`conda shell.bash hook` prints the bash functions `conda init` makes every shell evaluate
(`conda` is a function that runs `__conda_activate`, which `eval`s what
`conda shell.posix activate ENV` prints). Only `activate`/`deactivate` of environments
under /opt/conda/envs are understood; anything else is an error.
"""
import os
import shlex
import sys

ROOT = "/opt/conda"

HOOK = r'''export CONDA_EXE='%(root)s/bin/conda'
export CONDA_SHLVL="${CONDA_SHLVL:-0}"
__conda_exe() (
    "$CONDA_EXE" "$@"
)
__conda_hashr() {
    if [ -n "${ZSH_VERSION:+x}" ]; then
        \rehash
    else
        \hash -r
    fi
}
__conda_activate() {
    if [ -n "${CONDA_PS1_BACKUP:+x}" ]; then
        PS1="$CONDA_PS1_BACKUP"
        \unset CONDA_PS1_BACKUP
    fi
    \local ask_conda
    ask_conda="$(PS1="${PS1:-}" __conda_exe shell.posix "$@")" || \return
    \eval "$ask_conda"
    __conda_hashr
}
conda() {
    \local cmd="${1-__missing__}"
    case "$cmd" in
        activate|deactivate)
            __conda_activate "$@"
            ;;
        *)
            __conda_exe "$@"
            ;;
    esac
}
if [ -z "${CONDA_SHLVL+x}" ]; then
    \export CONDA_SHLVL=0
fi
''' % {"root": ROOT}


def q(s):
    return shlex.quote(s)


def activate(name):
    prefix = name if name.startswith("/") else os.path.join(ROOT, "envs", name)
    if not os.path.isdir(prefix):
        sys.stderr.write("EnvironmentNameNotFound: Could not find conda environment: %s\n" % name)
        return 1
    path = os.environ.get("PATH", "")
    level = int(os.environ.get("CONDA_SHLVL", "0") or 0)
    ps1 = os.environ.get("PS1", "")
    out = [
        "PS1=%s" % q("(%s) %s" % (os.path.basename(prefix), ps1)),
        "export PATH=%s" % q(os.path.join(prefix, "bin") + ":" + path),
        "export CONDA_PREFIX=%s" % q(prefix),
        "export CONDA_SHLVL=%s" % q(str(level + 1)),
        "export CONDA_DEFAULT_ENV=%s" % q(os.path.basename(prefix)),
        "export CONDA_PROMPT_MODIFIER=%s" % q("(%s) " % os.path.basename(prefix)),
    ]
    print("\n".join(out))
    return 0


def main(argv):
    if argv[:2] == ["shell.bash", "hook"]:
        sys.stdout.write(HOOK)
        return 0
    if argv[:1] == ["shell.posix"] and len(argv) == 3 and argv[1] == "activate":
        return activate(argv[2])
    sys.stderr.write("conda (test stand-in): unsupported command: %s\n" % " ".join(argv))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
