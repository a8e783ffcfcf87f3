# Known brush difference (KNOWN.md): brace expansion of an export argument.
export BRACE_LITERAL={a,b}
