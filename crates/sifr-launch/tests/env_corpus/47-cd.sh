# cd in an environment script: into a subdirectory and back with cd -, pwd, PWD/OLDPWD,
# CDPATH-free, cd inside a subshell or a substitution (no effect on the script).
export START_DIR_NAME=$(basename "$PWD")
cd subdir
export IN_SUBDIR=$(basename "$(pwd)")
cd - > /dev/null
export BACK_NAME=$(basename "$PWD")
export SUBST_CD=$(cd / && pwd)
( cd / )
export AFTER_SUBSHELL_CD=$(basename "$PWD")
cd /
export FINAL_PWD=$PWD
cd /nonexistent/dir 2> /dev/null || export CD_FAILED=1
