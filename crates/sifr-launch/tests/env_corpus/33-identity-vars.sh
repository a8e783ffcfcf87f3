# The identity variables the shell provides: $UID, $EUID, $HOSTNAME (compared with the
# commands that report them), and $HOSTTYPE/$OSTYPE-free use in paths.
export MY_UID=$UID MY_EUID=$EUID MY_HOST=$HOSTNAME
[ "$UID" = "$(id -u)" ] && export UID_MATCHES_ID=yes
[ "$HOSTNAME" = "$(uname -n)" ] && export HOSTNAME_MATCHES=yes
if [ "$EUID" -eq 0 ]; then export RUN_AS=root; else export RUN_AS=user; fi
export USER_CACHE="/tmp/cache-$UID"
export SCRATCH="/scratch/${HOSTNAME%%.*}/$EUID"
UID=12345 2> /dev/null
export UID_AFTER_ASSIGN=$UID
