// The collective operations the trainer needs, behind one small protocol so that call sites never
// branch on the number of processes: `SingleProcessCommunicator` makes every collective a no-op and
// `MPICommunicator` runs them over MPI. Also the module's typed error and `makeCommunicator()`,
// which picks an implementation from the launch environment.
#if canImport(Glibc)
import Glibc
#endif

/// Collective operations over a fixed group of ranks (processes).
///
/// Every rank must call the collectives in the same order with matching arguments (same element
/// counts, same root). Sums are computed in a fixed order (a pairwise tree over the ranks, split at
/// half: (x0 + x1) + (x2 + x3) at four ranks, for every element), so results are bit-identical on all ranks, from run to run, and independent of
/// how a buffer is split into pieces — they depend only on the number of ranks.
///
/// Implementations are not thread-safe: call one communicator from one thread at a time.
public protocol Communicator: AnyObject {
    /// This process's rank, in `0..<size`.
    var rank: Int { get }
    /// Number of ranks in the group.
    var size: Int { get }
    /// Seconds a collective may make no progress (none of its messages completing) before the
    /// communicator ends the whole job, printing which ranks it waits for; default 600. Set the
    /// same value on every rank. Ignored by a single process, which never waits.
    /// - Precondition: > 0.
    var collectiveTimeout: Double { get set }

    /// Replaces every element of `x` with its sum over all ranks, in place. Over more than one
    /// rank a sum that is NaN is the canonical quiet NaN, so that its bits do not depend on
    /// which operand an addition took its NaN from.
    /// - Throws: `DistributedError` when the transport fails.
    func allreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws
    /// Replaces every element of `x` with its sum over all ranks, in place (NaN as for Float).
    func allreduceSum(_ x: UnsafeMutableBufferPointer<Double>) throws
    /// Replaces every element of `x` with its maximum over all ranks, in place. A NaN on any rank
    /// gives NaN on every rank (the lowest rank's NaN); of −0 and +0 the lower rank's wins.
    func allreduceMax(_ x: UnsafeMutableBufferPointer<Double>) throws
    /// Copies `bytes` from `root` (in `0..<size`) to every rank; non-roots are resized to the root's
    /// length. MPI reports an out-of-range root as an error on every rank.
    func broadcast(_ bytes: inout [UInt8], root: Int) throws
    /// Returns once every rank has entered the barrier.
    func barrier() throws
    /// Every rank passes its local verdict; returns true only if all ranks passed true. Used so that
    /// a failure detected on one rank (bad file, NaN, ...) makes every rank stop together.
    func allAgree(_ ok: Bool) throws -> Bool
    /// Throws `DistributedError.notIdentical` on every rank, with the same message, if `value`
    /// differs between ranks. The message names the first rank whose value differs from rank 0's
    /// and `what` was compared (e.g. "configuration", "dataset SHA-256", "binary version").
    func checkIdentical(_ value: String, what: String) throws

    /// Starts an in-place sum of `x` over all ranks and returns at once. `x` must stay allocated and
    /// must be neither read nor written until `wait` has returned for the handle. Every handle must
    /// be passed to `wait` exactly once; handles may be waited in any order.
    func startAllreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws -> ReductionHandle
    /// Blocks until the reduction is complete and its result is in the buffer; releases the handle.
    func wait(_ h: ReductionHandle) throws
    /// Drives progress of outstanding reductions (MPI progresses only inside MPI calls) and returns
    /// whether `h` has completed. Does not release the handle: `wait` must still be called.
    func poll(_ h: ReductionHandle) throws -> Bool

    /// Ends the whole job now after printing `message` to stderr; for unrecoverable errors where
    /// the other ranks cannot be told in a collective (they may be blocked in one).
    func abort(_ message: String, code: Int32) -> Never
}

/// Opaque ticket for a reduction started with `Communicator.startAllreduceSum`.
public struct ReductionHandle: Hashable, Sendable {
    /// Meaning is private to the communicator that issued the handle.
    public let id: Int
    /// - Parameter id: an identifier chosen by the communicator that issues the handle.
    public init(id: Int) { self.id = id }
    /// A handle for work that finished when it was started (single process, empty buffer).
    public static let completed = ReductionHandle(id: -1)
}

/// Errors raised by communicators. Messages are one line and name the failing call or value.
public enum DistributedError: Error, Equatable, CustomStringConvertible {
    /// An MPI call returned `code`; `message` is MPI's text for it (MPI_Error_string).
    case mpi(call: String, code: Int32, message: String)
    /// `checkIdentical` found that `rank` holds `rankValue` where rank 0 holds `rank0Value`.
    case notIdentical(what: String, rank: Int, rank0Value: String, rankValue: String)
    /// A buffer has more elements than one MPI call accepts (its counts are 32-bit).
    case countTooLarge(call: String, count: Int)
    /// MPI cannot be used in this process (already finalised, too little thread support, ...).
    case unavailable(String)
    /// An environment variable read by the communicator has a value it does not accept; the
    /// message names the variable and what was expected.
    case badSetting(String)

    public var description: String {
        switch self {
        case let .mpi(call, code, message):
            return "\(call) failed with MPI error \(code): \(message)"
        case let .notIdentical(what, rank, rank0Value, rankValue):
            return "\(what) differs between ranks: rank \(rank) has \(excerpt(rankValue, against: rank0Value))"
                + " but rank 0 has \(excerpt(rank0Value, against: rankValue))"
        case let .countTooLarge(call, count):
            return "\(call): \(count) elements exceed the MPI limit of \(Int32.max) per call"
        case let .unavailable(reason):
            return "MPI unavailable: \(reason)"
        case let .badSetting(message):
            return message
        }
    }
}

/// Quotes `s` whole when short, else a window around its first difference from `other`, so a
/// mismatch deep inside a long configuration string shows where it is.
private func excerpt(_ s: String, against other: String) -> String {
    let limit = 80
    let a = Array(s.unicodeScalars), b = Array(other.unicodeScalars)
    if a.count <= limit { return "\"\(s)\"" }
    var first = 0
    while first < a.count, first < b.count, a[first] == b[first] { first += 1 }
    let start = max(0, min(first - 20, a.count - limit)), end = min(a.count, start + limit)
    var view = String(String.UnicodeScalarView(a[start..<end]))
    if start > 0 { view = "…" + view }
    if end < a.count { view += "…" }
    return "\"\(view)\" (first difference at character \(first) of \(a.count))"
}

/// Environment variables set by MPI launchers: Open MPI's mpirun, PMIx (e.g. `srun --mpi=pmix`), PMI.
let mpiLauncherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]

/// Whether the process was started by an MPI launcher, judged from `lookup` (an environment reader).
func launchedByMPI(_ lookup: (String) -> String?) -> Bool {
    mpiLauncherVariables.contains { lookup($0) != nil }
}

/// Returns an `MPICommunicator` when launched under mpirun (`OMPI_COMM_WORLD_SIZE` or another
/// launcher variable is set), otherwise a `SingleProcessCommunicator` without touching MPI at all.
/// - Throws: `DistributedError` if MPI initialisation fails.
public func makeCommunicator() throws -> any Communicator {
    let underLauncher = launchedByMPI { name in getenv(name).map { String(cString: $0) } }
    return underLauncher ? try MPICommunicator() : SingleProcessCommunicator()
}

/// Writes `text` to stderr unbuffered (Swift 6 rejects Glibc's `stderr` global).
func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        bytes = bytes.dropFirst(written)
    }
}
