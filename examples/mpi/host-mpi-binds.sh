#!/bin/sh
# Print the `-B` list that binds the host's OpenMPI into a container (the bind model, see
# README.md): OpenMPI's plugin, help and configuration directories, PMIx's installation, and every
# shared library that APP and those plugins load, except the C library's own (those must come
# from the image). Each path is bound at the same path inside.
#
#   sifr exec -B "$(host-mpi-binds.sh ./app)" image.sif /opt/app
#
# A site whose MPI lives under one prefix needs none of this: `-B /opt/openmpi` and
# `--env LD_LIBRARY_PATH=/opt/openmpi/lib` do. This script is for a distribution's MPI, whose
# files are spread over /usr and /etc. Needs ompi_info and ldd on the host.
set -eu
app=${1:?usage: host-mpi-binds.sh APP}

dirs=""
for key in Pkglibdir Pkgdatadir Sysconfdir; do
    d=$(ompi_info --path all 2>/dev/null | awk -v k="$key:" '$1 == k {print $2; exit}')
    [ -d "$d" ] && dirs="$dirs $d"
done
# OpenMPI built against an external PMIx loads PMIx's own plugins from PMIx's installation.
pmix=$(ldconfig -p | awk '$1 ~ /^libpmix\.so/ {print $NF; exit}')
if [ -n "$pmix" ]; then
    pmix_home=$(dirname "$(dirname "$(readlink -f "$pmix")")")
    [ -d "$pmix_home/lib/pmix" ] && dirs="$dirs $pmix_home"
fi

plugins=$(for d in $dirs; do find "$d" -name '*.so' -type f; done)
# `ldd` prints `soname => path (address)`; keep the path of everything but the C library's
# parts (loader, libc, libm, libpthread, libdl, librt, libutil, libresolv, ...).
libs=$(for f in "$app" $plugins; do ldd "$f" 2>/dev/null; done |
    awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
    grep -Ev '/(ld-linux[^/]*|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libanl|libnsl|libnss_[a-z]*)\.so[^/]*$' |
    sort -u)

out=""
for d in $dirs; do out="$out,$d:$d:ro"; done
for l in $libs; do out="$out,$(readlink -f "$l"):$l:ro"; done
echo "${out#,}"
