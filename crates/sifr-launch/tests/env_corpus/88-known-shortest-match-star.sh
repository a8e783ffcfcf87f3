# Known brush difference (KNOWN.md): the shortest match of * is empty, so ${x#*} and
# ${x%*} remove nothing.
x=abc
export SHORT_PREFIX=${x#*} SHORT_SUFFIX=${x%*}
