# `source` of a sibling helper found through BASH_SOURCE, then its functions used.
here="$(dirname "${BASH_SOURCE[0]}")"
source "$here/helpers.inc"
pathmunge /opt/first/bin
pathmunge /opt/last/bin after
pathmunge /usr/bin
export PATH HELPER_LOADED HELPER_ARGS HELPER_NAME
export CASE_NAME=$(basename "${BASH_SOURCE[0]}" .sh)
