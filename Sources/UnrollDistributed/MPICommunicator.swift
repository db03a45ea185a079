// `Communicator` over MPI_COMM_WORLD: blocking collectives, consensus helpers (allAgree,
// checkIdentical) and abort. Floating-point reductions and the non-blocking ones live in
// MPICommunicator+Reduction.swift; the polling wait with its timeout in +Watchdog.swift. The
// "blocking" collectives here are non-blocking MPI ones finished by that wait, so that no MPI call
// can block forever. This module is the only importer of the MPI shim.
#if canImport(Glibc)
import Glibc
#endif
import MPIShim

/// The ranks of an MPI job (MPI_COMM_WORLD). Initialises MPI on first construction in the process
/// and finalises it at exit.
///
/// Constructing one is collective: every rank must construct its communicators in the same order.
/// Errors are returned by MPI (MPI_ERRORS_RETURN) and thrown as `DistributedError.mpi`. After a
/// thrown error the ranks may disagree about which collectives ran, so the usual reaction is
/// `abort(_:code:)`. Wait for every started reduction before releasing the communicator.
/// A wait that makes no progress for `collectiveTimeout` seconds ends the job (MPI_Abort) after
/// printing which ranks it waits for.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int

    /// Blocking collectives and the first (exchange) phase of reductions, which all ranks start
    /// in program order.
    let program: MPI_Comm
    /// Second (gather) phase of non-blocking reductions. It starts when the exchange is seen to
    /// have finished, a moment that differs between ranks; a separate communicator keeps those
    /// starts from interleaving differently with `program`'s collectives on different ranks.
    let gather: MPI_Comm
    /// Status messages of the collective timeout only (see +Watchdog), apart from all other traffic.
    let watchdog: MPI_Comm
    /// Index output of MPI_Testsome in `waitAll`, one per request of a reduction slot.
    let waitIndices: UnsafeMutablePointer<Int32>

    /// Seconds a wait may go without any of its requests completing before the job is ended.
    /// Default 600. Should be the same on every rank.
    /// - Precondition: > 0.
    public var collectiveTimeout: Double = 600 {
        didSet { precondition(collectiveTimeout > 0, "collective timeout must be > 0 s, got \(collectiveTimeout)") }
    }

    /// Reusable storage for reductions; a handle names a slot. Grows only, so that steady-state
    /// steps allocate nothing.
    var slots: [ReductionSlot] = []
    /// Slots in their exchange phase, in start order; they move to the gather phase in this order.
    var exchanging: [Int] = []
    /// Slots of the logarithmic schedule still in their rounds, in start order.
    var stepping: [Int] = []

    /// How reductions are scheduled (see `ReductionSchedule`); the result is the same bit for bit
    /// either way. Default `ReductionSchedule.preferred(ranks: size)`, or `linear` when the
    /// environment variable `UNROLL_REDUCTION_SCHEDULE` is `linear`. Must be the same on every rank
    /// and changed only while no reduction is in flight (every handle waited).
    /// - Precondition: `logarithmic` only for a power-of-two number of ranks ≥ 2.
    public var reductionSchedule: ReductionSchedule {
        didSet {
            precondition(reductionSchedule == .linear || ReductionSchedule.preferred(ranks: size) == .logarithmic,
                         "the logarithmic reduction schedule needs a power-of-two number of ranks, not \(size)")
            precondition(slots.allSatisfy { $0.state == .idle },
                         "reductionSchedule changed while a reduction is in flight")
        }
    }

    /// Storage for blocking reductions.
    let blockingSlot: ReductionSlot
    /// Number of buffer allocations made for reductions (slots or scratch growth); tests use it to
    /// check that repeated steps of the same shape allocate nothing.
    var reductionAllocations = 0

    /// Joins MPI_COMM_WORLD, initialising MPI if needed.
    /// - Throws: `DistributedError` if MPI cannot be initialised or the communicators duplicated,
    ///   or `UNROLL_REDUCTION_SCHEDULE` is set to something other than `linear` or `logarithmic`.
    public init() throws {
        _ = try MPIRuntime.ensureInitialized()
        var r: Int32 = 0, s: Int32 = 0
        try mpiCheck(MPI_Comm_rank(MPI_COMM_WORLD, &r), "MPI_Comm_rank")
        try mpiCheck(MPI_Comm_size(MPI_COMM_WORLD, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        var schedule = ReductionSchedule.preferred(ranks: size)
        if let setting = getenv("UNROLL_REDUCTION_SCHEDULE").map({ String(cString: $0) }), !setting.isEmpty {
            guard let chosen = ReductionSchedule(rawValue: setting) else {
                throw DistributedError.badSetting(
                    "UNROLL_REDUCTION_SCHEDULE: expected linear or logarithmic, got '\(setting)'")
            }
            // Logarithmic where it applies (the default); linear on request.
            if chosen == .linear { schedule = .linear }
        }
        var made: [MPI_Comm] = []
        do {
            for _ in 0..<3 { made.append(try duplicateWorld()) }
        } catch {
            for comm in made {
                var p: MPI_Comm? = comm
                _ = MPI_Comm_free(&p)  // already failing; the first error is the one to report
            }
            throw error
        }
        program = made[0]
        gather = made[1]
        watchdog = made[2]
        blockingSlot = ReductionSlot(ranks: size)
        reductionSchedule = schedule
        waitIndices = .allocate(capacity: max(2, 2 * size))
    }

    deinit {
        // Freeing after MPI_Finalize is erroneous, e.g. for an instance that outlives main.
        waitIndices.deallocate()
        guard !MPIRuntime.isFinalized else { return }
        var p: MPI_Comm? = program, g: MPI_Comm? = gather, w: MPI_Comm? = watchdog
        _ = MPI_Comm_free(&p)  // deinit cannot throw; a failure here leaks one handle
        _ = MPI_Comm_free(&g)
        _ = MPI_Comm_free(&w)
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        // An out-of-range root is reported by MPI (MPI_ERR_ROOT) on every rank.
        let root32 = Int32(clamping: root)
        var count = Int64(bytes.count)
        try withUnsafeMutablePointer(to: &count) { p in
            var request: MPI_Request? = MPI_REQUEST_NULL
            try mpiCheck(MPI_Ibcast(p, 1, MPI_INT64_T, root32, program, &request), "MPI_Ibcast")
            try waitAll(&request, count: 1, "broadcast", peers: .collective)
        }
        if rank != root, bytes.count != Int(count) {
            bytes = [UInt8](repeating: 0, count: Int(count))
        }
        let chunk = Int(Int32.max)
        try bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = min(chunk, raw.count - offset)
                var request: MPI_Request? = MPI_REQUEST_NULL
                try mpiCheck(MPI_Ibcast(raw.baseAddress! + offset, Int32(n), MPI_BYTE, root32, program, &request),
                             "MPI_Ibcast")
                try waitAll(&request, count: 1, "broadcast", peers: .collective)
                offset += n
            }
        }
    }

    public func barrier() throws {
        var request: MPI_Request? = MPI_REQUEST_NULL
        try mpiCheck(MPI_Ibarrier(program, &request), "MPI_Ibarrier")
        try waitAll(&request, count: 1, "barrier", peers: .collective)
    }

    public func allAgree(_ ok: Bool) throws -> Bool {
        try minimum(ok ? 1 : 0, "allAgree") == 1
    }

    /// The minimum of `value` over all ranks.
    private func minimum(_ value: Int32, _ what: StaticString) throws -> Int32 {
        var result = value
        try withUnsafeMutablePointer(to: &result) { p in
            var request: MPI_Request? = MPI_REQUEST_NULL
            try mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, p, 1, MPI_INT32_T, MPI_MIN, program, &request), "MPI_Iallreduce")
            try waitAll(&request, count: 1, what, peers: .collective)
        }
        return result
    }

    public func checkIdentical(_ value: String, what: String) throws {
        let mine = Array(value.utf8)
        var reference = mine
        try broadcast(&reference, root: 0)
        // Lowest rank whose value differs from rank 0's, or `size` if none does.
        let first = try minimum(Int32(reference == mine ? size : rank), "checkIdentical")
        guard first < size else { return }
        // Fetch the differing value so that every rank can throw the same message.
        var theirs = mine
        try broadcast(&theirs, root: Int(first))
        throw DistributedError.notIdentical(what: what, rank: Int(first),
                                            rank0Value: String(decoding: reference, as: UTF8.self),
                                            rankValue: String(decoding: theirs, as: UTF8.self))
    }

    /// Prints `message` to stderr prefixed with the rank, then MPI_Abort on MPI_COMM_WORLD: the
    /// launcher kills every rank, including ranks blocked in a collective.
    public func abort(_ message: String, code: Int32) -> Never {
        fflush(nil)
        writeToStandardError("[rank \(rank)] " + (message.hasSuffix("\n") ? message : message + "\n"))
        _ = MPI_Abort(MPI_COMM_WORLD, code)
        _exit(code)  // MPI_Abort does not return; this is for a broken MPI only
    }
}

/// MPI_Comm_dup of MPI_COMM_WORLD (inherits its MPI_ERRORS_RETURN handler). Collective.
private func duplicateWorld() throws -> MPI_Comm {
    var comm: MPI_Comm? = nil
    try mpiCheck(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup")
    guard let comm else { throw DistributedError.unavailable("MPI_Comm_dup returned no communicator") }
    return comm
}

extension MPICommunicator {
    /// Benchmark reference: median seconds of a plain in-place `MPI_Allreduce` (float, sum) of
    /// `count` floats over MPI_COMM_WORLD, on a preallocated buffer, after one warm-up call.
    /// Collective. Unroll's own reductions use a fixed rank order instead (see +Reduction).
    public func rawAllreduceSeconds(count: Int, repeats: Int) throws -> Double {
        var buffer = [Float](repeating: 1, count: max(1, count))
        var times: [Double] = []
        for i in 0...max(1, repeats) {
            try barrier()
            let t0 = MPI_Wtime()
            try buffer.withUnsafeMutableBufferPointer { b in
                // The one plain blocking collective (no timeout): it is what this benchmark times.
                try mpiCheck(MPI_Allreduce(MPI_IN_PLACE, b.baseAddress, Int32(count), MPI_FLOAT, MPI_SUM, program),
                             "MPI_Allreduce")
            }
            if i > 0 { times.append(MPI_Wtime() - t0) }
        }
        times.sort()
        return times[times.count / 2]
    }
}
