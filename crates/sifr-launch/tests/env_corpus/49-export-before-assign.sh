# A name exported before it has a value: not in the environment until a later assignment
# of any kind (plain, :=, +=, read, printf -v), which is then exported.
export P_PLAIN; P_PLAIN=
export P_DEFAULT; : "${P_DEFAULT:=x}"
export P_EMPTY_DEFAULT; : "${P_EMPTY_DEFAULT:=}"
export P_APPEND; P_APPEND+=more
export P_READ; read -r P_READ <<< "read value"
export P_PRINTF; printf -v P_PRINTF '%s' printed
export Q; Q=x
export CHILD_SEES="$(env | grep '^Q=')" DECLARED="$(declare -p Q)"
export NEVER_ASSIGNED
export -n NOT_EXPORTED_EITHER
f() { P_IN_FUNCTION=from_function; }
export P_IN_FUNCTION
f
