#!/usr/bin/env bash
# Issue 20's client tests: the programs that call `apptainer`/`singularity` for researchers, run
# unchanged against sifr installed under both names, as root and as an ordinary user (WHO below):
#   1. spython: its own pytest suite from its sdist, only the image URIs pointed at the local
#      registry, plus its instance tests (which its suite never collects) and spython handing
#      docker:// URIs to exec/run/inspect/instance start (tests/clients/test_spython_*.py);
#   2. snakemake: a two-rule workflow, each rule in its own container, `--sdm apptainer`;
#   3. singularity-compose: up, exec, ps, logs, down of two instances, with its network
#      settings and with them disabled;
#   4. singularity-hpc (shpc): a docker:// and an oras:// container installed as Lmod modules,
#      commands run through the modules' wrappers.
# The clients come from PyPI at pinned versions (PINS below) into a virtual environment under
# the build's target directory (reused while the pins are unchanged). The images are small
# busybox-static ones, built here with umoci and pushed with skopeo to Debian's docker-registry
# on 127.0.0.1, served twice: plain HTTP (clients reach it with APPTAINER_NOHTTPS or its
# SINGULARITY_ twin, as none of them can pass --nohttps to the pulls it issues) and TLS with a
# throwaway CA (reached with SSL_CERT_FILE). Called by scripts/test.sh; usable alone:
#
#   scripts/clients.sh [spython|snakemake|compose|shpc]...   (default: all four)
#
# Env: SIFR (default target/debug/sifr, built if missing), CLIENTS_USER (default sifrtest,
# created if missing), CLIENTS_VENV (default TARGET/clients-venv), CLIENTS_WORK=DIR to work in
# DIR and keep it (default: a temporary directory, removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

PINS=(
    spython==0.3.14
    snakemake==9.27.1 # --sdm apptainer is built in (snakemake/deployment/singularity.py)
    singularity-compose==0.1.19
    singularity-hpc==0.1.32
    pytest==8.3.5 # runs spython's suite
)

SIFR=${SIFR:-$repo/target/debug/sifr}
[ -x "$SIFR" ] || cargo build -p sifr-cli --locked
user=${CLIENTS_USER:-sifrtest}
mkdir -p "${CARGO_TARGET_DIR:-target}"
target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
venv=${CLIENTS_VENV:-$target/clients-venv}
clients=("$@")
((${#clients[@]})) || clients=(spython snakemake compose shpc)
id "$user" >/dev/null 2>&1 || useradd -m "$user"
t_start=$SECONDS

if [ -n "${CLIENTS_WORK:-}" ]; then
    work=$CLIENTS_WORK
    # What an earlier run left there (only the script's own entries).
    rm -rf "${work:?}"/{bin,images,root,"$user"}
    mkdir -p "$work"
else
    work=$(mktemp -d)
fi
chmod 755 "$work"

# Everything started here is stopped at exit, whatever failed: the instances of both
# identities (each has its own HOME under $work, where sifr keeps its instance records), the
# registries; /dev/fuse gets its mode back.
registry_pids=()
fuse_mode=$(stat -c %a /dev/fuse)
cleanup() {
    local who
    for who in root "$user"; do
        if [ -d "$work/$who/home" ]; then
            as "$who" "$SIFR" instance stop --all --force >/dev/null 2>&1 || true
        fi
    done
    for pid in "${registry_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    chmod "$fuse_mode" /dev/fuse
    [ -n "${CLIENTS_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# as WHO CMD...: CMD as WHO with the clients' environment: sifr as `apptainer` and
# `singularity` first on PATH, then the virtual environment; a HOME of its own (instance
# records, caches, snakemake's and shpc's state) and sifr's cache in it.
as() {
    local who=$1 uid
    shift
    local env=(
        "HOME=$work/$who/home"
        "PATH=$work/bin:$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        "APPTAINER_CACHEDIR=$work/$who/home/cache"
        "USER=$who" "LOGNAME=$who"
    )
    if [ "$who" = root ]; then
        env "${env[@]}" "$@"
    else
        uid=$(id -u "$user")
        setpriv --reuid="$uid" --regid="$(id -g "$user")" --init-groups -- env "${env[@]}" "$@"
    fi
}

fails=0
passes=0
declare -A tally
# result CLIENT WHO NAME STATUS: one PASS/FAIL line, counted per client and identity.
result() {
    local client=$1 who=$2 name=$3 rc=$4 key="$1 $2"
    if [ "$rc" = 0 ]; then
        echo "PASS $client ($who): $name"
        passes=$((passes + 1))
        tally["$key"]="$((${tally["$key"]%%/*} + 1))/${tally["$key"]##*/}"
    else
        echo "FAIL $client ($who): $name"
        fails=$((fails + 1))
        tally["$key"]="${tally["$key"]%%/*}/$((${tally["$key"]##*/} + 1))"
    fi
}
# check CLIENT WHO NAME CMD...: run CMD (as WHO, in the current directory), its output kept in
# $work/WHO/log/ and shown when it fails.
check() {
    local client=$1 who=$2 name=$3 rc=0 log
    shift 3
    log=$work/$who/log/$client.$(tr -c 'a-zA-Z0-9\n' _ <<<"$name")
    as "$who" "$@" >"$log" 2>&1 || rc=$?
    result "$client" "$who" "$name" "$rc"
    if [ "$rc" != 0 ]; then
        tail -n 40 "$log" | sed 's/^/  | /'
    fi
    return 0
}

# --- the clients' virtual environment ----------------------------------------------------------
# Debian's python3 (the system one a site's users have), not a pyenv or conda one on PATH.
# Their dependencies are pinned too (tests/clients/constraints.txt).
stamp="${PINS[*]} $(sha256sum <tests/clients/constraints.txt | cut -c1-16)"
if [ "$(cat "$venv/.sifr-pins" 2>/dev/null)" != "$stamp" ] || ! [ -d "$venv/sdist" ]; then
    echo "== clients: installing ${PINS[*]}"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        -c tests/clients/constraints.txt "${PINS[@]}"
    # spython's sdist, for its test suite (--no-binary for it alone: build tools stay wheels).
    "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
        --no-binary spython -d "$venv/sdist" "$(printf '%s\n' "${PINS[@]}" | grep '^spython==')"
    echo "$stamp" >"$venv/.sifr-pins"
fi

# --- sifr as apptainer and singularity ---------------------------------------------------------
mkdir -p "$work/bin"
ln -s "$SIFR" "$work/bin/apptainer"
ln -s "$SIFR" "$work/bin/singularity"
for who in root "$user"; do
    mkdir -p "$work/$who/home" "$work/$who/log"
    [ "$who" = root ] || chown -R "$user:" "$work/$who"
done

# --- images --------------------------------------------------------------------------------------
# busybox: busybox-static with all its applets, the directories a distribution image has, and
# a /bin/bash that is busybox's sh (snakemake runs its rules with bash). tools: busybox plus
# /opt/tools. Both as one OCI layout built with umoci.
echo "== clients: images"
img=$work/images
rootfs=$img/rootfs
mkdir -p "$rootfs"/{bin,etc,root,home,tmp,usr/bin,var/tmp} "$img/tools/opt/tools"
cp /bin/busybox "$rootfs/bin/"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
printf '#!/bin/sh\nexec /bin/sh "$@"\n' >"$rootfs/bin/bash"
chmod 755 "$rootfs/bin/bash"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
echo busybox >"$rootfs/etc/image-name"
echo "tools 1.0" >"$img/tools/opt/tools/VERSION"
# Layers by unpack/repack, which writes whole tars (Debian's umoci 0.4.7 `insert` leaves out
# the last entry's padding and the end blocks; sifr reads those too, as Go's archive/tar does).
layer() { # TAG DIR: add DIR's tree as a new layer of the image TAG
    rm -rf "$img/bundle"
    umoci unpack --image "$img/oci:$1" "$img/bundle" >/dev/null
    cp -a "$2/." "$img/bundle/rootfs/"
    umoci repack --image "$img/oci:$1" "$img/bundle"
    rm -rf "$img/bundle"
}
umoci init --layout "$img/oci"
umoci new --image "$img/oci:busybox"
layer busybox "$rootfs"
umoci config --image "$img/oci:busybox" --config.env PATH=/usr/local/bin:/usr/bin:/bin \
    --config.cmd sh
umoci tag --image "$img/oci:busybox" tools
layer tools "$img/tools"

# --- registries ----------------------------------------------------------------------------------
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start_registry NAME EXTRA_CONFIG: a docker-registry on a free port of 127.0.0.1 serving
# $img/data; sets `port` (not a command substitution: the registry's pid is kept here).
start_registry() {
    local name=$1 extra=$2 _
    port=$(free_port)
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n%s' \
        "$img/data" "$port" "$extra" >"$img/$name.yml"
    docker-registry serve "$img/$name.yml" >"$img/$name.log" 2>&1 &
    registry_pids+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "FAIL clients: the $name registry did not start:" >&2
    cat "$img/$name.log" >&2
    exit 1
}
tls=$img/tls
mkdir -p "$tls"
(
    cd "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=sifr clients CA" \
        -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
        -extfile san.ext -out server.crt
) >"$tls/openssl.log" 2>&1
chmod 644 "$tls"/*
start_registry http ""
HTTP=127.0.0.1:$port
start_registry tls "  tls:
    certificate: $tls/server.crt
    key: $tls/server.key
"
TLS=127.0.0.1:$port
# Both serve the same storage; the pushes go over plain HTTP.
push() { # TAG_IN_LAYOUT REPO:TAG...
    local from=$1 to
    shift
    for to in "$@"; do
        skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
            "oci:$img/oci:$from" "docker://$HTTP/$to"
    done
}
# The names the clients' tests use, so that only the URI's host part changes.
push busybox busybox:1.30.1 busybox:latest library/busybox:latest
push tools library/tools:1.0
skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$HTTP/library/busybox:latest" \
    >"$img/busybox.digest"

# An ORAS artifact in Apptainer's layout (internal/pkg/client/oras/image.go): config `{}` of
# the SIF config type, one layer of the SIF layer type titled with the file's name; uploaded
# with the distribution API directly, so that it does not depend on sifr's push.
oras_sif=$img/github-ci_latest.sif
as root "$SIFR" pull --force "$oras_sif" "oci:$img/oci:busybox" >"$img/oras-pull.log" 2>&1 || {
    echo "FAIL clients: cannot make the SIF of the ORAS artifact:" >&2
    cat "$img/oras-pull.log" >&2
    exit 1
}
upload_blob() { # REPO FILE: prints the blob's digest
    local repo=$1 file=$2 digest location
    digest=sha256:$(sha256sum "$file" | cut -d' ' -f1)
    location=$(curl -fsS -X POST -D - -o /dev/null "http://$HTTP/v2/$repo/blobs/uploads/" |
        tr -d '\r' | sed -n 's/^[Ll]ocation: *//p')
    case $location in http*) ;; *) location=http://$HTTP$location ;; esac
    case $location in *\?*) location="$location&digest=$digest" ;; *) location="$location?digest=$digest" ;; esac
    curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" \
        "$location" >/dev/null
    echo "$digest"
}
printf '{}' >"$img/oras-config.json"
oras_repo=singularityhub/github-ci
config_digest=$(upload_blob "$oras_repo" "$img/oras-config.json")
layer_digest=$(upload_blob "$oras_repo" "$oras_sif")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.sylabs.sif.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.sylabs.sif.layer.v1.sif","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.title":"github-ci_latest.sif"}}]}' \
    "$config_digest" "$layer_digest" "$(stat -c %s "$oras_sif")" >"$img/oras-manifest.json"
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$img/oras-manifest.json" "http://$HTTP/v2/$oras_repo/manifests/latest" >/dev/null
echo "sha256:$(sha256sum "$img/oras-manifest.json" | cut -d' ' -f1)" >"$img/oras.digest"
chmod -R a+rX "$img"
echo "== clients: registries on $HTTP (HTTP) and $TLS (TLS), images ready after $((SECONDS - t_start)) s"

# The user's launches mount the images with FUSE, as on an HPC node where /dev/fuse is 0666;
# its mode is put back at exit.
chmod 666 /dev/fuse

# --- 1. spython ----------------------------------------------------------------------------------
test_spython() {
    local who=$1
    local dir=$work/$who/spython
    mkdir -p "$dir"
    tar -xzf "$venv"/sdist/spython-*.tar.gz -C "$dir" --strip-components=1
    # The only change to the suite: its image URIs name the local registry. test_export
    # expects the sandbox name spython derives from the URI (`busybox:1.30.sandbox` for
    # docker://busybox:1.30.1, in the current directory); with a host in the URI, spython
    # derives HOST:PORT/busybox:1.30.sandbox, so the expectation follows the URI and that
    # directory is made (Apptainer, like sifr, makes no parent directory of a build target).
    sed -i -e "s#docker://busybox:1.30.1#docker://$HTTP/busybox:1.30.1#g" \
        -e "s#\"busybox:1.30.sandbox\"#\"$HTTP/busybox:1.30.sandbox\"#g" \
        -e "s#oras://[^/\"]*/#oras://$HTTP/#g" "$dir"/spython/tests/*.py
    mkdir "$dir/$HTTP"
    cp tests/clients/test_spython_instances.py tests/clients/test_spython_uris.py \
        "$dir/spython/tests/"
    [ "$who" = root ] || chown -R "$user:" "$dir"
    local rc=0 log=$work/$who/log/spython.pytest
    (cd "$dir" && as "$who" env APPTAINER_NOHTTPS=1 SIFR_CLIENTS_REGISTRY="$HTTP" python -m pytest -p no:cacheprovider \
        --basetemp="$dir/.pytest-tmp" -rA -q spython/tests) >"$log" 2>&1 || rc=$?
    # One PASS/FAIL line per test (pytest's own verdicts).
    local line name ok=0 bad=0
    while read -r line; do
        name=${line#* }
        case $line in
        PASSED*) result spython "$who" "$name" 0 && ok=$((ok + 1)) ;;
        FAILED* | ERROR*) result spython "$who" "$name" 1 && bad=$((bad + 1)) ;;
        esac
    done < <(sed -n 's#^\(PASSED\|FAILED\|ERROR\) \(spython/[^ ]*::[^ ]*\).*#\1 \2#p' "$log")
    # pytest that did not run its tests (a collection or usage error) is a failure too.
    if { [ "$rc" != 0 ] && [ "$bad" = 0 ]; } || [ "$ok" = 0 ]; then
        result spython "$who" "pytest ran the suite (status $rc)" 1
    fi
    if [ "$rc" != 0 ]; then
        grep -E "^(E  |FAILED|ERROR)|Error|error:" "$log" | head -n 60 | sed 's/^/  | /'
    fi
    tail -n 1 "$log" | sed "s/^/  spython ($who): /"
}

# --- 2. snakemake --------------------------------------------------------------------------------
test_snakemake() {
    local who=$1
    local dir=$work/$who/snakemake
    mkdir -p "$dir"
    sed "s#@REGISTRY@#$TLS#g" tests/clients/Snakefile >"$dir/Snakefile"
    [ "$who" = root ] || chown -R "$user:" "$dir"
    cd "$dir"
    check snakemake "$who" "workflow of two containerized rules (--sdm apptainer, TLS registry)" \
        env SSL_CERT_FILE="$tls/ca.crt" snakemake --cores 1 --sdm apptainer \
        --apptainer-prefix "$dir/images"
    check snakemake "$who" "outputs made in the rules' containers" \
        sh -c 'printf "busybox\ntools 1.0\n" | cmp - out/b.txt'
    check snakemake "$who" "each image pulled once, as a SIF" \
        sh -c '[ "$(ls images/*.simg | wc -l)" = 2 ] && for f in images/*.simg; do head -c 64 "$f" | grep -q SIF_MAGIC || exit 1; done'
    cd "$repo"
}

# --- 3. singularity-compose ----------------------------------------------------------------------
test_compose() {
    local who=$1 variant
    for variant in network no-network; do
        local dir=$work/$who/compose-$variant
        mkdir -p "$dir"
        sed "s#@REGISTRY@#$TLS#g" tests/clients/singularity-compose.yml >"$dir/singularity-compose.yml"
        cp tests/clients/startscript "$dir/"
        if [ "$variant" = no-network ]; then
            # Each instance's `network: {enable: false}`: no --net options at all.
            sed -i 's/#off //' "$dir/singularity-compose.yml"
        fi
        [ "$who" = root ] || chown -R "$user:" "$dir"
        cd "$dir"
        local sc=(env SSL_CERT_FILE="$tls/ca.crt" singularity-compose)
        check compose "$who" "$variant: up (pulls, instance start)" "${sc[@]}" up
        check compose "$who" "$variant: exec in each instance" sh -c "
            ${sc[*]} exec app11 cat /etc/image-name | grep -qx busybox &&
            ${sc[*]} exec app21 cat /opt/tools/VERSION | grep -qx 'tools 1.0'"
        # `up` starts the instances with --writable-tmpfs.
        check compose "$who" "$variant: the instance's root is writable (--writable-tmpfs)" sh -c "
            ${sc[*]} exec app21 sh -c 'echo written >/opt/tools/new && cat /opt/tools/new' |
            grep -qx written"
        # --hostname in both runs; --net --network none (its options without sudo) leaves the
        # instance only a loopback interface, where without them it shares the host's.
        check compose "$who" "$variant: hostname and network namespace" sh -c "
            ${sc[*]} exec app11 hostname | grep -qx app11 &&
            ifaces=\$(${sc[*]} exec app11 cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ') &&
            echo \"interfaces: \$ifaces\" && if [ $variant = network ]; then [ \"\$ifaces\" = 'lo ' ]; else [ \"\$ifaces\" != 'lo ' ]; fi"
        check compose "$who" "$variant: ps lists both" sh -c "
            out=\$(${sc[*]} ps) && echo \"\$out\" && echo \"\$out\" | grep -q app11 &&
            echo \"\$out\" | grep -q app21"
        # `logs` reads ~/.singularity/instances/logs of the passwd entry's home (Singularity 3's
        # place); Apptainer and sifr write $HOME/.apptainer/instances/logs (docs/clients.md), so
        # it runs here and the start scripts' output is looked for where Apptainer keeps it.
        check compose "$who" "$variant: logs runs; the start script's output is in the instance's log" sh -c "
            ${sc[*]} logs app11 && cat \$(apptainer instance list --logs app11 | awk '/[.]out\$/ {print \$NF}') |
            grep -qx 'app11 started'"
        check compose "$who" "$variant: down stops both" sh -c "
            ${sc[*]} down && [ -z \"\$(apptainer instance list --json | grep '\"instance\"')\" ]"
        cd "$repo"
    done
}

# --- 4. shpc with Lmod ---------------------------------------------------------------------------
test_shpc() {
    local who=$1
    local dir=$work/$who/shpc
    mkdir -p "$dir/registry/sifr/busybox" "$dir/registry/sifr/github-ci"
    sed -e "s#@REGISTRY@#$HTTP#g" -e "s#@DIGEST@#$(cat "$img/busybox.digest")#g" \
        tests/clients/shpc-container.yaml >"$dir/registry/sifr/busybox/container.yaml"
    sed -e "s#@REGISTRY@#$HTTP#g" -e "s#@DIGEST@#$(cat "$img/oras.digest")#g" \
        tests/clients/shpc-oras.yaml >"$dir/registry/sifr/github-ci/container.yaml"
    # shpc's own defaults, but the registry: the local one, not its remote default.
    sed "s#^registry: .*#registry: [$dir/registry]#" \
        "$venv"/lib/python3*/site-packages/shpc/settings.yml >"$dir/settings.yml"
    [ "$who" = root ] || chown -R "$user:" "$dir"
    cd "$dir"
    local shpc=(env SINGULARITY_NOHTTPS=1 shpc --settings-file "$dir/settings.yml")
    # The site's settings: Lmod modules, the container technology `singularity` (shpc's name
    # for Apptainer-compatible runtimes), its wrappers calling `apptainer`.
    check shpc "$who" "config (lmod, singularity, singularity_path apptainer)" sh -c "
        ${shpc[*]} config set module_sys:lmod &&
        ${shpc[*]} config set container_tech:singularity &&
        ${shpc[*]} config set singularity_path:apptainer &&
        ${shpc[*]} config set module_base:$dir/modules &&
        ${shpc[*]} config set container_base:$dir/containers &&
        ${shpc[*]} config set wrapper_base:$dir/wrappers &&
        ${shpc[*]} config set views_base:$dir/views"
    check shpc "$who" "install sifr/busybox (pull by digest over HTTP)" "${shpc[@]}" install sifr/busybox
    check shpc "$who" "module load + the module's wrapper runs in the container" bash -c "
        source /usr/share/lmod/lmod/init/bash && module use $dir/modules &&
        module load ${HTTP/:/\/}/library/busybox/latest && out=\$(busybox-image-name) && echo \"\$out\" &&
        [ \"\$out\" = busybox ] && [ \"\$(busybox-echo hello from shpc)\" = 'hello from shpc' ]"
    check shpc "$who" "install sifr/github-ci (ORAS pull by digest)" "${shpc[@]}" install sifr/github-ci
    check shpc "$who" "the ORAS module's wrapper runs in the container" bash -c "
        source /usr/share/lmod/lmod/init/bash && module use $dir/modules &&
        module load ${HTTP/:/\/}/singularityhub/github-ci/latest &&
        [ \"\$(github-ci-image-name)\" = busybox ]"
    cd "$repo"
}

for who in root "$user"; do
    for client in "${clients[@]}"; do
        tally["$client $who"]=0/0
        t0=$SECONDS
        echo "== clients: $client as $who"
        "test_$client" "$who"
        echo "== clients: $client as $who: ${tally["$client $who"]%%/*} passed, ${tally["$client $who"]##*/} failed in $((SECONDS - t0)) s"
    done
done

echo "== clients: summary (passed/failed) after $((SECONDS - t_start)) s"
for who in root "$user"; do
    for client in "${clients[@]}"; do
        echo "  $client as $who: ${tally["$client $who"]}"
    done
done
echo "clients: $passes passed, $fails failed"
[ "$fails" = 0 ]
