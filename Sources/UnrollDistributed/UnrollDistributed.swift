// UnrollDistributed — module overview (kept here rather than in a README.md, which SwiftPM would
// report as an unhandled file without an `exclude:` in Package.swift).
//
// Owns: the `Communicator` protocol (collectives the trainer needs), `MPICommunicator` (MPI over
// MPI_COMM_WORLD), `SingleProcessCommunicator` (one rank, every collective the identity),
// `makeCommunicator()` (MPI when started by mpirun, else single process), `GradientBucketReducer`
// (overlaps the gradient allreduce with backward, bucket by bucket) and `SparseRowReducer` (sums
// only the embedding rows some rank touched).
//
// Imports: `MPIShim` only (which also holds the C process guards: prctl, signal handler). This is the only module that imports MPI; nothing else should.
//
// Rules the implementation keeps:
// - Every MPI return code is checked (MPI_ERRORS_RETURN is set) and thrown as
//   `DistributedError.mpi(call:code:message:)`.
// - Float/Double reductions have a fixed summation order (rank 0 + rank 1 + … per element), built
//   from point-to-point messages (reduce-scatter, then allgather) rather than MPI_Allreduce, whose
//   order depends on Open MPI's algorithm choice. Results are bit-identical across ranks, runs, and
//   bucketings at a given number of ranks.
// - Non-blocking reductions: exchanges are posted on one duplicated communicator in program order;
//   gathers on a second one, strictly in start order, so the messages between two ranks on each
//   communicator are posted in the same order on both sides however far their polling has got.
// - MPI is initialised once per process (MPI_THREAD_SERIALIZED) and finalised at exit. A rank that
//   must stop while others may be inside a collective calls `abort`, not `exit`.
// - No MPI call blocks: every wait polls through `waitAll` (+Watchdog), which ends the job after
//   `collectiveTimeout` seconds without progress, naming the ranks it waits for. A rank started by
//   a launcher dies with it (PR_SET_PDEATHSIG). `StopSignals`: SIGTERM/SIGINT ask for a clean stop;
//   a process still alive a grace period later is ended by a watchdog thread.
//
// Tests: `Tests/UnrollDistributedTests` (swift test: single process and MPI singleton mode) and
// `Tests/UnrollMPITests` (executable `unroll-mpi-tests`, run by `launch/test-mpi` under mpirun).
