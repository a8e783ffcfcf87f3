# Here-strings and read: -r, IFS splitting into several names, the rest into the last one,
# -a, -d, defaults when input runs out, and backslashes with and without -r.
read -r host port rest <<< "example.org 8080 and the rest"
export HOST_R=$host PORT_R=$port REST_R="$rest"
IFS=: read -r user _ uid gid <<< "root:x:0:0:root:/root:/bin/bash"
export USER_R=$user UID_R=$uid GID_R=$gid
read -r -a parts <<< "  leading and   trailing  "
export PARTS_N=${#parts[@]} PARTS_0=${parts[0]}
IFS= read -r keep <<< "  spaces kept  "
export KEEP_SPACES="$keep"
read -r raw <<< 'back\slash'
read cooked <<< 'back\slash'
export RAW="$raw" COOKED="$cooked"
read -r one two three <<< "only"
export MISSING_TWO="${two-unset}" MISSING_THREE="${three-unset}"
read -r -d , first_field <<< "a,b,c"
export FIRST_FIELD=$first_field
read -r from_var <<< "$MULTILINE"
export FROM_MULTILINE="$from_var"
read -r <<< "into reply"
export REPLY_VAR="$REPLY"
tr_out=$(tr a-z A-Z <<< "upper me")
export TR_OUT=$tr_out
read -r x <<< ""
export EMPTY_READ_STATUS=$? EMPTY_READ="$x"
