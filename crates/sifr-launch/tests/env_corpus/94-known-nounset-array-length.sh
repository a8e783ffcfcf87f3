# Known brush difference (KNOWN.md): under set -u, the length of an unset array is an
# "unbound variable" error and the command is not run.
set -u
export COUNT_UNSET=${#NOT_SET_ARRAY[@]} 2> /dev/null
set +u
export AFTER=1
