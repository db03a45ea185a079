// GradientSync: everything that moves one step's gradient and totals between ranks. It owns the
// bucketed reduction of the dense part of the flat gradient (started bucket by bucket while
// backward still runs), the row-sparse reduction of the embedding table (the rows some rank's
// tokens touched; the boundary comes from the model's embedding view), the exact reduction of the
// step's loss sum, target count and stop request (in Double, rank-ordered), and the time spent
// communicating. The trainer calls it in a fixed order every step; backward calls its hooks.
import UnrollDistributed
import UnrollKernels
import UnrollModels

/// A step's loss sum, number of targets and stop request: this rank's, or summed over ranks.
public struct StepTotals: Sendable, Equatable {
    public var lossSum: Double
    public var count: Int
    /// Some rank was asked to stop (a signal); reduced so that every rank stops at the same step.
    public var stop: Bool

    public init(lossSum: Double, count: Int, stop: Bool) {
        self.lossSum = lossSum
        self.count = count
        self.stop = stop
    }
}

/// Reduces the gradient in `arena` and a step's totals over the ranks of `communicator`.
public final class GradientSync {
    public let communicator: any Communicator
    let arena: ParameterArena
    /// The dense part `denseStart..<count`, reduced in buckets as backward hands it over.
    let buckets: GradientBucketReducer
    /// The embedding block `0..<denseStart`, reduced by rows (nil: no embedding, all dense).
    let embedding: SparseRowReducer?
    let denseStart: Int
    /// Seconds spent in communication calls since `beginStep`.
    public private(set) var communicationSeconds = 0.0
    /// This step's hand-overs: each `gradientsReady` offset with the compute time at which it came
    /// (seconds since `beginStep` minus the communication time until then), in call order. With
    /// `backwardEndSeconds`, the schedule `launch/scaling-model` replays (`bench-train` reports the
    /// medians). Capacity kept from step to step.
    public private(set) var readyTimeline: [(offset: Int, seconds: Double)] = []
    /// Compute time since `beginStep` (communication excluded) at which `finish` was called: the
    /// end of forward and backward.
    public private(set) var backwardEndSeconds = 0.0
    private var stepStart = 0.0
    /// Loss sum, count and stop flag, reduced in place every step (allocated once).
    private var totals = [Double](repeating: 0, count: 3)
    /// The first error of a call made from a backward hook (hooks cannot throw); rethrown by `finish`.
    private var failure: (any Error)?

    /// - Parameter embedding: the model's embedding table, which must start the arena (offset 0);
    ///   its gradient is row-sparse. Nil reduces the whole gradient in buckets.
    public init(arena: ParameterArena, embedding: ParameterView?, bucketBytes: Int, communicator: any Communicator) {
        self.communicator = communicator
        self.arena = arena
        if let embedding, embedding.offset == 0, embedding.shape.count == 2 {
            self.embedding = SparseRowReducer(rows: embedding.shape[0], width: embedding.shape[1], communicator: communicator)
            denseStart = arena.layout.views.first { $0.offset > 0 }?.offset ?? arena.count
        } else {
            self.embedding = nil
            denseStart = 0
        }
        let gradients = UnsafeMutableBufferPointer(start: arena.gradients.pointer + denseStart, count: arena.count - denseStart)
        buckets = GradientBucketReducer(buffer: gradients, bucketBytes: bucketBytes, communicator: communicator)
    }

    /// Elements at the start of the arena reduced by rows (the embedding table); the rest is
    /// reduced in buckets.
    public var denseOffset: Int { denseStart }
    /// Width of the row-reduced embedding table (nil: none).
    public var embeddingWidth: Int? { embedding?.width }

    /// The embedding rows that can be non-zero after the last `finish` (nil: all of them).
    public var sparseRows: SparseRows? {
        guard let embedding, let rows = embedding.reducedRows else { return nil }
        return SparseRows(rows: rows, width: embedding.width, blockEnd: denseStart)
    }

    /// Zeroes the gradient before a step; only the embedding rows the last step reduced can be
    /// non-zero, so only those are cleared in the (large) table.
    public func zeroGradients() {
        guard let sparse = sparseRows else {
            arena.zeroGradients()
            return
        }
        let g = arena.gradients.pointer
        (g + denseStart).update(repeating: 0, count: arena.count - denseStart)
        for row in sparse.rows { (g + row * sparse.width).update(repeating: 0, count: sparse.width) }
    }

    /// Starts a step: agreeing on the embedding rows touched by `touchedRows` (this rank's input
    /// token ids) overlaps forward. Collective.
    public func beginStep<S: Sequence>(touchedRows: S) throws where S.Element: BinaryInteger {
        communicationSeconds = 0
        failure = nil
        readyTimeline.removeAll(keepingCapacity: true)
        stepStart = monotonicSeconds()
        try timed { try embedding?.begin(touched: touchedRows) }
    }

    /// Backward hook: the gradient from `offset` to the end is final; starts reducing it.
    public func gradientsReady(from offset: Int) {
        readyTimeline.append((offset, monotonicSeconds() - stepStart - communicationSeconds))
        hook {
            try buckets.ready(from: max(0, offset - denseStart))
            if offset == 0 { try embedding?.start(arena.gradients.pointer) }
        }
    }

    /// Backward hook, after each time step: lets started reductions progress.
    public func poll() {
        hook {
            try buckets.poll()
            _ = try embedding?.poll()
        }
    }

    /// Completes every reduction of the step and sums `local` over the ranks. Collective.
    /// - Returns: the global totals.
    public func finish(_ local: StepTotals) throws -> StepTotals {
        backwardEndSeconds = monotonicSeconds() - stepStart - communicationSeconds
        if let failure { throw failure }
        return try timed {
            try buckets.finish()
            try embedding?.finish()
            totals[0] = local.lossSum
            totals[1] = Double(local.count)
            totals[2] = local.stop ? 1 : 0
            try totals.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
            return StepTotals(lossSum: totals[0], count: Int(totals[1]), stop: totals[2] > 0)
        }
    }

    private func timed<R>(_ call: () throws -> R) throws -> R {
        let t0 = monotonicSeconds()
        defer { communicationSeconds += monotonicSeconds() - t0 }
        return try call()
    }

    /// One communication call from a hook: timed, skipped once a call has failed.
    private func hook(_ call: () throws -> Void) {
        guard failure == nil else { return }
        do { try timed(call) } catch { failure = error }
    }
}
