# shopt: extglob patterns, nocasematch, and options that change expansion; shopt -q tests.
shopt -s extglob
v=libfoo.so.1.2
export EXT_PLUS=${v%%+(.[0-9])} EXT_AT=${v/@(foo|bar)/X}
case report.PDF in *.@(pdf|PDF)) export EXT_CASE=pdf ;; esac
[[ abc == !(x*) ]] && export EXT_NOT=1
shopt -s nocasematch
case HELLO in hello) export NOCASE_CASE=1 ;; esac
[[ ABC == abc ]] && export NOCASE_TEST=1
shopt -u nocasematch
[[ ABC == abc ]] || export CASE_AGAIN=1
shopt -q extglob && export EXTGLOB_ON=1
shopt -u extglob
shopt -q extglob || export EXTGLOB_OFF=1
shopt -q expand_aliases || export ALIASES_OFF=1
shopt -q nullglob || export NULLGLOB_OFF=1
export SHOPT_STATUS=$(shopt -q no_such_option 2>/dev/null; echo $?)
