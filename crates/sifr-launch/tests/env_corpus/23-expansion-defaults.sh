# The default/alternative expansions: :- - := = :+ + and :? (guarded), on set, empty and
# unset names, with quoted and expanded words.
set_v=value
empty_v=
unset unset_v
export D1="${set_v:-d}" D2="${empty_v:-d}" D3="${unset_v:-d}"
export D4="${set_v-d}" D5="${empty_v-d}" D6="${unset_v-d}"
export A1="${set_v:+alt}" A2="${empty_v:+alt}" A3="${unset_v:+alt}"
export A4="${set_v+alt}" A5="${empty_v+alt}" A6="${unset_v+alt}"
: "${assign1:=first}" "${empty_v:=filled}"
: ${assign2=second}
export ASSIGN1=$assign1 ASSIGN2=$assign2 FILLED=$empty_v
export QUOTED_WORD="${unset_v:-"quoted word"}" EXPANDED_WORD="${unset_v:-$HOME/x}"
export NESTED_DEFAULT="${unset_v:-${also_unset:-${set_v}}}"
export TILDE_DEFAULT=${unset_v:-~/dot}
export PATH="${EXTRA_PATH:+$EXTRA_PATH:}$PATH"
export LD_LIBRARY_PATH="/opt/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CUDA_DEFAULT="${CUDA_HOME:=/usr/local/cuda}"
( : "${unset_v:?}" ) 2> /dev/null || export GUARD_FAILED=1
: "${set_v:?never}" && export GUARD_PASSED=1
export SEED_DEFAULT="${APPTAINER_APPNAME:-none}" SEED_DASH="${APPTAINER_APPNAME-none}"
