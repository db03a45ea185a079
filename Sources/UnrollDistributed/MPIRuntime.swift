// Process-wide MPI lifetime: MPI is initialised at most once per process (a second MPI_Init
// aborts the process) and finalised exactly once, at exit; a rank started by a launcher dies with
// it. Also the return-code check that turns every failed MPI call into a `DistributedError` naming
// the call and MPI's message.
#if canImport(Glibc)
import Glibc
#endif
import MPIShim

/// What the one initialisation of MPI in this process produced.
struct MPIRuntime: Sendable {
    /// Thread support granted by MPI_Init_thread.
    let threadLevel: Int32

    /// Initialises MPI on first use; every later access returns the same outcome. The `static let`
    /// initialiser runs once even when Swift Testing calls it from several threads at once.
    static let shared: Result<MPIRuntime, DistributedError> = Result { try initialize() }
        .mapError { $0 as? DistributedError ?? .unavailable("\($0)") }

    /// Returns the runtime, initialising MPI if this is the first call in the process.
    static func ensureInitialized() throws -> MPIRuntime { try shared.get() }

    private static func initialize() throws -> MPIRuntime {
        var finalized: Int32 = 0
        try mpiCheck(MPI_Finalized(&finalized), "MPI_Finalized")
        if finalized != 0 { throw DistributedError.unavailable("MPI was already finalised in this process") }
        // A rank must not outlive its launcher: with mpirun killed, Open MPI lets ranks run on for
        // about a second (still writing and pruning checkpoints) before they notice. The kernel
        // SIGKILLs us instead the moment the parent (mpirun, orted, slurmstepd) dies. On one node
        // Open MPI 4.1's mpirun is the ranks' parent itself, and PDEATHSIG follows the forking
        // *thread*: strace shows mpirun forking the ranks from its main thread (not one of its 3
        // helper threads), so only mpirun's own end fires it. Never for a plain single-process run.
        if launchedByMPI({ name in getenv(name).map { String(cString: $0) } }), unroll_kill_on_parent_death() != 0 {
            throw DistributedError.unavailable("prctl(PR_SET_PDEATHSIG) failed: \(String(cString: strerror(errno)))")
        }
        var initialized: Int32 = 0
        try mpiCheck(MPI_Initialized(&initialized), "MPI_Initialized")
        // SERIALIZED rather than FUNNELED: the trainer calls MPI from its main thread only, but
        // Swift Testing runs (serialised) MPI tests on whichever pool thread is free.
        let required = Int32(MPI_THREAD_SERIALIZED)
        var provided: Int32 = 0
        if initialized == 0 {
            try mpiCheck(MPI_Init_thread(nil, nil, required, &provided), "MPI_Init_thread")
            atexit(finalizeAtExit)
        } else {
            try mpiCheck(MPI_Query_thread(&provided), "MPI_Query_thread")
        }
        if provided < required {
            throw DistributedError.unavailable(
                "MPI_Init_thread granted thread level \(provided), need MPI_THREAD_SERIALIZED (\(required))")
        }
        // Errors must come back as codes so they can be thrown with the call name; communicators
        // duplicated from the world inherit this handler.
        try mpiCheck(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler")
        return MPIRuntime(threadLevel: provided)
    }

    /// True once MPI_Finalize has run (at exit); MPI must not be called after that.
    static var isFinalized: Bool {
        var finalized: Int32 = 0
        return MPI_Finalized(&finalized) == MPI_SUCCESS && finalized != 0
    }
}

/// Registered with atexit by the initialisation. Finalising is skipped if something else already
/// did it. A rank that exits on its own while others still wait in a collective would block here
/// (MPI_Finalize synchronises); such a rank must call `Communicator.abort` instead of exiting.
private func finalizeAtExit() {
    var finalized: Int32 = 0
    if MPI_Finalized(&finalized) == MPI_SUCCESS, finalized == 0 {
        _ = MPI_Finalize()  // at exit there is nobody left to report a failure to
    }
}

/// Throws `DistributedError.mpi` naming `call` unless `code` is MPI_SUCCESS.
@inline(__always)
func mpiCheck(_ code: Int32, _ call: StaticString) throws {
    if code != MPI_SUCCESS { throw DistributedError.mpi(call: "\(call)", code: code, message: mpiErrorString(code)) }
}

/// MPI's text for an error code, e.g. "MPI_ERR_ROOT: invalid root".
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &buffer, &length) == MPI_SUCCESS else { return "unknown MPI error" }
    let bytes = buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Converts an element count for an MPI call, whose counts are 32-bit.
@inline(__always)
func mpiCount(_ count: Int, _ call: StaticString) throws -> Int32 {
    guard let c = Int32(exactly: count) else { throw DistributedError.countTooLarge(call: "\(call)", count: count) }
    return c
}
