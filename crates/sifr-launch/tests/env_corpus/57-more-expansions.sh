# Less common expansions and tests: ${x@U} ${x@L} ${x@u}, [[ -v name ]], test -v, ${arr[@]@Q},
# arithmetic bases and assignment operators, string repetition through printf.
s="mixed Case"
export AT_U="${s@U}" AT_L="${s@L}" AT_LOWER_FIRST="${s@u}"
set_but_empty=
[[ -v set_but_empty ]] && export V_SET_EMPTY=1
[[ -v never_set_at_all ]] || export V_UNSET=1
test -v HOME && export TEST_V_HOME=1
arr=("a b" "c'd")
export ARR_QUOTED="${arr[*]@Q}"
export HEX_FF=$((16#ff)) SHIFTED=$(( 1 << 10 )) 
x=10; (( x *= 3, x -= 5, x /= 5 ))
export X=$x
export DASHES=$(printf -- '-%.0s' 1 2 3 4 5)
export PADDED=$(printf '%-8s|' name)
[ "abc" == "abc" ] && export BRACKET_DOUBLE_EQ=1
[[ $((2 + 2)) -eq 4 && "x" < "y" ]] && export MIXED_TEST=1
export NESTED_BRACES="${HOME:+${HOME%/*}/${APPTAINER_NAME%%_*}}"
export DOLLAR_SINGLE="$'\t'" 
