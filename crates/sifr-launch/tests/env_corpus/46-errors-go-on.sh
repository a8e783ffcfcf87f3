# Failing commands do not stop the script: a missing program (127), a failed redirection,
# a bad substitution in a subshell, a syntax-valid but failing eval, false in a condition.
no-such-command-anywhere 2> /dev/null
export MISSING_STATUS=$?
cat /no/such/file 2> /dev/null
export CAT_STATUS=$?
: < /no/such/file 2> /dev/null
export REDIR_STATUS=$?
( eval 'echo ${x' ) 2> /dev/null
export BAD_EVAL_STATUS=$?
/bin/sh -c 'exit 7'
export EXIT7=$?
if ! grep -q nothing-matches /etc/hostname 2> /dev/null; then export GREP_MISS=1; fi
export STILL_RUNNING=yes
