# pushd/popd around work in another directory, dirs, and umask values as scripts set them.
pushd subdir > /dev/null
export IN_PUSHED=$(basename "$PWD")
popd > /dev/null
export AFTER_POP=$(basename "$PWD")
old=$(umask)
umask 077
export UMASK_STRICT=$(umask) UMASK_SYMBOLIC=$(umask -S)
umask "$old"
export UMASK_BACK=$(umask)
