# [[ ]] tests: =~ with BASH_REMATCH, quoted (literal) regex parts, glob matches, && and ||
# inside, string ordering, file tests.
version_string="gcc (GCC) 12.2.1 20230201"
if [[ $version_string =~ ([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
    export GCC_MAJOR=${BASH_REMATCH[1]} GCC_MINOR=${BASH_REMATCH[2]} GCC_PATCH=${BASH_REMATCH[3]}
    export GCC_VERSION=${BASH_REMATCH[0]}
    export REMATCH_COUNT=${#BASH_REMATCH[@]}
fi
re='^(/[^/]+)+/bin$'
[[ /opt/tool/bin =~ $re ]] && export TOOL_BIN_OK=yes
[[ "a.b" =~ a.b ]] && export DOT_MATCH=yes
[[ "axb" =~ "a.b" ]] || export QUOTED_LITERAL=yes
[[ $APPTAINER_NAME == *.sif ]] && export IS_SIF=1
[[ $APPTAINER_NAME == "*.sif" ]] || export QUOTED_GLOB_LITERAL=1
[[ -n $SPACED && $SPACED != "" ]] && export SPACED_SET=1
[[ abc < abd ]] && export STR_LESS=yes
if [[ ! -d /nonexistent/x ]]; then export NODIR=1; fi
[[ $MULTILINE =~ two ]] && export ML_MATCH=${BASH_REMATCH[0]}
[[ -z ${UNSET_THING:-} || -e /nonexistent ]] && export OR_IN_TEST=1
[[ ( 1 -lt 2 ) && ! ( 3 -lt 2 ) ]] && export PARENS_IN_TEST=1
[[ 10 -gt 9 ]] && export NUMERIC_GT=1
[[ x =~ ^(y)?x$ ]] && export OPTIONAL_GROUP="[${BASH_REMATCH[1]}]"
if [[ "no match here" =~ ([0-9]+) ]]; then :; else export NO_MATCH_COUNT=${#BASH_REMATCH[@]}; fi
