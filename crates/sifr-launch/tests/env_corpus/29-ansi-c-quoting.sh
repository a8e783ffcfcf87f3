# ANSI-C quoting $'...': escapes for newline, tab, quotes, backslash, octal, hex, unicode,
# control characters, and $'...' next to other quoting.
export NL=$'a\nb' TAB=$'a\tb' SQ=$'it\'s' DQ=$'say "hi"' BS=$'back\\slash'
export OCTAL=$'\101\102' HEX=$'\x41\x42' UNI=$'\u00e9t\u00e9' ESC_E=$'\e[0m'
export MIXED='single'$'\n'"double $HOME"
export DOLLAR_IN=$'$HOME stays' QMARK=$'\?' BELL=$'\a' CTRL=$'\cA'
export IN_DQ="$'not ansi'"
IFS=$'\n' read -r -d '' -a lines <<< $'l1\nl2\nl3'
export LINE_COUNT=${#lines[@]}
export EMPTY_ANSI=$''
