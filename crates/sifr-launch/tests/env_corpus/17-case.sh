# case: alternatives, character classes, ?, quoted patterns, variables as patterns, the
# ;& and ;;& fall-throughs, and no match at all.
classify() {
    case "$1" in
        *.tar.gz|*.tgz) echo tarball ;;
        [0-9]*) echo number ;;
        ?) echo single ;;
        "literal *") echo literal ;;
        *[[:space:]]*) echo spaced ;;
        x86_64|amd64) echo x86 ;;
        *) echo other ;;
    esac
}
export C1=$(classify data.tgz) C2=$(classify 42abc) C3=$(classify z)
export C4=$(classify "literal *") C5=$(classify "a b") C6=$(classify amd64) C7=$(classify "literal x")
pat='*.sif'
case $APPTAINER_NAME in $pat) export VAR_PATTERN=match ;; esac
case $APPTAINER_NAME in "$pat") export QUOTED_VAR_PATTERN=match ;; *) export QUOTED_VAR_PATTERN=literal ;; esac
case x in
    x) FALL="a" ;&
    y) FALL="${FALL}b" ;;
    z) FALL="${FALL}c" ;;
esac
export FALL
case ab in
    a*) CONT=1 ;;&
    *b) CONT="${CONT}2" ;;&
    c*) CONT="${CONT}3" ;;
    *) CONT="${CONT}4" ;;
esac
export CONT
case nomatch in a) export NEVER=1 ;; esac
export CASE_STATUS=$?
case "$(uname -m)" in
    x86_64) export ARCH_TRIPLE=x86_64-linux-gnu ;;
    aarch64) export ARCH_TRIPLE=aarch64-linux-gnu ;;
    *) export ARCH_TRIPLE=unknown ;;
esac
