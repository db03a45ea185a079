// Learning-rate schedules. The schedule's mutable part (plateau bookkeeping, current factor) is a
// Codable value saved in checkpoints, so a resumed run continues with the same rates.
#if canImport(Glibc)
import Glibc
#endif

/// How the learning rate evolves.
public enum LRSchedule: Codable, Equatable, Sendable {
    /// The base rate throughout.
    case constant
    /// Multiply by `factor` once per epoch after epoch `afterEpoch` (1-based): Zaremba et al.'s small
    /// model uses afterEpoch 4, factor 0.5 — lr 1 for epochs 1–4, then 0.5, 0.25, …
    case stepDecay(afterEpoch: Int, factor: Double)
    /// Multiply by `factor` when validation loss has not improved by `threshold` (relative) for
    /// `patience` evaluations.
    case plateau(factor: Double, patience: Int, threshold: Double)
    /// Linear warm-up over `warmupSteps`, then cosine decay to `minFactor`·base at `totalSteps`.
    case cosine(warmupSteps: Int, totalSteps: Int, minFactor: Double)
}

/// The evolving state of a schedule.
public struct LRScheduleState: Codable, Equatable, Sendable {
    /// Multiplier applied by plateau decay so far.
    public var plateauFactor: Double = 1
    /// Best validation loss seen by the plateau rule.
    public var plateauBest: Double = .infinity
    /// Evaluations since the last improvement.
    public var plateauBadEvaluations: Int = 0

    public init() {}
}

extension LRSchedule {
    /// The learning rate for optimizer step `step` (0-based) in epoch `epoch` (1-based).
    public func rate(base: Double, step: Int, epoch: Int, state: LRScheduleState) -> Double {
        switch self {
        case .constant:
            return base
        case .stepDecay(let after, let factor):
            return base * pow(factor, Double(max(0, epoch - after)))
        case .plateau:
            return base * state.plateauFactor
        case .cosine(let warmup, let total, let minFactor):
            if step < warmup { return base * Double(step + 1) / Double(warmup) }
            let span = max(1, total - warmup)
            let progress = min(1, Double(step - warmup) / Double(span))
            return base * (minFactor + (1 - minFactor) * 0.5 * (1 + cos(Double.pi * progress)))
        }
    }

    /// Feeds a validation loss to the schedule (plateau decay acts on it; others ignore it).
    public func observeValidation(_ loss: Double, state: inout LRScheduleState) {
        guard case .plateau(let factor, let patience, let threshold) = self else { return }
        if loss < state.plateauBest * (1 - threshold) {
            state.plateauBest = loss
            state.plateauBadEvaluations = 0
        } else {
            state.plateauBadEvaluations += 1
            if state.plateauBadEvaluations > patience {
                state.plateauFactor *= factor
                state.plateauBadEvaluations = 0
            }
        }
    }
}
