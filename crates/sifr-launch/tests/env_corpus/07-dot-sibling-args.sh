# `.` of a sibling helper with arguments, which the helper sees as $1...; the caller's
# positional parameters come back afterwards.
set -- outer1 outer2
. "$(dirname "${BASH_SOURCE[0]}")/helpers.inc" one "two words" three
export INNER_ARGS="$HELPER_ARGS"
export OUTER_ARGS="$#:$*"
if . "$(dirname "${BASH_SOURCE[0]}")/no-such-helper.inc" 2> /dev/null; then
    export MISSING_SOURCE=ok
else
    export MISSING_SOURCE=failed
fi
