// Entry point of `unroll-mpi-tests`, run under mpirun by launch/test-mpi. Without arguments it
// runs the collective tests; `--hang-test` and `--abort-test` make one rank die (SIGKILL) or abort
// while rank 0 waits in a collective, to check that the whole job ends instead of hanging;
// `--bench` times the reductions.
#if canImport(Glibc)
import Glibc
#endif
import UnrollDistributed

let communicator: MPICommunicator
do {
    communicator = try MPICommunicator()
} catch {
    writeLine("unroll-mpi-tests: \(error)", toStandardError: true)
    exit(2)
}

switch CommandLine.arguments.dropFirst().first {
case nil:
    let runner = MPITestRunner(communicator: communicator)
    for test in collectiveTests { runner.run(test) }
    exit(runner.summarize())
case "--hang-test":
    waitWhileRankOneFails(communicator) {
        usleep(500_000)
        kill(getpid(), SIGKILL)
    }
case "--abort-test":
    waitWhileRankOneFails(communicator) {
        usleep(300_000)
        communicator.abort("deliberate abort from rank 1 (abort test)", code: 3)
    }
case "--bench":
    do {
        try runBenchmark(communicator)
    } catch {
        communicator.abort("benchmark failed: \(error)", code: 1)
    }
case let other?:
    writeLine("usage: unroll-mpi-tests [--hang-test | --abort-test | --bench]; unknown argument \(other)",
              toStandardError: true)
    exit(2)
}

/// After a first barrier (all ranks up), rank 1 runs `failure` while the others block in a second
/// barrier that can never complete. Only the launcher tearing the job down ends them.
func waitWhileRankOneFails(_ comm: MPICommunicator, _ failure: () -> Void) -> Never {
    do {
        try comm.barrier()
        if comm.rank == 1 { failure() }
        if comm.rank == 0 { writeLine("rank 0: waiting in a barrier that rank 1 never reaches") }
        try comm.barrier()
    } catch {
        comm.abort("rank \(comm.rank): barrier failed: \(error)", code: 4)
    }
    comm.abort("rank \(comm.rank): barrier returned although rank 1 failed", code: 5)
}
