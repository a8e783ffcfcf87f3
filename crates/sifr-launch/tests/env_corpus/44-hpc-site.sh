# A site's HPC environment script: detects an architecture, picks library directories,
# builds MPI and CUDA variables only where the directories exist, and sets OpenMP defaults
# from the CPU count.
arch=$(uname -m)
case "$arch" in
    x86_64) libdir=lib64 ;;
    aarch64|arm64) libdir=lib ;;
    *) libdir=lib ;;
esac
export SITE_ARCH=$arch SITE_LIBDIR=$libdir
for prefix in /opt/openmpi /usr/lib/$arch-linux-gnu/openmpi /usr/local/cuda; do
    if [ -d "$prefix" ]; then
        export PATH="$prefix/bin:$PATH"
        export LD_LIBRARY_PATH="$prefix/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
done
if [ -z "${OMP_NUM_THREADS:-}" ]; then
    ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    export OMP_NUM_THREADS=$(( ncpu > 8 ? 8 : ncpu ))
fi
export OMP_PROC_BIND=${OMP_PROC_BIND:-close} OMP_PLACES=${OMP_PLACES:-cores}
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export PMIX_MCA_gds=hash
export SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
if [ -n "${APPTAINER_CONTAINER:-}" ]; then
    export SITE_IN_CONTAINER="${APPTAINER_CONTAINER##*/}"
    export PS1="[${APPTAINER_NAME%.*}] \\u@\\h:\\w\\$ "
fi
export LC_ALL=${LC_ALL:-C.UTF-8}
umask 022
export SITE_UMASK=$(umask)
