# Here-documents: unquoted (expanded), quoted delimiters (literal), <<- (leading tabs
# removed), into read and into variables through cat, and a here-doc fed to a function.
unquoted=$(cat <<EOF
home=$HOME
sum=$((2 + 3))
cmd=$(echo sub)
escaped=\$HOME
EOF
)
export UNQUOTED="$unquoted"
quoted=$(cat <<'EOF'
home=$HOME
sum=$((2 + 3))
back=`echo no`
EOF
)
export QUOTED="$quoted"
dquoted=$(cat <<"END_OF_TEXT"
$APPTAINER_NAME stays literal
END_OF_TEXT
)
export DQUOTED="$dquoted"
stripped=$(cat <<-EOF
	one tab
		two tabs
	path=$PATH
	EOF
)
export STRIPPED="$stripped"
read -r FIRST_LINE <<EOF
first line of $APPTAINER_NAME
second line
EOF
export FIRST_LINE
count_lines() { local n=0; while IFS= read -r _; do n=$((n + 1)); done; echo "$n"; }
export HEREDOC_LINES=$(count_lines <<EOF
a
b

d
EOF
)
eval "$(cat <<'EOF'
export FROM_HEREDOC_EVAL="eval'd"
EOF
)"
while IFS='=' read -r key value; do
    [ -n "$key" ] && export "HD_$key"="$value"
done <<EOF
ONE=1
TWO=two words
EOF
export HD_TWO_VIA_VAR="$(printf '%s' "${HD_TWO:-missing}")"
