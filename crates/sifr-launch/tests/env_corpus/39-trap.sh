# trap: handlers set but not fired while sourcing (signals never sent), listed by trap -p,
# and removed; a RETURN-free script.
trap 'export FIRED_USR1=1' USR1
trap 'echo hup' HUP
export TRAP_LIST="$(trap -p USR1)"
trap - HUP
export TRAP_HUP_AFTER="$(trap -p HUP)"
cleanup() { rm -f /tmp/never-created-by-sifr; }
trap cleanup INT TERM
trap '' QUIT
export TRAP_IGNORED="$(trap -p QUIT)"
export FIRED_USR1="${FIRED_USR1-no}"
