# Quoting corner cases: nested quotes, escaped dollars and backticks, backslash-newline
# continuation, empty strings, values holding = and #, adjacent quoted parts, and quotes
# inside ${...} words.
export NESTED_QUOTES="outer 'single inside' \"double inside\""
export SINGLE_IN_DOUBLE="it's"
export DOUBLE_IN_SINGLE='say "x"'
export ESCAPED_DOLLAR="\$HOME" ESCAPED_BACKTICK="\`cmd\`" ESCAPED_BS="a\\b" KEPT_BS="a\qb"
export CONTINUED="first \
second" CONTINUED_BARE=one\
two
export EMPTY_DQ="" EMPTY_SQ='' EMPTY_BARE=
export WITH_EQUALS=a=b=c OPTS="--flag=value --other=x"
export HASH_IN=a#b NOT_COMMENT="x # y" # a real comment
export ADJACENT='a'"b"c'd'"$HOME"e
export UNQUOTED_ESCAPES=a\ b\"c\'d
export BRACE_QUOTES="${nothing:-"inner \"quoted\" word"}"
export SQ_IN_BRACE="${nothing:-'single'}"
export SQ_IN_BRACE_UNQUOTED=${nothing:-'single'}
export TRAILING_BS='ends with \'
export DOLLAR_AT_END="cost: 5$" LONE_DOLLAR=$
export SEMI="a;b" AMP="a&b" PIPE="a|b" STAR="*" QMARK="?" BRACKETS="[abc]"
export EXCLAIM="hello!" HISTORY_LIKE="!!"
