# Subshells do not leak, groups do; a pipeline into while-read runs in a subshell (its
# variables are lost) unless captured; exit in a subshell; $BASH_SUBSHELL.
( export SUBSHELL_ONLY=1; LEAK=1; cd / )
export LEAK="${LEAK-none}" PWD_AFTER_SUBSHELL_CD_SAME=$([ "$PWD" = "$(pwd)" ] && echo yes)
{ export IN_GROUP=1; G=group; }
export G
( exit 3 )
export SUBSHELL_STATUS=$?
count=0
printf '%s\n' a b c | while read -r line; do count=$((count + 1)); done
export PIPE_COUNT=$count
count=$(printf '%s\n' a b c | { n=0; while read -r line; do n=$((n + 1)); done; echo $n; })
export CAPTURED_COUNT=$count
export NESTED_LEVEL=$( ( echo $BASH_SUBSHELL ) )
export TOP_LEVEL=$BASH_SUBSHELL
{ echo x; echo y; } > /dev/null && export GROUP_REDIRECT=1
x=1; (x=2; export X_INNER=$x); export X_OUTER=$x
f() ( export FROM_SUBSHELL_FUNC=1; echo body )
export SUBSHELL_FUNC_OUT=$(f)
f > /dev/null
export FROM_SUBSHELL_FUNC="${FROM_SUBSHELL_FUNC-not leaked}"
printf 'k=v\n' | { IFS== read -r k v; export PIPE_GROUP_K=$k; }
export PIPE_GROUP_K="${PIPE_GROUP_K-lost}"
