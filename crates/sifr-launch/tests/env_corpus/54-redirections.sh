# Redirections: a group to a temporary file, appending, reading it back with < and through
# a descriptor opened with exec, then closed.
tmp=$(mktemp)
{ echo one; echo two; } > "$tmp"
echo three >> "$tmp"
export FILE_LINES=$(wc -l < "$tmp" | tr -d ' ')
read -r first_line < "$tmp"
export FIRST_LINE=$first_line
exec 3< "$tmp"
read -r via_fd <&3
exec 3<&-
export VIA_FD=$via_fd
rm -f "$tmp"
