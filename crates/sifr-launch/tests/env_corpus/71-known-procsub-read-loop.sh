# Known brush difference (KNOWN.md): a while-read loop fed by a process substitution.
while IFS= read -r line; do
    LINES="${LINES}[$line]"
done < <(printf "%s\n" one two)
export LINES
