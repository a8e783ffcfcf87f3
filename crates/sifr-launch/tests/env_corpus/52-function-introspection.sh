# What functions know about themselves and their callers: FUNCNAME, BASH_SOURCE inside a
# function, $# and "$@" of the function, local -x, declare -f/-F, and recursion depth.
where() { export WHERE_FUNC=${FUNCNAME[0]} CALLER_FUNC=${FUNCNAME[1]:-top} DEPTH=${#FUNCNAME[@]}; }
outer() { where; }
outer
export SRC_BASENAME=$(basename "${BASH_SOURCE[0]}")
count_args() { export FN_ARGC=$# FN_ARGS="$*" FN_FIRST="${1-}"; }
count_args "a b" c ""
with_local_x() { local -x LOCAL_EXPORTED=inside; export CHILD_SAW=$(env | grep -c '^LOCAL_EXPORTED='); }
with_local_x
export LOCAL_X_AFTER="${LOCAL_EXPORTED-gone}"
export HAS_OUTER=$(declare -F outer)
depth() { if (( $1 > 0 )); then depth $(( $1 - 1 )); else export MAX_DEPTH=${#FUNCNAME[@]}; fi; }
depth 5
