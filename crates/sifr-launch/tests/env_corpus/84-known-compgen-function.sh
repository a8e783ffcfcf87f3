# Known brush difference (KNOWN.md): compgen -A function PREFIX lists only the functions
# whose names start with PREFIX.
rc_one() { :; }
other() { :; }
export MATCHES="$(compgen -A function rc_)"
