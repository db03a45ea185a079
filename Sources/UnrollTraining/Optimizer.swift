// Stateful optimizers over the flat arena: the update rule is one loop over all parameters
// (OptimizerKernels); the state is named slots of moments laid out like the parameters, so a
// checkpoint stores `/optimizer/<slot>` next to `/params` and resume restores it exactly.
import UnrollKernels
import UnrollModels

/// Which update rule.
public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    case sgd, momentum, nesterov, adam, adamw, adagrad
}

/// Hyper-parameters of the optimizer (the learning rate comes from the schedule each step).
public struct OptimizerConfig: Codable, Equatable, Sendable {
    public var kind: OptimizerKind
    public var momentum: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float

    public init(kind: OptimizerKind = .sgd, momentum: Float = 0.9, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.kind = kind
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// Names of the state buffers this rule keeps (PyTorch's names where it has them).
    public var slotNames: [String] {
        switch kind {
        case .sgd: []
        case .momentum, .nesterov: ["momentum_buffer"]
        case .adam, .adamw: ["exp_avg", "exp_avg_sq"]
        case .adagrad: ["sum"]
        }
    }
}

/// Where a gradient is row-sparse: in the block `0..<blockEnd` of the arena (an embedding table
/// of rows × `width`, plus padding) only `rows` can be non-zero.
public struct SparseRows: Sendable {
    public var rows: [Int]
    public var width: Int
    public var blockEnd: Int
    public init(rows: [Int], width: Int, blockEnd: Int) {
        self.rows = rows
        self.width = width
        self.blockEnd = blockEnd
    }

    /// ‖g‖₂ of an arena gradient that is zero in the block outside `rows`: the rest of the buffer,
    /// then each row in order, summed in Double.
    public func norm(_ g: UnsafePointer<Float>, count: Int) -> Double {
        var sum = RowKernels.sumOfSquares(g + blockEnd, count: count - blockEnd)
        for row in rows { sum += RowKernels.sumOfSquares(g + row * width, count: width) }
        return sum.squareRoot()
    }
}

/// An optimizer bound to one arena layout.
public final class Optimizer {
    public let config: OptimizerConfig
    /// Number of updates applied so far (Adam's bias correction uses it).
    public var stepCount: Int = 0
    /// State buffers by slot name, each the size of the arena.
    public let slots: [String: FloatBuffer]

    public init(config: OptimizerConfig, parameterCount: Int) {
        self.config = config
        var slots: [String: FloatBuffer] = [:]
        for name in config.slotNames { slots[name] = FloatBuffer(count: parameterCount) }
        self.slots = slots
    }

    /// Applies one update with learning rate `lr` using the gradients times `gradScale` (the
    /// averaging and clipping factors, applied on the fly). With `sparse`, the gradient is known to
    /// be zero in its block except in the listed rows; plain SGD without weight decay then leaves
    /// the other rows alone (θ − lr·0 = θ exactly), every other rule still updates every element.
    public func update(_ arena: ParameterArena, lr: Float, gradScale: Float = 1, sparse: SparseRows? = nil) {
        stepCount += 1
        let p = arena.parameters.pointer, g = arena.gradients.pointer, n = arena.parameters.count
        let c = config
        if c.kind == .sgd, c.weightDecay == 0, let sparse {
            OptimizerKernels.sgd(p + sparse.blockEnd, grad: g + sparse.blockEnd, count: n - sparse.blockEnd, lr: lr,
                                 gradScale: gradScale)
            for row in sparse.rows {
                let offset = row * sparse.width
                OptimizerKernels.sgd(p + offset, grad: g + offset, count: sparse.width, lr: lr, gradScale: gradScale)
            }
            return
        }
        switch c.kind {
        case .sgd:
            OptimizerKernels.sgd(p, grad: g, count: n, lr: lr, weightDecay: c.weightDecay, gradScale: gradScale)
        case .momentum, .nesterov:
            OptimizerKernels.momentum(p, grad: g, velocity: slot("momentum_buffer"), count: n, lr: lr,
                                      momentum: c.momentum, nesterov: c.kind == .nesterov, weightDecay: c.weightDecay,
                                      gradScale: gradScale)
        case .adam, .adamw:
            OptimizerKernels.adam(p, grad: g, m: slot("exp_avg"), v: slot("exp_avg_sq"), count: n, lr: lr,
                                  beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon, step: stepCount,
                                  weightDecay: c.weightDecay, decoupledWeightDecay: c.kind == .adamw,
                                  gradScale: gradScale)
        case .adagrad:
            OptimizerKernels.adagrad(p, grad: g, sumSquares: slot("sum"), count: n, lr: lr, epsilon: c.epsilon,
                                     weightDecay: c.weightDecay, gradScale: gradScale)
        }
    }

    private func slot(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let buffer = slots[name] else { preconditionFailure("optimizer has no slot \(name)") }
        return buffer.pointer
    }
}
