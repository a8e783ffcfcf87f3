# mapfile/readarray from a here-string and a substitution, and getopts in a function that
# parses options as a tool's wrapper does.
mapfile -t lines <<< $'first\nsecond\nthird'
export MAP_N=${#lines[@]} MAP_1=${lines[1]}
readarray -t sorted <<< "$(printf '%s\n' c a b | sort)"
export SORTED="${sorted[*]}"
parse() {
    local OPTIND opt verbose=0 out=
    while getopts "vo:" opt; do
        case $opt in
            v) verbose=1 ;;
            o) out=$OPTARG ;;
            *) return 2 ;;
        esac
    done
    shift $((OPTIND - 1))
    export PARSED="verbose=$verbose out=$out rest=$*"
}
parse -v -o file.txt one two
parse_bad() { local OPTIND opt; getopts "a" opt -z 2> /dev/null; export BAD_OPT="$opt"; }
parse_bad
