//! The small shell scripts placed in every image's `/.singularity.d`.
//!
//! Apptainer's runtime (and older Singularity runtimes) source the `env/*.sh` files and may run
//! the `actions/*` files of images built by anyone, so the shell code here is kept line for line
//! the same as what Apptainer writes. Only the descriptive comment under each `#!` line is our
//! own wording. The startscript placeholder is a bare `#!/bin/sh` line.

/// Contents of `exec.sh`.
pub const ACTION_EXEC: &str = r#"#!/bin/sh
# Legacy action script for `exec`: source the environment, then run the command.

for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done

exec "$@"
"#;

// stays literal: each script is Apptainer's file byte for byte; shared lines are not factored out.
/// Contents of `run.sh`.
pub const ACTION_RUN: &str = r#"#!/bin/sh
# Legacy action script for `run`: source the environment, then start the runscript.

for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done

if test -n "${SINGULARITY_APPNAME:-}"; then

    if test -x "/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript"; then
        exec "/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript" "$@"
    elif test -x "/scif/apps/singularity/scif/runscript"; then
        exec "/scif/apps/singularity/scif/runscript" "$@"
    else
        echo "No Apptainer runscript for contained app: ${SINGULARITY_APPNAME:-}"
        exit 1
    fi

elif test -x "/.singularity.d/runscript"; then
    exec "/.singularity.d/runscript" "$@"
else
    echo "No Apptainer runscript found, executing /bin/sh"
    exec /bin/sh "$@"
fi
"#;

/// Contents of `shell.sh`.
pub const ACTION_SHELL: &str = r#"#!/bin/sh
# Legacy action script for `shell`: source the environment, then start a shell.

for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done

if test -n "$SINGULARITY_SHELL" -a -x "$SINGULARITY_SHELL"; then
    exec $SINGULARITY_SHELL "$@"

    echo "ERROR: Failed running shell as defined by '\$SINGULARITY_SHELL'" 1>&2
    exit 1

elif test -x /bin/bash; then
    SHELL=/bin/bash
    PS1="Apptainer $APPTAINER_NAME:\\w> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
elif test -x /bin/sh; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh "$@"
else
    echo "ERROR: /bin/sh does not exist in container" 1>&2
fi
exit 1
"#;

/// Contents of `start.sh`.
pub const ACTION_START: &str = r#"#!/bin/sh
# Legacy action script for `instance start`.

# if we are here start notify PID 1 to continue
# DON'T REMOVE
kill -CONT 1

for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done

if test -x "/.singularity.d/startscript"; then
    exec "/.singularity.d/startscript"
fi
"#;

/// Contents of `test.sh`.
pub const ACTION_TEST: &str = r#"#!/bin/sh
# Legacy action script for `test`: source the environment, then run the test script.

for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done


if test -n "${SINGULARITY_APPNAME:-}"; then

    if test -x "/scif/apps/${SINGULARITY_APPNAME:-}/scif/test"; then
        exec "/scif/apps/${SINGULARITY_APPNAME:-}/scif/test" "$@"
    elif test -x "/scif/apps/singularity/scif/test"; then
        exec "/scif/apps/singularity/scif/test" "$@"
    else
        echo "No tests for contained app: ${SINGULARITY_APPNAME:-}"
        exit 1
    fi
elif test -x "/.singularity.d/test"; then
    exec "/.singularity.d/test" "$@"
else
    echo "No test found in container, executing /bin/sh -c true"
    exec /bin/sh -c true
fi
"#;

/// Contents of `01-base.sh`.
pub const ENV_01_BASE: &str = r#"#!/bin/sh
# Base environment (placeholder).
"#;

/// Contents of `90-environment.sh`, to which `%environment` is appended. Its comment line is
/// Apptainer's, which `inspect --environment` shows and scripts may look for.
pub const ENV_90_ENVIRONMENT: &str = r#"#!/bin/sh
# Custom environment shell code should follow

"#;

/// Contents of `95-apps.sh`.
pub const ENV_95_APPS: &str = r#"#!/bin/sh
# Select the SCIF app named by $SINGULARITY_APPNAME: PATH, LD_LIBRARY_PATH, app environment.

if test -n "${SINGULARITY_APPNAME:-}"; then

    # The active app should be exported
    export SINGULARITY_APPNAME

    if test -d "/scif/apps/${SINGULARITY_APPNAME:-}/"; then
        SCIF_APPS="/scif/apps"
        SCIF_APPROOT="/scif/apps/${SINGULARITY_APPNAME:-}"
        export SCIF_APPROOT SCIF_APPS
        PATH="/scif/apps/${SINGULARITY_APPNAME:-}:/scif/apps/singularity:$PATH"

        # Automatically add application bin to path
        if test -d "/scif/apps/${SINGULARITY_APPNAME:-}/bin"; then
            PATH="/scif/apps/${SINGULARITY_APPNAME:-}/bin:$PATH"
        elif test -d "/scif/apps/singularity/bin"; then
            PATH="/scif/apps/singularity/bin:$PATH"
        fi

        # Automatically add application lib to LD_LIBRARY_PATH
        if test -d "/scif/apps/${SINGULARITY_APPNAME:-}/lib"; then
            LD_LIBRARY_PATH="/scif/apps/${SINGULARITY_APPNAME:-}/lib:$LD_LIBRARY_PATH"
            export LD_LIBRARY_PATH
        elif test -d "/scif/apps/singularity/lib"; then
            LD_LIBRARY_PATH="/scif/apps/singularity/lib:$LD_LIBRARY_PATH"
            export LD_LIBRARY_PATH
        fi

        # Automatically source environment
        if [ -f "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh" ]; then
            . "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh"
		elif [ -f "/scif/apps/singularity/scif/env/01-base.sh" ]; then
            . "/scif/apps/singularity/scif/env/01-base.sh" "$@"
        fi
        if [ -f "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh" ]; then
            . "/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh"
		elif [ -f "/scif/apps/singularity/scif/env/90-environment.sh" ]; then
            . "/scif/apps/singularity/scif/env/90-environment.sh" "$@"
        fi

        export PATH
    else
        echo "Could not locate the container application: ${SINGULARITY_APPNAME}"
        exit 1
    fi
fi
"#;

/// Contents of `99-base.sh`.
pub const ENV_99_BASE: &str = r#"#!/bin/sh
# Add /.singularity.d/libs to LD_LIBRARY_PATH and set a default prompt.

if [ -z "${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH="/.singularity.d/libs"
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi

if [ -z "${PS1:-}" ]; then
    PS1="Apptainer> "
fi
export LD_LIBRARY_PATH PS1
"#;

/// Contents of `99-runtimevars.sh`.
pub const ENV_99_RUNTIMEVARS: &str = r#"#!/bin/sh
# Apply PATH changes requested at run time (SING_USER_DEFINED_*PATH).

if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
	PATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"
fi

if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
	PATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"
fi

if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then
	PATH="${SING_USER_DEFINED_PATH}"
fi

unset SING_USER_DEFINED_PREPEND_PATH \
	  SING_USER_DEFINED_APPEND_PATH \
	  SING_USER_DEFINED_PATH

export PATH
"#;

/// Contents of `runscript.sh`.
pub const DEFAULT_RUNSCRIPT: &str = r#"#!/bin/sh
# Default runscript: no %runscript was given.

echo "There is no runscript defined for this container\n";
"#;

/// Contents of the default `/.singularity.d/startscript` (comment-only, so it does nothing).
pub const DEFAULT_STARTSCRIPT: &str =
    "#!/bin/sh\n# Default startscript: no %startscript was given.\n";

/// The one-line runscript Apptainer's distribution agents (`scratch`, `busybox`, `yum`,
/// `zypper`, `arch`) write over the default one.
pub const MINIMAL_RUNSCRIPT: &str = "#!/bin/sh\n";
