# Lines distributions ship in /etc/bash.bashrc and skeleton files, which images source from
# their environment: dircolors and lesspipe evaluated, chroot naming, TERM cases, and a
# completion guard.
[ -z "${PS1:-}" ] && NONINTERACTIVE_RETURN_WOULD_HAPPEN=1
export NONINTERACTIVE_RETURN_WOULD_HAPPEN
if [ -x /usr/bin/dircolors ]; then
    test -r ~/.dircolors && eval "$(dircolors -b ~/.dircolors)" || eval "$(dircolors -b)"
fi
export LS_COLORS_SET=${LS_COLORS:+yes}
[ -x /usr/bin/lesspipe ] && eval "$(SHELL=/bin/sh lesspipe)"
if [ -z "${debian_chroot:-}" ] && [ -r /etc/debian_chroot ]; then
    debian_chroot=$(cat /etc/debian_chroot)
fi
export CHROOT_NAME="${debian_chroot:-none}"
case "${TERM:-dumb}" in
    xterm-color|*-256color) color_prompt=yes ;;
    *) color_prompt= ;;
esac
export COLOR_PROMPT="${color_prompt:-no}"
if ! shopt -oq posix; then
    if [ -f /no/such/bash_completion ]; then
        . /no/such/bash_completion
    fi
    export NOT_POSIX=1
fi
export LESSHISTFILE=${LESSHISTFILE:--}
