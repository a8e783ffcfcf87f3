# Known brush difference (KNOWN.md): aliases are not expanded in a non-interactive shell
# (expand_aliases is off; brush expands them whatever the option says).
alias setflag='export ALIAS_EXPANDED=yes'
setflag 2> /dev/null
export ALIAS_EXPANDED=${ALIAS_EXPANDED:-no}
