# A long bashrc-style file, as users bake into images: many functions, aliases (defined,
# never expanded: aliases are off in a non-interactive shell), prompt setup guarded by
# interactivity checks, history settings, and the variables it exports at the end.

# ---------------------------------------------------------------------------------------
# Interactivity: these guards must see a non-interactive shell.
# ---------------------------------------------------------------------------------------
case $- in
    *i*) RC_INTERACTIVE=yes ;;
    *) RC_INTERACTIVE=no ;;
esac
export RC_INTERACTIVE
if [ -n "${PS1:-}" ]; then
    export RC_HAS_PS1=yes
fi
[[ $- == *h* ]] && RC_HASHALL=on || RC_HASHALL=off
export RC_HASHALL

# ---------------------------------------------------------------------------------------
# History and shell options (harmless when not interactive).
# ---------------------------------------------------------------------------------------
HISTCONTROL=ignoreboth
HISTSIZE=10000
HISTFILESIZE=20000
HISTTIMEFORMAT='%F %T '
shopt -s histappend 2> /dev/null
shopt -s checkwinsize 2> /dev/null
shopt -s globstar 2> /dev/null || true
export HISTCONTROL HISTSIZE

# ---------------------------------------------------------------------------------------
# Aliases: defined, not expanded in this shell.
# ---------------------------------------------------------------------------------------
alias ll='ls -alF'
alias la='ls -A'
alias l='ls -CF'
alias grep='grep --color=auto'
export RC_ALIAS_TEXT="$(alias ll)"
unalias la
export RC_UNALIASED=$(alias la > /dev/null 2>&1 && echo still || echo gone)

# ---------------------------------------------------------------------------------------
# Small utility functions.
# ---------------------------------------------------------------------------------------
rc_log() {
    local level=$1
    shift
    RC_LOG="${RC_LOG:+$RC_LOG;}$level:$*"
}

rc_is_dir() {
    [ -d "$1" ]
}

rc_has() {
    command -v "$1" > /dev/null 2>&1
}

rc_lower() {
    printf '%s\n' "${1,,}"
}

rc_upper() {
    printf '%s\n' "${1^^}"
}

rc_trim() {
    local s=$1
    s="${s#"${s%%[![:space:]]*}"}"
    s="${s%"${s##*[![:space:]]}"}"
    printf '%s' "$s"
}

rc_join() {
    local sep=$1
    shift
    local out= item
    for item in "$@"; do
        out="${out:+$out$sep}$item"
    done
    printf '%s' "$out"
}

rc_contains() {
    local needle=$1
    shift
    local item
    for item in "$@"; do
        [ "$item" = "$needle" ] && return 0
    done
    return 1
}

rc_repeat() {
    local n=$1 s=$2 out=
    while (( n-- > 0 )); do
        out+=$s
    done
    printf '%s' "$out"
}

rc_version_ge() {
    # rc_version_ge 1.10.2 1.9 -> true
    local IFS=.
    local -a a=($1) b=($2)
    local i
    for ((i = 0; i < ${#a[@]} || i < ${#b[@]}; i++)); do
        local x=${a[i]:-0} y=${b[i]:-0}
        (( 10#$x > 10#$y )) && return 0
        (( 10#$x < 10#$y )) && return 1
    done
    return 0
}

# ---------------------------------------------------------------------------------------
# Path helpers.
# ---------------------------------------------------------------------------------------
rc_path_has() {
    case ":$PATH:" in
        *":$1:"*) return 0 ;;
        *) return 1 ;;
    esac
}

rc_path_add() {
    local dir=$1 where=${2:-front}
    rc_path_has "$dir" && return 0
    if [ "$where" = back ]; then
        PATH="$PATH:$dir"
    else
        PATH="$dir:$PATH"
    fi
}

rc_path_clean() {
    local IFS=: seen=: out= d
    for d in $PATH; do
        [ -z "$d" ] && continue
        case $seen in *":$d:"*) continue ;; esac
        seen="$seen$d:"
        out="${out:+$out:}$d"
    done
    PATH=$out
}

# ---------------------------------------------------------------------------------------
# Tool setup, each guarded as real rc files do.
# ---------------------------------------------------------------------------------------
rc_setup_editor() {
    local e
    for e in nvim vim vi nano; do
        if rc_has "$e"; then
            EDITOR=$e
            break
        fi
    done
    : "${EDITOR:=vi}"
    VISUAL=$EDITOR
    export EDITOR VISUAL
}

rc_setup_pager() {
    if rc_has less; then
        export PAGER=less LESS='-R -F -X'
    else
        export PAGER=more
    fi
}

rc_setup_lang() {
    local want=${1:-C.UTF-8}
    case $want in
        *.UTF-8|*.utf8) export LANG=$want LC_CTYPE=$want ;;
        *) export LANG=C ;;
    esac
}

rc_setup_python() {
    export PYTHONDONTWRITEBYTECODE=1
    export PYTHONUNBUFFERED=1
    export PIP_NO_CACHE_DIR=off
    if [ -d /opt/venv ]; then
        rc_path_add /opt/venv/bin
    fi
}

rc_setup_go() {
    export GOPATH=${GOPATH:-$HOME/go}
    export GOBIN=$GOPATH/bin
    rc_path_add "$GOBIN" back
}

rc_setup_rust() {
    export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
    export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
    rc_path_add "$CARGO_HOME/bin" back
}

rc_setup_cuda() {
    local cuda
    for cuda in /usr/local/cuda-12.4 /usr/local/cuda-12 /usr/local/cuda; do
        if rc_is_dir "$cuda"; then
            export CUDA_HOME=$cuda
            rc_path_add "$cuda/bin"
            return 0
        fi
    done
    rc_log warn "no CUDA under /usr/local"
    return 1
}

rc_setup_prompt() {
    local red='\[\e[31m\]' reset='\[\e[0m\]'
    if [ "$RC_INTERACTIVE" = yes ]; then
        PS1="$red\u@\h$reset:\w\$ "
    else
        RC_PROMPT_SKIPPED=1
    fi
}

# ---------------------------------------------------------------------------------------
# Run them.
# ---------------------------------------------------------------------------------------
rc_setup_editor
rc_setup_pager
rc_setup_lang en_US.UTF-8
rc_setup_python
rc_setup_go
rc_setup_rust
rc_setup_cuda || rc_log info "cuda skipped"
rc_setup_prompt
rc_path_add /usr/local/bin
rc_path_add /opt/rc/bin
rc_path_add /opt/rc/bin
rc_path_add /opt/rc/tail back
PATH="$PATH::/usr/bin"
rc_path_clean
export PATH

# ---------------------------------------------------------------------------------------
# Use the utilities, so their results land in the environment.
# ---------------------------------------------------------------------------------------
export RC_LOWER=$(rc_lower "MiXeD Case")
export RC_UPPER=$(rc_upper "MiXeD Case")
export RC_TRIM="[$(rc_trim "   padded value   ")]"
export RC_JOIN=$(rc_join , a "b c" d)
rc_contains b a b c && export RC_CONTAINS=yes
rc_contains z a b c || export RC_NOT_CONTAINS=yes
export RC_REPEAT=$(rc_repeat 3 ab)
rc_version_ge 1.10.2 1.9 && export RC_VERSION_1=ge
rc_version_ge 1.2 1.10 || export RC_VERSION_2=lt
rc_version_ge 2.0.0 2 && export RC_VERSION_3=ge
export RC_LOG
export RC_PROMPT_SKIPPED

# ---------------------------------------------------------------------------------------
# Completion and keybindings are interactive only; these must be skipped.
# ---------------------------------------------------------------------------------------
if [ "$RC_INTERACTIVE" = yes ]; then
    if [ -f /usr/share/bash-completion/bash_completion ]; then
        . /usr/share/bash-completion/bash_completion
    fi
    bind '"\e[A": history-search-backward'
    export RC_COMPLETION=loaded
fi

# ---------------------------------------------------------------------------------------
# A dispatcher function with subcommands, as some tools install.
# ---------------------------------------------------------------------------------------
rc_tool() {
    local sub=${1:-help}
    shift || true
    case $sub in
        env)
            local kv
            for kv in "$@"; do
                case $kv in
                    *=*) eval "export ${kv%%=*}=\"\${kv#*=}\"" ;;
                    *) rc_log error "bad pair $kv" ;;
                esac
            done
            ;;
        unenv)
            local name
            for name in "$@"; do unset "$name"; done
            ;;
        count)
            echo $#
            ;;
        help|*)
            echo "usage: rc_tool env|unenv|count" >&2
            return 2
            ;;
    esac
}
rc_tool env RC_TOOL_A=1 "RC_TOOL_B=two words" 'RC_TOOL_C=$HOME' RC_BAD
rc_tool env RC_TOOL_TMP=gone
rc_tool unenv RC_TOOL_TMP
export RC_TOOL_COUNT=$(rc_tool count x "y z" w)
rc_tool nothing 2> /dev/null
export RC_TOOL_HELP_STATUS=$?
export RC_LOG

# ---------------------------------------------------------------------------------------
# Functions defined and then removed, as rc files clean up after themselves.
# ---------------------------------------------------------------------------------------
for f in rc_setup_editor rc_setup_pager rc_setup_lang rc_setup_python rc_setup_go \
    rc_setup_rust rc_setup_cuda rc_setup_prompt; do
    unset -f "$f"
done
export RC_REMAINING_SETUP=$(declare -F | grep -c " rc_setup_")
export RC_HAS_LOWER=$(type -t rc_lower)
export RC_DONE=1
