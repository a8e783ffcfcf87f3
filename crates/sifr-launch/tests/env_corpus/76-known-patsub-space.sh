# Known brush difference (KNOWN.md): a replacement of several spaces in a quoted ${x/ /   }.
s="hello world"
export SPACES_REP="${s/ /   }"
