# Known brush difference (KNOWN.md): declare -n namerefs.
declare -n ref=APPTAINER_CONTAINER
export VIA_NAMEREF="$ref"
