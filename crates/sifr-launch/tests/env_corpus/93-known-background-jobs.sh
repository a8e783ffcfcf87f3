# Known brush difference (KNOWN.md): $! after a background job, and wait for its status.
( exit 4 ) &
bg_pid=$!
wait "$bg_pid"
export BG_EXIT=$? HAVE_BG_PID=$([ -n "$bg_pid" ] && echo yes)
