# Prefix and suffix removal: # ## % %%, with globs, quoted patterns, character classes and
# variables as patterns.
file=/opt/archive/data.tar.gz
export BASENAME=${file##*/} DIRNAME=${file%/*}
export EXT_SHORT=${file##*.} EXT_LONG=${file#*.} STEM_SHORT=${file%.*} STEM_LONG=${file%%.*}
export NO_MATCH=${file#nothing} NO_MATCH_END=${file%nothing}
export STAR_QUOTED=${file%"*"}
v="a*b*c"
export LITERAL_STAR=${v%"*c"} GLOB_STAR=${v%*c}
export CLASS=${file##*[./]}
pre=/opt
export VAR_PATTERN=${file#$pre} QUOTED_VAR_PATTERN=${file#"$pre"}
ver=v12.4.1
export NO_V=${ver#v} MAJOR=${ver%%.*} 
major=${ver%%.*}; major=${major#v}
export MAJOR_NUM=$major
export SEED_TRIM="${APPTAINER_CONTAINER##*/}" SEED_STEM="${APPTAINER_NAME%.sif}"
export QMARK=${file#/???}
export EMPTY_TRIM=${nothing##*/}
export WHOLE=${file##*}
