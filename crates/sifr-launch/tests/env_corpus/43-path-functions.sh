# Path manipulation functions of the kind site scripts define: prepend/append without
# duplicates, remove an entry, with IFS splitting into an array and joining back.
path_remove() {
    local var=$1 entry=$2 out= d
    local IFS=:
    for d in ${!var}; do
        [ "$d" = "$entry" ] && continue
        out="${out:+$out:}$d"
    done
    printf -v "$var" '%s' "$out"
}
path_prepend() {
    local var=$1 entry=$2
    path_remove "$var" "$entry"
    printf -v "$var" '%s' "$entry${!var:+:${!var}}"
    export "${var?}"
}
path_append() {
    local var=$1 entry=$2
    path_remove "$var" "$entry"
    printf -v "$var" '%s' "${!var:+${!var}:}$entry"
    export "${var?}"
}
path_prepend PATH /opt/site/bin
path_prepend PATH /usr/bin
path_append PATH /opt/tail/bin
path_append PATH /opt/tail/bin
path_prepend LD_LIBRARY_PATH /opt/site/lib
path_remove LD_LIBRARY_PATH /usr/local/lib
path_append NEW_PATH_VAR /first
path_append NEW_PATH_VAR /second
path_prepend MANPATH /opt/site/man
