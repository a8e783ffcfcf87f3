# eval: of literals, of built strings, in loops, of printed shell code, double evaluation.
eval 'export EVAL_SIMPLE=1'
name=DYNAMIC_VAR
eval "export $name=\"value with spaces\""
eval "export ${name}_2=\$HOME"
for i in 1 2 3; do eval "export SLOT_$i=slot$i"; done
cmd='export QUOTED='"'"'single "and" double'"'"
eval "$cmd"
eval "$(printf 'export %s=%s\n' EV_A 1 EV_B 2)"
x='$HOME'
eval "export DOUBLE_EVAL=$x"
eval "export ESCAPED=\\\$HOME"
eval export MULTI_ARG=a b 2>/dev/null
eval 'f() { export FROM_EVAL_FUNC=yes; }'
f
eval "export CODE=\$(( 6 * 7 ))"
eval ''
export EMPTY_EVAL_STATUS=$?
eval 'false'
export FALSE_EVAL_STATUS=$?
