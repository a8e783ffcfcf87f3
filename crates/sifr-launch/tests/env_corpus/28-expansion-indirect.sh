# Indirection and transformations: ${!name}, ${!prefix*}, ${!prefix@}, ${x@Q}, ${x@E},
# and ${!name} of an array element.
target=APPTAINER_NAME
export INDIRECT=${!target}
export INDIRECT_DEFAULT=${!nothing_here:-fallback} 2>/dev/null
unset nothing_here
export APPTAINER_EXTRA=1
export PREFIX_STAR="${!APPTAINER_*}"
for v in "${!APPTAINER_@}"; do
    export "SINGULARITY_${v#APPTAINER_}=${!v}"
done
q="it's a \"test\" \$HOME"
export AT_Q="${q@Q}" SPACED_Q="${SPACED@Q}" EMPTY_Q="${nothing@Q}"
e='tab\there'
export AT_E="${e@E}"
idx=2
arr=(zero one two)
name="arr[$idx]"
export INDIRECT_ARRAY=${!name}
