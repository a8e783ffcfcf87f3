# Case modification: ^ ^^ , ,, with and without patterns, on words, arrays and the seed.
s="hello World 123"
export U1=${s^} UA=${s^^} L1=${s,} LA=${s,,}
S="HELLO"
export L1_UPPER=${S,} LA_UPPER=${S,,}
export UPAT=${s^^[lo]} LPAT=${S,,[HL]}
name=openmpi
export MOD_ROOT_NAME="${name^^}_ROOT"
arr=(one two)
export ARR_UPPER="${arr[*]^}"
export SEED_UPPER="${APPTAINER_NAME^^}"
export EMPTY_UPPER="${nothing^^}"
