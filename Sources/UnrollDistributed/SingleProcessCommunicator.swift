// The communicator for a job of one process: rank 0 of 1, where every collective is the identity.
// Lets the trainer call collectives unconditionally, and lets tests run without MPI.
#if canImport(Glibc)
import Glibc
#endif

/// Rank 0 of a group of size 1. Every collective leaves its data unchanged and never fails.
public final class SingleProcessCommunicator: Communicator {
    public let rank = 0
    public let size = 1
    /// Kept only to satisfy the protocol: one process never waits for another.
    public var collectiveTimeout: Double = 600

    public init() {}

    public func allreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws {}
    public func allreduceSum(_ x: UnsafeMutableBufferPointer<Double>) throws {}
    public func allreduceMax(_ x: UnsafeMutableBufferPointer<Double>) throws {}
    /// `root` must be 0, the only rank.
    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        precondition(root == 0, "broadcast root \(root) outside 0..<1")
    }
    public func barrier() throws {}
    public func allAgree(_ ok: Bool) throws -> Bool { ok }
    public func checkIdentical(_ value: String, what: String) throws {}
    public func startAllreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws -> ReductionHandle {
        .completed
    }
    public func wait(_ h: ReductionHandle) throws {}
    public func poll(_ h: ReductionHandle) throws -> Bool { true }

    /// Prints `message` to stderr and exits the process with `code`.
    public func abort(_ message: String, code: Int32) -> Never {
        fflush(nil)
        writeToStandardError(message.hasSuffix("\n") ? message : message + "\n")
        exit(code)
    }
}
