// Sums the flat gradient buffer over ranks in buckets while backward is still running. Backward
// finishes the last layers' gradients first and the layout is embedding, layer 0, …, decoder, so
// buckets are cut from the end of the buffer backwards and reduced in that order as they complete.

/// Overlaps the gradient allreduce with backward by reducing fixed buckets of the gradient buffer
/// as soon as backward has finished writing them.
///
/// Per step: call `ready(from:)` whenever everything from an offset to the end of the buffer is
/// final (with non-increasing offsets), optionally `poll()` between layers, then `finish()`, after
/// which the buffer holds the sum over ranks. The result is bit-identical to one blocking
/// `allreduceSum` of the whole buffer on the same number of ranks, because every element is summed
/// in the same order over the ranks whatever the bucket boundaries. All ranks must use the same buffer length and
/// bucket size. Reusable step after step; after the first step it allocates nothing.
public final class GradientBucketReducer {
    /// Bucket element ranges in reduction order: the first ends at the end of the buffer, each next
    /// one ends where the previous began; the last (at offset 0) may be shorter.
    public let buckets: [Range<Int>]

    private let communicator: any Communicator
    private let buffer: UnsafeMutableBufferPointer<Float>
    /// Handles of this step's buckets, by bucket index; only `0..<started` are meaningful.
    private var handles: [ReductionHandle]
    /// Buckets `0..<started` have been started this step.
    private var started = 0
    /// Buckets `0..<known` are known to be complete (from `poll`).
    private var known = 0

    /// - Parameters:
    ///   - buffer: the flat gradient buffer; must stay allocated while the reducer is used.
    ///   - bucketBytes: bucket size in bytes (e.g. 1–4 MB); rounded down to whole floats, at least one.
    ///   - communicator: the ranks to sum over.
    /// - Precondition: `bucketBytes > 0`.
    public init(buffer: UnsafeMutableBufferPointer<Float>, bucketBytes: Int, communicator: any Communicator) {
        precondition(bucketBytes > 0, "bucket size must be positive, got \(bucketBytes) bytes")
        self.buffer = buffer
        self.communicator = communicator
        let elements = max(1, bucketBytes / MemoryLayout<Float>.stride)
        buckets = Self.bucketRanges(count: buffer.count, bucketElements: elements)
        handles = Array(repeating: .completed, count: buckets.count)
    }

    /// Splits `count` elements into buckets of `bucketElements` from the end backwards: bucket 0 is
    /// `count - bucketElements ..< count`, and so on; the last bucket starts at 0 and holds the
    /// remainder. Together they cover `0..<count` exactly once. Empty for `count == 0`.
    /// - Precondition: `count >= 0`, `bucketElements > 0`.
    public static func bucketRanges(count: Int, bucketElements: Int) -> [Range<Int>] {
        precondition(count >= 0 && bucketElements > 0, "bucketRanges(count: \(count), bucketElements: \(bucketElements))")
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity((count + bucketElements - 1) / bucketElements)
        var upper = count
        while upper > 0 {
            let lower = max(0, upper - bucketElements)
            ranges.append(lower..<upper)
            upper = lower
        }
        return ranges
    }

    /// Declares `offset..<buffer.count` final for this step: starts the reduction of every bucket
    /// lying entirely inside it that has not been started yet, in bucket order, then drives
    /// progress. The caller must not write to those elements until `finish()` returns.
    /// - Precondition: `0 <= offset <= buffer.count`.
    public func ready(from offset: Int) throws {
        precondition(offset >= 0 && offset <= buffer.count, "ready(from: \(offset)) outside 0...\(buffer.count)")
        while started < buckets.count, buckets[started].lowerBound >= offset {
            let range = buckets[started]
            handles[started] = try communicator.startAllreduceSum(
                UnsafeMutableBufferPointer(rebasing: buffer[range]))
            started += 1
        }
        try poll()
    }

    /// Lets started reductions progress (MPI moves data only inside MPI calls); call it between
    /// layers of backward. Cheap when nothing is outstanding.
    public func poll() throws {
        while known < started, try communicator.poll(handles[known]) {
            known += 1
        }
    }

    /// Starts the buckets not yet started and waits for all of them; the buffer then holds the sum
    /// over ranks. Resets the reducer for the next step.
    /// - Throws: `DistributedError`; the step's result is then undefined and ranks may disagree
    ///   about what ran, so the job should be aborted.
    public func finish() throws {
        try ready(from: 0)
        for index in 0..<started {
            try communicator.wait(handles[index])
        }
        started = 0
        known = 0
    }
}
