# Shared by the benchmark scripts (source it).

# need CMD HINT: exit with a message naming HINT (how to get CMD) when CMD is missing.
need() { command -v "$1" >/dev/null || { echo "missing: $1 ($2)" >&2; exit 1; }; }

# sifr_release REPO: print the sifr binary to measure: $SIFR, else REPO's release build (made).
sifr_release() {
  if [ -n "${SIFR:-}" ]; then
    echo "$SIFR"
  else
    (cd "$1" && cargo build --release -q -p sifr-cli >&2)
    echo "${CARGO_TARGET_DIR:-$1/target}/release/sifr"
  fi
}

# host_mirror: print the Debian mirror of the host's apt configuration (deb822 .sources first,
# then one-line sources.list), or $MIRROR when set; fail with a message when there is none.
# Read at run time so no mirror host is ever written into the repository.
host_mirror() {
    local mirror=${MIRROR:-} f
    if [ -z "$mirror" ]; then
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -e "$f" ] || continue
            mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
            [ -n "$mirror" ] && break
        done
    fi
    if [ -z "$mirror" ] && [ -e /etc/apt/sources.list ]; then
        mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$mirror" ] || { echo "no Debian mirror in the apt configuration; set MIRROR" >&2; return 1; }
    echo "$mirror"
}

# debian_trees WORK: make (once; reused when WORK already holds them) the two Debian trees the
# benchmarks use: WORK/rootfs (debootstrap minbase, .debs dropped) and WORK/rootfs-py (minbase
# plus python3, numpy and pandas from apt). Needs root. SUITE defaults to the host's release.
debian_trees() {
    local work=$1 mirror suite rootfs=$1/rootfs rootfs_py=$1/rootfs-py
    suite=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
    if [ ! -e "$rootfs/.bench-done" ]; then
        mirror=$(host_mirror) || return 1
        rm -rf "$rootfs"
        echo "debootstrap --variant=minbase $suite from $mirror" >&2
        debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1
        # Drop the downloaded .debs (about 30 MiB) so the tree is what an image would ship.
        chroot "$rootfs" apt-get clean
        touch "$rootfs/.bench-done"
    fi
    if [ ! -e "$rootfs_py/.bench-done" ]; then
        rm -rf "$rootfs_py"
        cp -a "$rootfs" "$rootfs_py"
        mount -t proc proc "$rootfs_py/proc"
        chroot "$rootfs_py" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-numpy python3-pandas && apt-get clean && rm -rf /var/lib/apt/lists/*' >"$work/apt.log" 2>&1 || { umount "$rootfs_py/proc"; return 1; }
        umount "$rootfs_py/proc"
        touch "$rootfs_py/.bench-done"
    fi
}

# hf OUT WHO RUNS [-n NAME CMD]...: hyperfine (no shell, 3 warm-ups) as WHO, root or the user
# whose ids are $uid and $gid, from $work/json (writable by both), JSON in $work/json/OUT.json.
hf() {
  local out=$1 who=$2 n=$3; shift 3
  local as=()
  [ "$who" = root ] || as=(setpriv --reuid="$uid" --regid="$gid" --init-groups --)
  (cd "$work/json" && env USER="$who" "${as[@]}" hyperfine -N --warmup 3 --runs "$n" \
     --export-json "$work/json/$out.json" "$@" >/dev/null 2>&1)
}

# table REF[;REF...] JSON...: one markdown table of hyperfine results: median, mean +- sd, min,
# and the ratio of each median to that of each command named REF ("-" where REF has no row).
# Runs that failed (hyperfine -i) are counted after the command's name.
table() {
  python3 - "$@" <<'EOF'
import json, sys
refs, files = sys.argv[1].split(";"), sys.argv[2:]
rows = [r for f in files for r in json.load(open(f))["results"]]
base = {ref: next((r["median"] for r in rows if r["command"] == ref), None) for ref in refs}
print("| command | median ms | mean ± sd ms | min ms | %s |" % " | ".join("vs " + ref for ref in refs))
print("|---|---|---|---|%s" % ("---|" * len(refs)))
for r in rows:
    ratios = ["%.2fx" % (r["median"] / base[ref]) if base[ref] else "-" for ref in refs]
    failed = sum(1 for c in r.get("exit_codes") or [] if c != 0)
    name = r["command"] + (" (%d of %d runs failed)" % (failed, len(r["times"])) if failed else "")
    print("| %s | %.2f | %.2f ± %.2f | %.2f | %s |" % (
        name, r["median"] * 1e3, r["mean"] * 1e3, (r["stddev"] or 0) * 1e3,
        r["min"] * 1e3, " | ".join(ratios)))
EOF
}

# start_registry DIR: Debian's docker-registry on a free port of 127.0.0.1, plain HTTP, its
# storage and log in DIR; sets $port and $regpid, stops it on exit, returns once it answers.
start_registry() {
  local dir=$1
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$dir/config.yml" <<CFG
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
CFG
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  regpid=$!
  trap 'kill $regpid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "docker-registry did not start: $(cat "$dir/log")" >&2
  return 1
}
