# A while-read loop fed by a process substitution (a blocking builtin and the task feeding it).
while IFS= read -r line; do
    LINES="${LINES}[$line]"
done < <(printf "%s\n" one two)
export LINES
