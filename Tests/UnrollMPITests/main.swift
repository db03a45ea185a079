// Entry point of `unroll-mpi-tests`, run under mpirun by launch/test-mpi. Without arguments it
// runs the collective tests (`--only NAME,NAME…` runs just those); `--hang-test` and `--abort-test` make one rank die (SIGKILL) or abort
// while rank 0 waits in a collective, to check that the whole job ends instead of hanging;
// `--timeout-test` makes rank 1 sleep inside a step while the others wait in a reduction, to check
// the collective timeout; `--bench` times the reductions.
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
case nil, "--only":
    var selected = collectiveTests
    if CommandLine.arguments.count > 1 {
        let names = CommandLine.arguments.count > 2 ? CommandLine.arguments[2].split(separator: ",").map(String.init) : []
        let unknown = names.filter { name in !collectiveTests.contains { $0.name == name } }
        guard !names.isEmpty, unknown.isEmpty else {
            writeLine("unroll-mpi-tests: --only needs comma-separated test names; unknown: \(unknown)", toStandardError: true)
            exit(2)
        }
        selected = collectiveTests.filter { names.contains($0.name) }
    }
    let runner = MPITestRunner(communicator: communicator)
    for test in selected { runner.run(test) }
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
case "--timeout-test":
    // Rank 1 stalls (as if stopped or hung) where the others wait for the gradient sum; with a
    // 2 s timeout every other rank must print whom it waits for and the job must end.
    communicator.collectiveTimeout = 2
    var gradient = [Float](repeating: 1, count: 1000)
    do {
        try communicator.barrier()
        if communicator.rank == 1 { sleep(60) }
        try gradient.withUnsafeMutableBufferPointer { g in
            try communicator.wait(try communicator.startAllreduceSum(g))
        }
    } catch {
        communicator.abort("rank \(communicator.rank): reduction failed: \(error)", code: 4)
    }
    communicator.abort("rank \(communicator.rank): reduction returned although rank 1 stalled", code: 5)
case "--bench":
    do {
        try runBenchmark(communicator)
    } catch {
        communicator.abort("benchmark failed: \(error)", code: 1)
    }
case let other?:
    writeLine("usage: unroll-mpi-tests [--only NAME,NAME… | --hang-test | --abort-test | --timeout-test | --bench]; unknown argument \(other)",
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
