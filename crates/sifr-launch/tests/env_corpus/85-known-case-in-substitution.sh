# Known brush difference (KNOWN.md): a case pattern without its opening parenthesis inside
# $(...).
export CASE_IN_SUBST=$(case x in x) echo matched ;; esac)
