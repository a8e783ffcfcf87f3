# declare and its relatives: -x, -l, -u, -r with -x, typeset, readonly (exported and
# not), declare -g from a function, declare -p output used as a value, export -n.
declare -x DX=exported_by_declare
declare -l DL=MiXeD
declare -u DU=MiXeD
export DL DU
declare -rx DRX=read_only_exported
readonly RO_PLAIN=not_exported
readonly RO_EXP=ro
export RO_EXP
export READONLY_LATER=x
readonly READONLY_LATER
RO_PLAIN=changed 2> /dev/null
typeset -x TS=typeset_value
set_global() { declare -g GLOBAL_FROM_FUNC=yes; declare -gx GLOBAL_EXPORTED=from_func; }
set_global
export GLOBAL_FROM_FUNC
local_scope() { declare LOCAL_BY_DECLARE=inside; export SEEN=$LOCAL_BY_DECLARE; }
local_scope
export LOCAL_AFTER="${LOCAL_BY_DECLARE-gone}"
export DEMOTED=1
export -n DEMOTED
declare +x LD_LIBRARY_PATH
export RO_STATUS=$(readonly RO_PLAIN=again 2>/dev/null; echo $?)
declare -x NO_VALUE_X
export DP="$(declare -p DX)"
