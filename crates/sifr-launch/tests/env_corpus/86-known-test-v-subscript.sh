# Known brush difference (KNOWN.md): [[ -v name[key] ]] tests an element of an array.
declare -A tools=([gcc]=/opt/gcc)
[[ -v tools[gcc] ]] && export HAS_GCC=yes
