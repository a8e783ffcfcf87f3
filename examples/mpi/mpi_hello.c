/* MPI hello world for containers on HPC nodes (OpenMPI or MPICH; the same source for both).
 *
 * Every rank prints one line with its rank, the world size, host, pid, user namespace and MPI
 * library, then the ranks:
 *   1. pass a 4 MiB message round a ring (large enough to take the rendezvous / single-copy
 *      path between ranks on one node) and check its bytes;
 *   2. send each other their pid and the address of their send buffer, and try to read the
 *      previous rank's buffer with process_vm_readv (cross-memory attach, what the MPI
 *      libraries use for large messages on one node). The kernel allows it only between
 *      processes of one user namespace, so ranks started in separate namespaces see EPERM;
 *   3. agree with an Allreduce, and rank 0 prints the summary line the tests read:
 *        world 4 ALL_OK=1 CMA=ok              (CMA=EPERM, CMA=ESRCH, ... on the first failure)
 *        userns 1                             (how many distinct user namespaces the ranks had)
 *   4. optionally sleep after MPI_Finalize (rank r sleeps r*MS milliseconds with
 *      `--stagger-ms MS`, (size-1-r)*MS with a negative MS), then read a file of the image, so
 *      a test can check that ranks leaving early do not take the container away from the rest.
 *
 * Exit status 0 only when the ring was right on every rank (and the late read worked). A CMA
 * failure is reported, not fatal: MPI itself falls back to copies through shared memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RING_BYTES (4 * 1024 * 1024)

/* Read `len` bytes at `addr` in process `pid`; 0 or an errno value. */
static int cma_read(pid_t pid, uint64_t addr, void *dst, size_t len) {
    struct iovec local = {dst, len};
    struct iovec remote = {(void *)(uintptr_t)addr, len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0) return errno;
    return (size_t)n == len ? 0 : EIO;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int main(int argc, char **argv) {
    long stagger_ms = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--stagger-ms") == 0) stagger_ms = strtol(argv[i + 1], NULL, 10);

    int rank, size, len, liblen;
    char host[MPI_MAX_PROCESSOR_NAME], lib[MPI_MAX_LIBRARY_VERSION_STRING];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    MPI_Get_library_version(lib, &liblen);
    lib[strcspn(lib, "\n,")] = '\0';
    struct stat ns;
    unsigned long long userns = stat("/proc/self/ns/user", &ns) == 0 ? (unsigned long long)ns.st_ino : 0;
    printf("rank %d of %d on %s (pid %d, userns %llu, %s)\n", rank, size, host, (int)getpid(), userns, lib);
    fflush(stdout);

    /* 1. the ring */
    unsigned char *out = malloc(RING_BYTES), *in = malloc(RING_BYTES);
    if (!out || !in) MPI_Abort(MPI_COMM_WORLD, 2);
    memset(out, rank & 0xff, RING_BYTES);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    MPI_Sendrecv(out, RING_BYTES, MPI_BYTE, next, 0, in, RING_BYTES, MPI_BYTE, prev, 0,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    int ok = 1;
    for (int i = 0; i < RING_BYTES; i++)
        if (in[i] != (prev & 0xff)) { ok = 0; break; }

    /* 2. cross-memory attach of the previous rank's send buffer */
    uint64_t mine[2] = {(uint64_t)getpid(), (uint64_t)(uintptr_t)out}, theirs[2];
    MPI_Sendrecv(mine, 2, MPI_UINT64_T, next, 1, theirs, 2, MPI_UINT64_T, prev, 1,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    memset(in, 0xee, 4096);
    int cma_err = cma_read((pid_t)theirs[0], theirs[1], in, 4096);
    if (cma_err == 0)
        for (int i = 0; i < 4096; i++)
            if (in[i] != (prev & 0xff)) { cma_err = EIO; break; }
    /* Keep every buffer alive until all the reads are done. */
    MPI_Barrier(MPI_COMM_WORLD);

    /* 3. agree */
    int all_ok = 0, worst_cma = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    MPI_Allreduce(&cma_err, &worst_cma, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    unsigned long long *nss = rank == 0 ? calloc(size, sizeof *nss) : NULL;
    MPI_Gather(&userns, 1, MPI_UNSIGNED_LONG_LONG, nss, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        int distinct = 0;
        for (int i = 0; i < size; i++) {
            int seen = 0;
            for (int j = 0; j < i; j++) seen |= nss[j] == nss[i];
            distinct += !seen;
        }
        const char *cma = worst_cma == 0 ? "ok" : strerrorname_np(worst_cma);
        printf("world %d ALL_OK=%d CMA=%s\nuserns %d\n", size, all_ok, cma ? cma : "?", distinct);
        fflush(stdout);
        free(nss);
    }
    free(out);
    free(in);
    MPI_Finalize();

    /* 4. staggered exit */
    if (stagger_ms != 0) {
        long ms = stagger_ms > 0 ? rank * stagger_ms : (size - 1 - rank) * -stagger_ms;
        sleep_ms(ms);
        FILE *f = fopen("/etc/os-release", "r");
        char line[256];
        int read_ok = f && fgets(line, sizeof line, f);
        if (f) fclose(f);
        printf("rank %d left after %ld ms: image %s\n", rank, ms, read_ok ? "readable" : "GONE");
        fflush(stdout);
        if (!read_ok) return 3;
    }
    return all_ok ? 0 : 1;
}
