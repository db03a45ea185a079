// Parameter initialisation: PyTorch's defaults or uniform(−a, a), drawn from counter-based
// streams (one per named view) so the result depends only on the seed and the layout.
import UnrollKernels
#if canImport(Glibc)
import Glibc
#endif

/// Initialises an arena in place.
public enum Initializer {
    public static func initialize(_ arena: ParameterArena, config: ModelConfig, seed: UInt64) {
        initialize(arena, cell: config.cell, hiddenSize: config.hiddenSize, scheme: config.initScheme,
                   forgetGateBias: config.forgetGateBias, seed: seed)
    }

    /// Initialises any layout of PyTorch-named views: `embedding.weight` (and `*.embedding.weight`)
    /// N(0, 1) under the pytorch scheme, every other view U(−1/√H, 1/√H); `.uniform(a)` draws
    /// everything from U(−a, a). With `forgetGateBias` (LSTM), every `rnn.bias_*` view (`_reverse`
    /// ones and `encoder.`/`decoder.` prefixed ones included) gets b_if = 1,
    /// b_hf = 0. View i draws from stream i of `seed`, so the result depends only on seed and layout.
    public static func initialize(_ arena: ParameterArena, cell: CellKind, hiddenSize H: Int, scheme: InitScheme,
                                  forgetGateBias: Bool, seed: UInt64) {
        let pyTorchBound = 1 / Float(H).squareRoot()
        for (index, view) in arena.layout.views.enumerated() {
            let p = arena.parameters(view), stream = UInt64(index)
            switch scheme {
            case .uniform(let a):
                Philox.fillUniform(p, count: view.count, low: -a, high: a, seed: seed, stream: stream)
            case .pytorch:
                if view.name == "embedding.weight" || view.name.hasSuffix(".embedding.weight") {
                    fillNormal(p, count: view.count, seed: seed, stream: stream)
                } else {
                    Philox.fillUniform(p, count: view.count, low: -pyTorchBound, high: pyTorchBound,
                                       seed: seed, stream: stream)
                }
            }
            // `rnn.bias_*`, or `encoder.rnn.bias_*` / `decoder.rnn.bias_*` in a sequence-to-sequence model.
            let local = ["encoder.", "decoder."].first { view.name.hasPrefix($0) }
                .map { view.name.dropFirst($0.count) } ?? Substring(view.name)
            if forgetGateBias && cell == .lstm && local.hasPrefix("rnn.bias_") {
                // i,f,g,o: the forget block is [H, 2H). The sum b_if + b_hf starts at 1.
                let value: Float = local.hasPrefix("rnn.bias_ih") ? 1 : 0
                (p + H).update(repeating: value, count: H)
            }
        }
    }

    /// Standard normal values (Box–Muller over Philox uniforms).
    static func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int, seed: UInt64, stream: UInt64) {
        var i = 0
        while i < count {
            let block = UInt64(i / 2)
            let r = Philox.block(UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                                 UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32) | 0x8000_0000,
                                 key: seed)
            let u1 = (Double(r.0) + 1) / 4_294_967_297.0, u2 = Double(r.1) / 4_294_967_296.0
            let radius = (-2 * log(u1)).squareRoot()
            p[i] = Float(radius * cos(2 * Double.pi * u2))
            if i + 1 < count { p[i + 1] = Float(radius * sin(2 * Double.pi * u2)) }
            i += 2
        }
    }
}
