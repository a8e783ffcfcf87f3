# A venv activated then deactivated in the same script: PATH and PYTHONHOME come back and
# the function removes itself.
export PYTHONHOME=/usr/lib/python3
deactivate () {
    if [ -n "${_OLD_VIRTUAL_PATH:-}" ] ; then
        PATH="${_OLD_VIRTUAL_PATH:-}"; export PATH; unset _OLD_VIRTUAL_PATH
    fi
    if [ -n "${_OLD_VIRTUAL_PYTHONHOME:-}" ] ; then
        PYTHONHOME="${_OLD_VIRTUAL_PYTHONHOME:-}"; export PYTHONHOME; unset _OLD_VIRTUAL_PYTHONHOME
    fi
    hash -r 2> /dev/null
    unset VIRTUAL_ENV VIRTUAL_ENV_PROMPT
    if [ ! "${1:-}" = "nondestructive" ] ; then
        unset -f deactivate
    fi
}
deactivate nondestructive
export VIRTUAL_ENV=/opt/venvs/tool
_OLD_VIRTUAL_PATH=$PATH
export PATH="$VIRTUAL_ENV/bin:$PATH"
_OLD_VIRTUAL_PYTHONHOME=$PYTHONHOME
unset PYTHONHOME
export DURING="$PATH|${PYTHONHOME-unset}|$VIRTUAL_ENV"
deactivate
export AFTER="$PATH|${PYTHONHOME-unset}|${VIRTUAL_ENV-unset}|$(type -t deactivate || echo no-function)"
