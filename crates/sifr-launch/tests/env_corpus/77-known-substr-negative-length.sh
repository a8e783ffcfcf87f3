# Known brush difference (KNOWN.md): ${x:offset:length} with a negative length counts
# from the end.
s=0123456789
export NEG_LEN=${s:2:-2}
