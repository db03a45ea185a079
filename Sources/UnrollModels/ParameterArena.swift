// The flat parameter arena: one contiguous Float buffer holds every parameter, a second with the
// identical layout holds the gradients, so zeroing is one fill, the optimizer is one loop and the
// gradient allreduce is one call (or a few buckets). Named views follow PyTorch's state dict
// (`embedding.weight`, `rnn.weight_ih_l0`, …) so checkpoints load into torch.nn modules unchanged.
import UnrollKernels

/// A named, shaped region of the arena.
public struct ParameterView: Equatable, Sendable {
    /// PyTorch state-dict name, e.g. `rnn.weight_hh_l1`.
    public let name: String
    /// Row-major shape, e.g. [4H, H].
    public let shape: [Int]
    /// First element within the arena.
    public let offset: Int
    /// Number of elements (product of `shape`).
    public var count: Int { shape.reduce(1, *) }
}

/// The ordered list of views and the arena size. Views start on 64-byte boundaries; the padding
/// between them stays zero in parameters and gradients.
public struct ParameterLayout: Equatable, Sendable {
    public private(set) var views: [ParameterView] = []
    /// Total arena length in Floats, padding included.
    public private(set) var totalCount = 0

    public init() {}

    /// Appends a view; returns it.
    @discardableResult
    public mutating func append(_ name: String, shape: [Int]) -> ParameterView {
        precondition(!views.contains { $0.name == name }, "duplicate parameter \(name)")
        let view = ParameterView(name: name, shape: shape, offset: totalCount)
        views.append(view)
        totalCount += (view.count + 15) / 16 * 16
        return view
    }

    /// The view called `name`, if any.
    public func view(_ name: String) -> ParameterView? { views.first { $0.name == name } }

    /// Number of parameters (padding excluded).
    public var parameterCount: Int { views.reduce(0) { $0 + $1.count } }

    /// The layout of a recurrent language model, in the order backward finishes last-to-first:
    /// embedding, then each layer's weight_ih, weight_hh, bias_ih, bias_hh (and, for a leaky cell
    /// with learned rates, leak_logit (H); with skip connections, weight_hh_skip{d} (H, H) per d),
    /// then the decoder.
    public static func languageModel(_ config: ModelConfig) -> ParameterLayout {
        var layout = ParameterLayout()
        let G = config.cell.gateCount, H = config.hiddenSize
        layout.append("embedding.weight", shape: [config.vocabSize, config.embeddingSize])
        for k in 0..<config.layers {
            layout.append("rnn.weight_ih_l\(k)", shape: [G * H, config.inputSize(ofLayer: k)])
            layout.append("rnn.weight_hh_l\(k)", shape: [G * H, H])
            layout.append("rnn.bias_ih_l\(k)", shape: [G * H])
            layout.append("rnn.bias_hh_l\(k)", shape: [G * H])
            if config.effectiveLeak?.isLearned == true { layout.append("rnn.leak_logit_l\(k)", shape: [H]) }
            for d in config.effectiveSkipSteps { layout.append(skipWeightName(d: d, layer: k), shape: [H, H]) }
        }
        layout.append("decoder.weight", shape: [config.vocabSize, H])
        layout.append("decoder.bias", shape: [config.vocabSize])
        return layout
    }
}

/// The name of the skip-connection weights from h_{t−d} of layer `layer` (direction `suffix`).
public func skipWeightName(d: Int, layer k: Int, suffix: String = "", prefix: String = "") -> String {
    "\(prefix)rnn.weight_hh_skip\(d)_l\(k)\(suffix)"
}

/// Parameters and gradients in two flat buffers of identical layout.
public final class ParameterArena: @unchecked Sendable {
    public let layout: ParameterLayout
    /// All parameters, (totalCount).
    public let parameters: FloatBuffer
    /// All gradients, same layout; backward passes accumulate (`+=`) into it.
    public let gradients: FloatBuffer

    /// Number of Floats in the parameter layout (padding included, extras excluded).
    public var count: Int { layout.totalCount }

    public init(layout: ParameterLayout) {
        self.layout = layout
        parameters = FloatBuffer(count: layout.totalCount)
        gradients = FloatBuffer(count: layout.totalCount)
    }

    /// Pointer to the parameters of `view`.
    @inlinable public func parameters(_ view: ParameterView) -> UnsafeMutablePointer<Float> {
        parameters.pointer + view.offset
    }

    /// Pointer to the gradients of `view`.
    @inlinable public func gradients(_ view: ParameterView) -> UnsafeMutablePointer<Float> {
        gradients.pointer + view.offset
    }

    /// The view called `name`; traps on an unknown name (a programming error, not user input).
    public func view(_ name: String) -> ParameterView {
        guard let v = layout.view(name) else { preconditionFailure("no parameter named \(name)") }
        return v
    }

    /// Sets every gradient to zero (once per optimizer step).
    public func zeroGradients() { gradients.zero() }
}
