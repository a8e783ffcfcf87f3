# Known brush difference (KNOWN.md): declare -i evaluates assigned values as arithmetic.
declare -i n=6*7
export N=$n
