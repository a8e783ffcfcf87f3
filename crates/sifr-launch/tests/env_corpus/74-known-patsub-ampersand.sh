# Known brush difference (KNOWN.md): bash 5.2 (patsub_replacement, on by default)
# replaces an unquoted & in the replacement of ${x/pattern/replacement} with the match.
s="hello world"
export AMP_REP="${s/world/<&>}"
