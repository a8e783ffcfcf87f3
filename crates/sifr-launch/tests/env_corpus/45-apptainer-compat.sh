# Apptainer/Singularity compatibility as images carry it: SINGULARITY_* names mirrored
# from APPTAINER_* with eval (no quoted-assignment export), the runscript helpers and
# legacy variables.
for v in $(compgen -v APPTAINER_ 2>/dev/null || printf '%s\n' APPTAINER_CONTAINER APPTAINER_NAME APPTAINER_APPNAME); do
    eval "export SINGULARITY_${v#APPTAINER_}=\"\${$v}\""
done
export SINGULARITY_ENVIRONMENT=${SINGULARITY_ENVIRONMENT:-/.singularity.d/env/91-environment.sh}
if [ -z "${APPTAINER_APPNAME}" ]; then
    export APP_ROOT=/
else
    export APP_ROOT="/scif/apps/$APPTAINER_APPNAME"
fi
if test -n "${SINGULARITY_NAME:-}"; then
    export IMAGE_LABEL="$(echo "$SINGULARITY_NAME" | sed -e 's/\.sif$//' -e 's/_/ /g')"
fi
export TRICKY_COPY="$TRICKY" TRICKY_LEN=${#TRICKY}
