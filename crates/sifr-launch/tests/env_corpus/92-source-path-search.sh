# source of a name without a slash looks it up in PATH (shopt sourcepath, on by default), as
# the legacy `source activate ENV` of conda relies on; not with sourcepath off.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATH="$here:$PATH"
source helpers.inc first
export FOUND_VIA_PATH="$HELPER_ARGS"
shopt -u sourcepath
source helpers.inc 2> /dev/null && export WITHOUT_SOURCEPATH=found || export WITHOUT_SOURCEPATH=missing
shopt -s sourcepath
PATH=${PATH#"$here:"}
export PATH
