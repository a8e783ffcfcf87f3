# unset of variables (exported or not, from the seed too), unset -v, unset -f, and a name
# exported, unset and set again (no longer exported).
export TEMP_A=1 TEMP_B=2 TEMP_C=3
unset TEMP_A
unset -v TEMP_B
unset SINGULARITY_CONTAINER
helper() { :; }
unset -f helper
export HELPER_TYPE=$(type -t helper || echo gone)
unset NOT_SET_AT_ALL
export UNSET_STATUS=$?
KEEP=1; export KEEP; unset KEEP; KEEP=2
export LATER=${KEEP}
same() { :; }
same=variable
unset same
export SAME_FUNC=$(type -t same)
unset -f same
export SAME_AFTER=$(type -t same || echo gone)
