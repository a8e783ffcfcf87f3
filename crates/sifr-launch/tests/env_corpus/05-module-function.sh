# An Environment Modules-style `module` function: a helper prints shell code that is
# evaluated with eval "$(...)".
_module_raw() {
    local action=$1 name=$2 root=/opt/apps/$2
    case $action in
        load)
            printf 'export PATH=%q:"$PATH";\n' "$root/bin"
            printf 'export %s_ROOT=%q;\n' "${name^^}" "$root"
            printf 'export LOADEDMODULES="${LOADEDMODULES:+$LOADEDMODULES:}%s";\n' "$name"
            printf 'export MANPATH=%q"${MANPATH:+:$MANPATH}";\n' "$root/share/man"
            ;;
        unload)
            printf 'unset %s_ROOT;\n' "${name^^}"
            printf 'LOADEDMODULES=$(echo "$LOADEDMODULES" | sed -e "s/:*%s//");\n' "$name"
            ;;
        *)
            printf 'echo "module: unknown action %s" >&2; false;\n' "$action"
            ;;
    esac
}
module() { eval "$(_module_raw "$@")"; }
module load gcc
module load openmpi
module load cuda
module unload cuda
module purge-all || export MODULE_ERROR=$?
export MODULEPATH=/opt/apps/modulefiles:/opt/site/modulefiles
