// An error that every rank throws at the same point after the ranks agreed that something failed
// (`Communicator.allAgree`), e.g. a checkpoint that rank 0 could not write. No rank is left inside
// a collective, so the job can end normally, every rank with a non-zero status, and rank 0's
// message is the only one to print: no MPI_Abort, no second copy of the message.

/// Wraps the error a rank throws after a collective agreement on failure; the description is the
/// wrapped error's (rank 0 holds the real cause, other ranks a summary).
public struct AgreedError: Error, CustomStringConvertible {
    /// The error this rank saw (on ranks other than the failing one, a summary of it).
    public let underlying: any Error

    public init(_ underlying: any Error) { self.underlying = underlying }

    public var description: String { String(describing: underlying) }
}
