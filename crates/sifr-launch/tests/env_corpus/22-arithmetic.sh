# Arithmetic: $(( )), (( )) with its status, let, operators, bases, and
# variables used by name inside.
a=7 b=3
export SUM=$((a + b)) DIFF=$((a - b)) PROD=$((a * b)) QUOT=$((a / b)) MOD=$((a % b))
export POW=$((2 ** 10)) SHIFT=$((1 << 4)) BITS=$((6 & 3 | 8 ^ 1))
export TERNARY=$((a > b ? a : b)) NEG=$((-a + 2)) NOT=$((!0))
export HEX=$((0x1f)) OCT=$((010)) BASE2=$((2#1011)) BASE36=$((36#z))
export NESTED_ARITH=$(( (a + b) * (a - b) ))
(( c = a * 2 ))
export C=$c
(( 0 ))
export ZERO_STATUS=$?
(( a > 100 )) || export COMPARE_FALSE=1
let "d = a + 1" e=5*2
export D=$d E=$e
let f=0
export LET_ZERO_STATUS=$?
i=0; ((i++)); ((i += 5)); ((++i))
export I=$i
export UNSET_IN_ARITH=$((nothing + 1))
n="3+4"
export INDIRECT_ARITH=$((n * 2))
export COMMA=$((x = 1, y = 2, x + y))
export CMP_CHAIN=$(( 1 < 2 && 2 < 3 ))
export DIV_NEG=$(( -7 / 2 )) MOD_NEG=$(( -7 % 2 ))
