# The forms of export: several names at once, export of an existing variable, a name
# exported before it has a value (not in the environment), append with +=, export -p used
# as a value, and assignment words before a command (temporary for that command only).
A=1 B=2
export A B C=3
export LATER
LATER_CHECK="${LATER-unset}"
export LATER_CHECK
export DECLARED_EMPTY=
export PATH+=":/opt/appended/bin"
APPEND=base; APPEND+=_more; export APPEND
export MANY1=1 MANY2="two words" MANY3='$literal'
TEMP_FOR_CMD=only_for_env env > /dev/null
export TEMP_AFTER="${TEMP_FOR_CMD-unset}"
TEMP_FOR_BUILTIN=x true
export TEMP_BUILTIN_AFTER="${TEMP_FOR_BUILTIN-unset}"
func_with_env() { export SEEN_IN_FUNC="$TEMP_FOR_FUNC"; }
TEMP_FOR_FUNC=passed func_with_env
export SEED_REEXPORT="$SPACED"
