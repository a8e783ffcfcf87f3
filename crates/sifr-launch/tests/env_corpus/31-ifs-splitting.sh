# Word splitting with IFS: default, custom separators, whitespace and non-whitespace IFS
# (without empty fields: see 80-known-ifs-empty-fields.sh), IFS unset, and splitting of unquoted expansions in for and arrays.
IFS=,
set -- $(printf 'x,y,z')
export N_COMMA=$# COMMA_JOINED="$*"
unset IFS
set -- $SPACED
export N_DEFAULT=$# F2=$2
IFS=
set -- $SPACED
export N_EMPTY_IFS=$#
unset IFS
old_ifs=$IFS
IFS=:; dirs=($PATH); IFS=$old_ifs
export N_PATH_DIRS=${#dirs[@]} FIRST_PATH_DIR=${dirs[0]}
for d in $(echo "$LD_LIBRARY_PATH" | tr : ' '); do LIBS="${LIBS}<$d>"; done
export LIBS
IFS=$'\n'
set -- $MULTILINE
export N_LINES=$# LINE2=$2
unset IFS
x="  padded  "
set -- $x
export UNPADDED="[$1]"
export NO_SPLIT_IN_ASSIGN=$SPACED
