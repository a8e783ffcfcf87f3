# Known brush difference (KNOWN.md): \$ in the replacement of ${x/pattern/replacement}.
s="hello world"
export DOLLAR_REP="${s/world/\$HOME}"
