# Shared by the benchmark scripts (source it).

# host_mirror: print the Debian mirror of the host's apt configuration (deb822 .sources first,
# then one-line sources.list), or $MIRROR when set; fail with a message when there is none.
# Read at run time so no mirror host is ever written into the repository.
host_mirror() {
    local mirror=${MIRROR:-} f
    if [ -z "$mirror" ]; then
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -e "$f" ] || continue
            mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
            [ -n "$mirror" ] && break
        done
    fi
    if [ -z "$mirror" ] && [ -e /etc/apt/sources.list ]; then
        mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$mirror" ] || { echo "no Debian mirror in the apt configuration; set MIRROR" >&2; return 1; }
    echo "$mirror"
}
