# Known brush difference (KNOWN.md): ${#x} counts characters, not bytes, in a UTF-8 locale.
v=$'\u00e9t\u00e9'
export LEN=${#v}
