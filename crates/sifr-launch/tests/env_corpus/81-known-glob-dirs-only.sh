# Known brush difference (KNOWN.md): a pattern ending in / matches directories only.
dirs=(*/)
export DIRS_ONLY="${dirs[*]}"
