# Associative arrays: literal, element assignment, keys with spaces, counts, lookups, and
# iteration in a sorted order (bash's own key order is unspecified).
declare -A tools=([gcc]=/opt/gcc [cuda]=/usr/local/cuda ["with space"]=/opt/ws)
tools[mpi]=/opt/openmpi
tools+=([hdf5]=/opt/hdf5)
export CUDA_HOME=${tools[cuda]}
export SPACE_TOOL="${tools[with space]}"
export NTOOLS=${#tools[@]}
keys=$(printf '%s\n' "${!tools[@]}" | sort | tr '\n' ,)
export TOOL_KEYS=$keys
while IFS= read -r k; do
    TOOL_PATH="${TOOL_PATH:+$TOOL_PATH:}${tools[$k]}/bin"
done <<< "$(printf '%s\n' "${!tools[@]}" | sort)"
export TOOL_PATH
unset 'tools[gcc]'
export NTOOLS_AFTER=${#tools[@]}
declare -A empty_map
export EMPTY_MAP_COUNT=${#empty_map[@]}
key=cuda
export BY_VAR_KEY=${tools[$key]}
