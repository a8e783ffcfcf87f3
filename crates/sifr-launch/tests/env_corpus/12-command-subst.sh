# Command substitution: $(...), nested, backticks (nested with escapes), trailing newlines
# removed, exit status, subshell isolation.
export KERNEL=$(uname -s)
export NESTED="$(echo "outer $(echo "inner $(echo deepest)")")"
export BACKTICK=`echo back tick`
export BACKTICK_NESTED=`echo a \`echo b\``
export TRAILING_NL="$(printf 'x\n\n\n')"
export LEADING_NL="$(printf '\n\nx')"
export CMD_WITH_QUOTES="$(echo "it's" 'a "test"')"
export ARCH_DIR="/opt/$(uname -m)/lib"
export EMPTY_SUBST="$(true)"
export STATUS_AFTER=$(false; echo $?)
export SUBSHELL_VAR=$(x=5; echo $((x * 2)))
x=outer; : "$(x=inner)"
export X_AFTER_SUBST=$x
lines=$(printf '%s\n' one two three)
export LINE_COUNT=$(printf '%s\n' "$lines" | wc -l | tr -d ' ')
export UNQUOTED_SUBST=$(echo a   b)
export SPLIT_IN_ECHO="$(echo $(printf 'a   b'))"
export PAREN_IN_SUBST="$(echo '(' ")")"
export DOLLAR_PAREN_ARITH="$( (echo subshell) )"
greeting=$(cat <<EOT
hello from a heredoc in a substitution
EOT
)
export GREETING="$greeting"
