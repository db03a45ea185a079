// UpdateRule: what happens to a reduced gradient SUM, the same on every rank — divide by the global
// count, take the global norm, clip or skip a non-finite step, then the optimizer. The division and
// the clipping factor are folded into the optimizer's gradient scale rather than applied as extra
// passes over the buffer. Used by the trainer, the kernel benchmark and the tests.
import UnrollKernels
import UnrollModels

/// What one update did.
public struct UpdateOutcome: Sendable, Equatable {
    /// Global L2 norm of the averaged gradient, before clipping (NaN/Inf when skipped for it).
    public var gradNorm: Double
    public var clipped: Bool
    /// No update: the norm was not finite, or there was nothing to average over.
    public var skipped: Bool
}

public enum UpdateRule {
    /// Updates `arena`'s parameters from its gradient, which holds the SUM over `divisor` targets
    /// (or streams): the step uses the gradient divided by `divisor`, clipped by `clipMode` at
    /// `clip`. With `sparse`, the embedding block of the gradient is zero outside the listed rows
    /// (norm and plain SGD then skip the rest). Skips the update when the norm is not finite or
    /// `divisor` is 0.
    public static func apply(to arena: ParameterArena, optimizer: Optimizer, divisor: Int, clip: Double,
                             clipMode: ClipMode, lr: Float, sparse: SparseRows? = nil) -> UpdateOutcome {
        let g = arena.gradients.pointer, n = arena.count
        let average = divisor > 0 ? 1 / Double(divisor) : 0
        let norm = (sparse?.norm(g, count: n) ?? Clipping.globalNorm(g, count: n)) * average
        guard norm.isFinite, divisor > 0 else { return UpdateOutcome(gradNorm: norm, clipped: false, skipped: true) }
        var scale = average, clipped = false
        switch clipMode {
        case .norm:
            if norm > clip {
                scale *= clip / norm
                clipped = true
            }
        case .value:
            RowKernels.scale(g, by: Float(scale), count: n)
            Clipping.clipElementwise(g, count: n, limit: Float(clip))
            scale = 1
        }
        optimizer.update(arena, lr: lr, gradScale: Float(scale), sparse: sparse)
        return UpdateOutcome(gradNorm: norm, clipped: clipped, skipped: false)
    }
}
