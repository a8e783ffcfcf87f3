# command -v of a function prints its name (and of an alias its definition), as bash does.
myfunc() { :; }
export CV_FUNC=$(command -v myfunc)
alias ll='ls -l'
export CV_ALIAS=$(command -v ll)
export CV_KEYWORD=$(command -v while)
export CV_BUILTIN=$(command -v export)
shopt -s expand_aliases
alias la='ls -a'
export CV_ALIAS_ON=$(command -v la)
