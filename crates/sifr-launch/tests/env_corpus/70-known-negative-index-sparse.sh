# Known brush difference (KNOWN.md): ${a[-1]} of a sparse array is its last element.
a=(x y); a[10]=last
export LAST="${a[-1]}"
