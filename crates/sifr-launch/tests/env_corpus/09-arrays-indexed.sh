# Indexed arrays: literals, +=, sparse indices, slices, [*] joined by IFS, unset elements,
# `read -a`, and the rule that arrays themselves are never exported.
dirs=(/opt/a/bin "/opt/with space/bin" /opt/c/bin)
dirs+=(/opt/d/bin)
dirs[10]=/opt/sparse/bin
export NDIRS=${#dirs[@]}
export DIR1="${dirs[1]}"
export INDICES="${!dirs[*]}"
joined=$(IFS=:; echo "${dirs[*]}")
export JOINED="$joined"
export SLICE="${dirs[*]:1:2}"
for d in "${dirs[@]}"; do PATH="$d:$PATH"; done
export PATH
unset 'dirs[0]'
export AFTER_UNSET="${dirs[*]}"
export FIRST_ELEM="${dirs-none}"
read -r -a words <<< "x y   z"
export WORDS_COUNT=${#words[@]} WORD2=${words[2]}
export PREFIXED="${dirs[*]/#/-L}"
export SUFFIXED="${words[*]/%/.o}"
export ELEM_LEN=${#dirs[1]}
arr=(one two three)
export arr
export ARR_AFTER_EXPORT="${arr[1]}"
empty=()
export EMPTY_COUNT=${#empty[@]}
copy=("${words[@]}" extra)
export COPY="${copy[*]}"
