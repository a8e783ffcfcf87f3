# set -- and the positional parameters: $#, "$*", "$@", shift, IFS joining.
set -- alpha "beta gamma" delta
export NARGS=$#
export ARGS_STAR="$*"
export ARGS_AT="$@"
export SECOND="$2"
for a in "$@"; do list="${list:+$list,}$a"; done
export LIST=$list
for a; do count=$((${count:-0} + 1)); done
export IMPLICIT_FOR=$count
shift
export AFTER_SHIFT="$1|$#"
IFS=-; export JOIN_IFS="$*"; unset IFS
export LAST_ARG="${!#}"
export ALL_BUT_FIRST="${*:2}"
set -- "${@/#/pre-}"
export REWRITTEN="$*"
set --
export NONE="$#"
