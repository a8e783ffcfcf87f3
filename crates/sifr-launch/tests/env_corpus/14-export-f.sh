# export -f: a function exported to the environment of later commands, and used there.
greet() { echo "hello $1"; }
export -f greet
export GREETING=$(greet world)
export CHILD_SEES_FUNCTION=$(bash -c 'type -t greet')
