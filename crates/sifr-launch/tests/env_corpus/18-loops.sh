# Loops: for over words and globs-free lists, C-style for, while and until, break and
# continue (with levels), and loop variables left behind.
for d in /opt/x /opt/y /opt/z; do
    case $d in */y) continue ;; esac
    LOOP_PATH="${LOOP_PATH:+$LOOP_PATH:}$d"
done
export LOOP_PATH LAST_D=$d
for ((i = 0; i < 5; i++)); do
    (( i == 3 )) && break
    CSTYLE+="$i"
done
export CSTYLE LAST_I=$i
n=0
while [ $n -lt 10 ]; do n=$((n + 3)); done
export WHILE_N=$n
m=5
until (( m <= 0 )); do m=$((m - 2)); done
export UNTIL_M=$m
for a in 1 2 3; do
    for b in x y z; do
        [ "$b" = y ] && continue 2
        [ "$a" = 3 ] && break 2
        PAIRS="${PAIRS}$a$b "
    done
done
export PAIRS
for w in $SPACED; do WORDS="${WORDS}[$w]"; done
export WORDS
for empty in; do export NEVER_SET=1; done
while false; do :; done
export WHILE_STATUS=$?
k=0
while :; do k=$((k+1)); if [ $k -ge 4 ]; then break; fi; done
export BREAK_K=$k
