# Substrings and lengths: ${x:offset}, ${x:offset:length}, negative offsets and lengths,
# arithmetic in offsets, ${#x} of plain, empty, multibyte-free and seed values.
s=0123456789
export O2=${s:2} O2L3=${s:2:3} NEG=${s: -3} NEG_PAREN=${s:(-3):2}
export BEYOND=${s:20} ZERO_LEN=${s:3:0} ARITH_OFF=${s:1+1:2*2}
n=4
export VAR_OFF=${s:n} VAR_OFF_DOLLAR=${s:$n:1}
export LEN=${#s} EMPTY_LEN=${#nothing} SEED_LEN=${#SPACED} ML_LEN=${#MULTILINE}
export PATH_HEAD=${PATH:0:14}
arr=(a b c d e)
export ARR_SLICE="${arr[*]:1:3}" ARR_NEG="${arr[*]: -2}" ARR_LEN=${#arr[*]}
export ARR_ELEM_LEN=${#arr[0]}
