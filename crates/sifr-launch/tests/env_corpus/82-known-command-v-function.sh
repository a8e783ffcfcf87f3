# Known brush difference (KNOWN.md): command -v of a function prints its name.
myfunc() { :; }
export CV_FUNC=$(command -v myfunc)
