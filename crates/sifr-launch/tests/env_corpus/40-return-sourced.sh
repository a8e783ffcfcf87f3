# return from a sourced file: what comes before it is kept, what comes after never runs;
# return inside a function does not end the file.
export BEFORE_RETURN=1
early() { return 0; export NEVER_IN_FUNC=1; }
early
export AFTER_FUNCTION_RETURN=1
if [ -n "$HOME" ]; then
    export IN_IF=1
    return 0
fi
export AFTER_RETURN=1
