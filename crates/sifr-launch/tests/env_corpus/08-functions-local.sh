# Functions, `local` and bash's dynamic scoping.
counter=0
bump() { counter=$((counter + 1)); }
bump; bump; bump
export COUNTER=$counter

outer() { local v=outer; inner; export SEEN_IN_OUTER=$v; }
inner() { v=changed-by-inner; export SEEN_IN_INNER=$v; }
v=global
outer
export V_AFTER=$v

shadow() { local HOME=/elsewhere; export SHADOW_HOME=$HOME; }
shadow
export HOME_AFTER=$HOME

fact() {
    local n=$1
    if (( n <= 1 )); then echo 1; else echo $(( n * $(fact $((n - 1))) )); fi
}
export FACT6=$(fact 6)

function kw_style {
    local -a parts=("$@")
    local IFS=+
    echo "${parts[*]}"
}
export KW_STYLE=$(kw_style a b c)

make_export() { local name=$1; shift; export "$name=$*"; }
make_export MADE_BY_FUNCTION x y z

status_of() { return "$1"; }
status_of 3
export LAST_STATUS=$?

local_unset() { local SPACED; unset SPACED; export INSIDE="${SPACED-unset-inside}"; }
local_unset
export OUTSIDE_SPACED="$SPACED"
