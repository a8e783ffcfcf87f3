# Finding commands: command -v for builtins, programs and nothing; type -t;
# command to bypass a function; hash.
myfunc() { echo function; }
export CV_BUILTIN=$(command -v cd) CV_PROG=$(command -v env)
command -v no-such-program-anywhere > /dev/null || export CV_MISSING=absent
export TT_BUILTIN=$(type -t echo) TT_FUNC=$(type -t myfunc) TT_FILE=$(type -t env)
export TT_KEYWORD=$(type -t if) TT_NONE="$(type -t no-such-thing)"
echo() { builtin echo "wrapped: $*"; }
export VIA_FUNC=$(echo x) VIA_COMMAND=$(command echo x)
unset -f echo
if command -v env > /dev/null 2>&1; then export HAVE_ENV=1; fi
hash env 2> /dev/null
export HASH_STATUS=$?
hash -r
export TYPE_P=$(type -P env)
if type myfunc > /dev/null 2>&1; then export TYPE_FOUND=1; fi
