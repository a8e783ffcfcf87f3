# test and [ ]: strings, numbers, files, -a/-o, negation; && and || chains and their
# statuses, as environment scripts guard optional directories.
[ -d /opt/does-not-exist ] && export PATH="/opt/does-not-exist/bin:$PATH"
[ -d / ] && export ROOT_IS_DIR=1
[ -f /etc/passwd ] && [ -r /etc/passwd ] && export PASSWD_READABLE=1
[ -x /bin/sh ] || export NO_SH=1
[ -e alpha.txt ] && export CWD_FILE=1
[ -s alpha.txt ] && export NON_EMPTY=1
[ -z "" ] && [ -n "x" ] && export STRINGS=1
[ "a" = "a" ] && [ "a" != "b" ] && export EQUALS=1
[ 2 -lt 10 ] && [ 10 -ge 10 ] && [ 3 -ne 4 ] && export NUMBERS=1
[ "2" \< "10" ] || export STRING_ORDER=lexical
test -n "$HOME" -a -n "$PATH" && export TEST_A=1
test -z "$HOME" -o -n "$PATH" && export TEST_O=1
! test -d /nonexistent && export NEGATED=1
[ ! -L / ] && export NOT_SYMLINK=1
true && false || export CHAIN1=fell_through
false && export NEVER=1 || export CHAIN2=or
{ false || true; } && export CHAIN3=grouped
export STATUS_TEST=$( [ 1 -eq 2 ]; echo $? )
[ -d /usr/local/cuda ] && export CUDA_PATH=/usr/local/cuda || export CUDA_PATH=none
[ "$APPTAINER_NAME" ] && export NONEMPTY_SHORT=1
[ alpha.txt -nt /etc/passwd ] && export NEWER=1
[ -t 0 ] || export STDIN_NOT_TTY=1
