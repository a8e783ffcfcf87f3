# Pattern substitution: / // /# /% with globs, empty replacements, slashes and special
# characters, anchored patterns and & (bash 5.2's patsub_replacement).
p=/usr/local/bin:/usr/bin:/usr/local/bin:/bin
export FIRST=${p/local/LOCAL} ALL=${p//local/LOCAL}
export DELETE_ALL=${p//\/usr} DELETE_FIRST=${p/:}
export ANCHOR_START=${p/#\/usr/\/opt} ANCHOR_END=${p/%bin/sbin}
export NO_ANCHOR_MATCH=${p/#bin/x}
export COLONS_TO_SPACES="${p//:/ }"
export GLOB_REPLACE=${p//\/usr\/*\/bin/X}
s="hello world"
export QUESTION=${s//o?/0} CLASS=${s//[aeiou]/_}
export QUOTED_PAT="${s/"o w"/-}" EMPTY_PAT="${s//}"
pat=l rep=L
export VAR_PAT_REP=${s//$pat/$rep}
export SLASH_IN_REP="${s/world/a\/b}"
export AMP_QUOTED="${s/world/"<&>"}"
export AMP_ESCAPED="${s/world/<\&>}"
export LEADING_SLASHES=${p//\//|}
