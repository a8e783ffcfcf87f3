# Shell options images set in their environment scripts: set -u with guarded expansions,
# set -e around commands that cannot fail, set -o and $- as values, and each turned off
# again.
set -u
export GUARDED="${NOT_SET_ANYWHERE:-default}" ALT="${NOT_SET_ANYWHERE:+alt}"
set +u
set -e
true
export AFTER_SET_E=1
false || export OR_UNDER_SET_E=1
if false; then :; fi
export IF_UNDER_SET_E=1
set +e
export FLAGS_HAVE_H=$(case $- in (*h*) echo yes ;; (*) echo no ;; esac)
set -o noclobber
export NOCLOBBER=$(set -o | grep -E '^noclobber[[:space:]]+on' > /dev/null && echo on || echo off)
set +o noclobber
set -a
AUTO_EXPORTED=by_allexport
AUTO_TWO=2
set +a
NOT_AUTO=after_allexport
