# A conda-style initialisation block: the shell code printed by an "external program" is
# evaluated, then a `conda` function (with `local` and `case`) activates environments.
__conda_exe=/opt/conda/bin/conda
__conda_setup="$(/bin/printf '%s\n' \
    "export CONDA_EXE='$__conda_exe'" \
    "export _CE_M=''" \
    "export _CE_CONDA=''" \
    "export CONDA_PYTHON_EXE='/opt/conda/bin/python'" \
    "CONDA_SHLVL=0; export CONDA_SHLVL" 2> /dev/null)"
if [ $? -eq 0 ]; then
    eval "$__conda_setup"
else
    if [ -f "/opt/conda/etc/profile.d/conda.sh" ]; then
        . "/opt/conda/etc/profile.d/conda.sh"
    else
        export PATH="/opt/conda/bin:$PATH"
    fi
fi
unset __conda_setup

__conda_activate() {
    local cmd="$1"
    shift
    local env_name="${1:-base}"
    local prefix
    case "$env_name" in
        base) prefix=/opt/conda ;;
        /*) prefix="$env_name" ;;
        *) prefix="/opt/conda/envs/$env_name" ;;
    esac
    case "$cmd" in
        activate)
            if [ -n "${CONDA_PREFIX:-}" ]; then
                export "CONDA_PREFIX_${CONDA_SHLVL}=$CONDA_PREFIX"
            fi
            export CONDA_SHLVL=$((CONDA_SHLVL + 1))
            export CONDA_PREFIX="$prefix"
            export CONDA_DEFAULT_ENV="$env_name"
            export CONDA_PROMPT_MODIFIER="($env_name) "
            export PATH="$prefix/bin:$PATH"
            ;;
        deactivate)
            PATH=$(printf '%s' "$PATH" | sed -e "s#${CONDA_PREFIX}/bin:##")
            export PATH
            local prev_var="CONDA_PREFIX_$((CONDA_SHLVL - 1))"
            export CONDA_SHLVL=$((CONDA_SHLVL - 1))
            if [ -n "${!prev_var:-}" ]; then
                export CONDA_PREFIX="${!prev_var}"
                export CONDA_DEFAULT_ENV="${CONDA_PREFIX##*/}"
                unset "$prev_var"
            else
                unset CONDA_PREFIX CONDA_DEFAULT_ENV CONDA_PROMPT_MODIFIER
            fi
            ;;
    esac
}

conda() {
    local cmd="${1:-__missing__}"
    case "$cmd" in
        activate|deactivate)
            __conda_activate "$@"
            ;;
        install|update|upgrade|remove|uninstall)
            "$CONDA_EXE" "$@"
            ;;
        *)
            return 1
            ;;
    esac
}

conda activate base
conda activate analysis
conda activate /scratch/envs/tmp
conda deactivate
conda frobnicate || export CONDA_UNKNOWN_STATUS=$?
