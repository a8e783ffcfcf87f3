# Known brush difference (KNOWN.md): ${x/pattern/string} of an unset name is empty.
unset LIBDIR
export LDFLAGS_PART="${LIBDIR/#/-L}"
