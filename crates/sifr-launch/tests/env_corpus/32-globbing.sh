# Pathname expansion in the working directory (alpha.txt beta.txt gamma.conf .hidden
# subdir): globs, no match left as is, set -f and set +f, nullglob, dotglob, and globs not
# expanded in assignments or quotes.
txt=(*.txt)
export TXT="${txt[*]}"
all=(*)
export ALL="${all[*]}"
export NO_GLOB_IN_ASSIGN=*.txt
export QUOTED="*.txt"
nomatch=(*.nothing)
export NOMATCH="${nomatch[*]}"
set -f
noglob=(*.txt)
export NOGLOB="${noglob[*]}"
set +f
shopt -s nullglob
null=(*.nothing)
export NULLGLOB_COUNT=${#null[@]}
shopt -u nullglob
shopt -s dotglob
dots=(*)
export DOTGLOB="${dots[*]}"
shopt -u dotglob
classes=([ab]*)
export CLASSES="${classes[*]}"
question=(?????.txt)
export QUESTION="${question[*]}"
for f in *.conf; do export CONF_FILE=$f; done
export ECHO_GLOB=$(echo *.t?t)
case $- in *f*) export NOGLOB_STILL=1 ;; esac
