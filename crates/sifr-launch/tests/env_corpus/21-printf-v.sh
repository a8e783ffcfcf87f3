# printf -v and printf formats: %s with several arguments (format reused), %q, %d, %05.1f,
# %x, %b, %%, and printf into an array element.
printf -v PV_SIMPLE '%s-%s' a b
printf -v PV_REUSED '[%s]' one two three
printf -v PV_QUOTED '%q' "it's a \$test"
printf -v PV_NUM '%05d|%x|%o|%5.1f' 42 255 8 3.14159
printf -v PV_ESCAPES '%b' 'tab\there\nnewline'
printf -v PV_PERCENT '100%%'
printf -v PV_PAD '%-6s|%6s' left right
printf -v PV_CHAR '%c' word
export PV_SIMPLE PV_REUSED PV_QUOTED PV_NUM PV_ESCAPES PV_PERCENT PV_PAD PV_CHAR
arr=()
printf -v 'arr[2]' '%s' element
export PV_ARRAY="${arr[2]}"
printf -v PV_EMPTY '%s' ''
export PV_EMPTY
export PRINTF_SUBST=$(printf '%s\n' x y)
printf -v PV_QUOTED_SPACES '%q' "a b	c"
export PV_QUOTED_SPACES
