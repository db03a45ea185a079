// Initialises MPI when the test bundle is loaded, before main and before any test opens a file.
// Open MPI's singleton MPI_Init forks and execs `orted`, which inherits every descriptor then open
// without close-on-exec and keeps it (and HDF5's flock on it) for the life of the process; a later
// read-write open of that file fails ("unable to lock the file", errno 11). H5File sets
// close-on-exec right after each open, but a fork between the open and the fcntl would still leak
// the descriptor. Swift Testing runs suites in parallel with no hook that runs before all of them,
// so doing it here is the only ordering that holds for every test, current and future.
// MPIRuntime finds MPI initialised and uses it; MPI is finalised at exit.
#include <mpi.h>
#include <stdlib.h>
#include "UnrollTestBootstrap.h"

static int status = 0;

int unroll_test_bootstrap_status(void) { return status; }

static void finalize_at_exit(void) {
    int finalized = 0;
    if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
}

__attribute__((constructor)) static void unroll_test_bootstrap(void) {
    if (getenv("UNROLL_TEST_NO_MPI_BOOTSTRAP") != NULL) return;
    int initialized = 0;
    if (MPI_Initialized(&initialized) != MPI_SUCCESS) { status = -1; return; }
    if (!initialized) {
        int provided = 0;
        // SERIALIZED, as MPIRuntime requires: Swift Testing runs the (serialised) MPI tests on
        // whichever pool thread is free.
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) { status = -1; return; }
        atexit(finalize_at_exit);
    }
    status = 1;
}
