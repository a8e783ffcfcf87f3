# Known brush difference (KNOWN.md): an anchored pattern (${x/%pattern/}, ${x#[class]}) on
# a value that holds a newline.
v=$'ab\ncd' w=$'\na'
export SUB_END="${v/%?/X}" CLASS_PREFIX="${w#[a-c]}" NO_LAST="${v%?}" NO_FIRST="${v#?}"
