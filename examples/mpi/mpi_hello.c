/* MPI hello world that also passes a 4 MiB message round a ring: large enough to take the
 * rendezvous / single-copy (CMA) path between ranks on one node. Prints ALL_OK=1 on success. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING_BYTES (4 * 1024 * 1024)

int main(int argc, char **argv) {
    int rank, size, len;
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    printf("rank %d of %d on %s (pid %d)\n", rank, size, host, (int)getpid());
    fflush(stdout);

    unsigned char *out = malloc(RING_BYTES), *in = malloc(RING_BYTES);
    memset(out, rank & 0xff, RING_BYTES);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    MPI_Sendrecv(out, RING_BYTES, MPI_BYTE, next, 0, in, RING_BYTES, MPI_BYTE, prev, 0,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    int ok = 1;
    for (int i = 0; i < RING_BYTES; i++)
        if (in[i] != (prev & 0xff)) { ok = 0; break; }
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (rank == 0) printf("world %d ALL_OK=%d\n", size, all_ok);
    free(out);
    free(in);
    MPI_Finalize();
    return all_ok ? 0 : 1;
}
