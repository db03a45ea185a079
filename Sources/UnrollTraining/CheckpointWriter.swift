// Background checkpoint writing (rank 0). The training loop takes a snapshot (`Checkpoint.snapshot`:
// the collectives and a memcpy of parameters and optimizer state) and hands it here; one writer
// thread writes, fsyncs and renames it through the same atomic path as a foreground save, then
// runs the caller's follow-up (links, pruning, log line). At most one write is in flight: the next
// save, and the end of the run, wait for it first, and its error is reported then. HDF5 is used
// from this thread only when libhdf5 serialises calls (`HDF5Library.isThreadSafe`, as Debian's
// build does); otherwise the write runs on the calling thread, as before.
import Dispatch
import Foundation
import UnrollData

/// Writes one checkpoint at a time on a background thread.
public final class CheckpointWriter: @unchecked Sendable {
    // Unchecked: `pending` and `staging` are touched by the owning thread only; the write's result
    // crosses threads in `Pending`, ordered by its semaphore.

    /// One write in flight.
    private final class Pending: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        let snapshot: CheckpointSnapshot
        var failure: (any Error)?
        init(_ snapshot: CheckpointSnapshot) { self.snapshot = snapshot }
    }

    /// Whether writes run on the writer thread (false: on the caller's, inside `start`).
    public let isBackground: Bool
    private let queue = DispatchQueue(label: "unroll.checkpoint.write", qos: .userInitiated)
    private var pending: Pending?
    /// The last finished snapshot, whose buffers the next `Checkpoint.snapshot` reuses.
    private var staging: CheckpointSnapshot?

    /// Hands over the last finished snapshot's buffers (once) for the next `Checkpoint.snapshot`;
    /// the writer keeps no reference, so they are refilled in place, not copied on write.
    public func takeStaging() -> CheckpointSnapshot? {
        defer { staging = nil }
        return staging
    }

    /// - Parameter background: write on the writer thread; only allowed (and the default) when
    ///   libhdf5 is thread-safe.
    public init(background: Bool = HDF5Library.isThreadSafe) {
        isBackground = background && HDF5Library.isThreadSafe
    }

    /// True while a write started by `start` has not been waited for.
    public var isWriting: Bool { pending != nil }

    /// Starts writing `snapshot` to `path` (`Checkpoint.write`), then runs `then` on the same
    /// thread once the file is complete under its name; an error of either is kept for `wait`.
    /// - Precondition: no write in flight (call `wait` first).
    public func start(_ snapshot: CheckpointSnapshot, to path: String, failureHook: AtomicFile.FailureHook? = nil,
                      then: @escaping @Sendable () throws -> Void = {}) {
        precondition(pending == nil, "a checkpoint write is already in flight")
        let job = Pending(snapshot)
        pending = job
        let work: @Sendable () -> Void = {
            do {
                try Checkpoint.write(snapshot, to: path, failureHook: failureHook)
                try then()
            } catch {
                job.failure = error
            }
            job.done.signal()
        }
        if isBackground { queue.async(execute: work) } else { work() }
    }

    /// Waits for the write in flight, if any.
    /// - Returns: its error (once), or nil when it succeeded or nothing was in flight.
    @discardableResult
    public func wait() -> (any Error)? {
        guard let job = pending else { return nil }
        job.done.wait()
        pending = nil
        staging = job.snapshot
        return job.failure
    }

    deinit {
        // A writer dropped with a write in flight (an error ended the run elsewhere) still lets it
        // finish: the file appears whole or not at all, never cut off by the process exiting.
        _ = wait()
    }
}
