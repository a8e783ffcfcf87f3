# Known brush difference (KNOWN.md): an unquoted ${x:-word} in an export argument is not
# split, so the spaces of the word stay.
export DEFAULT_WITH_SPACES=${unset_v:-a  b}
