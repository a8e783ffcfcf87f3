# true, false and : with their statuses, : with arguments and expansions (side effects
# only), and the status of the last command of a sequence.
true
export TRUE_STATUS=$?
false
export FALSE_STATUS=$?
: ignored arguments "$HOME" $(echo and a substitution)
export COLON_STATUS=$?
: ${COLON_ASSIGN:=from_colon}
export COLON_ASSIGN
! true
export NEGATED_TRUE=$?
false; true
export SEQ_STATUS=$?
true | false
export PIPE_STATUS=$? PIPESTATUS_ALL="${PIPESTATUS[*]}"
set -o pipefail
false | true
export PIPEFAIL_STATUS=$?
set +o pipefail
