// Parameter initialisation: PyTorch's defaults, uniform(−a, a), identity (IRNN) or orthogonal
// recurrent weights, drawn from counter-based streams (one per named view) so the result depends
// only on the seed and the layout. Leak logits of leaky cells are set, not drawn.
import UnrollKernels
#if canImport(Glibc)
import Glibc
#endif

/// Initialises an arena in place.
public enum Initializer {
    public static func initialize(_ arena: ParameterArena, config: ModelConfig, seed: UInt64) {
        initialize(arena, cell: config.cell, hiddenSize: config.hiddenSize, scheme: config.initScheme,
                   forgetGateBias: config.forgetGateBias, leak: config.effectiveLeak,
                   clockPeriods: config.effectiveClockPeriods, seed: seed)
    }

    /// Standard deviation of W_ih under `.identity` (Le, Jaitly & Hinton 2015).
    public static let identityInputStd: Float = 0.001

    /// Initialises any layout of PyTorch-named views: `embedding.weight` (and `*.embedding.weight`)
    /// N(0, 1) under the pytorch scheme, every other view U(−1/√H, 1/√H); `.uniform(a)` draws
    /// everything from U(−a, a). With `forgetGateBias` (LSTM), every `rnn.bias_*` view (`_reverse`
    /// ones and `encoder.`/`decoder.` prefixed ones included) gets b_if = 1, b_hf = 0. `.identity`
    /// and `.orthogonal` set every H×H block of each `rnn.weight_hh_*` to I or to an orthogonal
    /// matrix and the `rnn.bias_*` views to 0; `.identity` draws `rnn.weight_ih_*` from N(0, 0.001²);
    /// every other view is as under `.pytorch`. `rnn.leak_logit_*` views (leaky cells with learned
    /// rates) get logit(α) of `leak`'s initial rates. Skip-connection weights `rnn.weight_hh_skip*`
    /// are drawn like W_hh, except under `.identity`, where they start at 0 (the start is exactly
    /// an IRNN). With `clockPeriods` (clockwork cells), the blocks of every `rnn.weight_hh_l*` below
    /// the module diagonal are set to 0. View i draws from stream i of `seed`, so the result
    /// depends only on seed and layout.
    public static func initialize(_ arena: ParameterArena, cell: CellKind, hiddenSize H: Int, scheme: InitScheme,
                                  forgetGateBias: Bool, leak: LeakRate? = nil, clockPeriods: [Int]? = nil,
                                  seed: UInt64) {
        let pyTorchBound = 1 / Float(H).squareRoot()
        for (index, view) in arena.layout.views.enumerated() {
            let p = arena.parameters(view), stream = UInt64(index)
            // `rnn.*`, or `encoder.rnn.*` / `decoder.rnn.*` in a sequence-to-sequence model.
            let local = ["encoder.", "decoder."].first { view.name.hasPrefix($0) }
                .map { view.name.dropFirst($0.count) } ?? Substring(view.name)
            let recurrent = local.hasPrefix("rnn.weight_hh"), bias = local.hasPrefix("rnn.bias_")
            let skip = local.hasPrefix("rnn.weight_hh_skip")
            switch scheme {
            case .uniform(let a):
                Philox.fillUniform(p, count: view.count, low: -a, high: a, seed: seed, stream: stream)
            case .identity where skip:
                p.update(repeating: 0, count: view.count)
            case .identity where recurrent:
                p.update(repeating: 0, count: view.count)
                for block in 0..<(view.count / (H * H)) {
                    for j in 0..<H { p[block * H * H + j * H + j] = 1 }
                }
            case .orthogonal where recurrent:
                for block in 0..<(view.count / (H * H)) {
                    fillOrthogonal(p + block * H * H, size: H, seed: seed, stream: stream, block: block)
                }
            case .identity where bias, .orthogonal where bias:
                p.update(repeating: 0, count: view.count)
            case .identity where local.hasPrefix("rnn.weight_ih"):
                fillNormal(p, count: view.count, seed: seed, stream: stream)
                for i in 0..<view.count { p[i] *= identityInputStd }
            case .pytorch, .identity, .orthogonal:
                if view.name == "embedding.weight" || view.name.hasSuffix(".embedding.weight") {
                    fillNormal(p, count: view.count, seed: seed, stream: stream)
                } else {
                    Philox.fillUniform(p, count: view.count, low: -pyTorchBound, high: pyTorchBound,
                                       seed: seed, stream: stream)
                }
            }
            if local.hasPrefix("rnn.leak_logit_"), let leak {
                // a = logit(α) = log(α / (1 − α)), so that σ(a) starts at the configured rates.
                let rates = leak.rates(hidden: view.count)
                for j in 0..<view.count { p[j] = Float(log(Double(rates[j]) / (1 - Double(rates[j])))) }
            }
            if let clockPeriods, local.hasPrefix("rnn.weight_hh_l"), view.shape == [H, H] {
                ClockPeriods.zeroLowerBlocks(p, hidden: H, modules: clockPeriods.count)
            }
            if forgetGateBias && cell == .lstm && local.hasPrefix("rnn.bias_") {
                // i,f,g,o: the forget block is [H, 2H). The sum b_if + b_hf starts at 1.
                let value: Float = local.hasPrefix("rnn.bias_ih") ? 1 : 0
                (p + H).update(repeating: value, count: H)
            }
        }
    }

    /// p (n, n) row-major = Q of the QR decomposition of an n × n standard normal matrix with R's
    /// diagonal made positive (the Haar-distributed orthogonal matrix; Mezzadri 2007), computed by
    /// modified Gram–Schmidt in Double over the columns. Deterministic in (seed, stream, block):
    /// block b draws from stream `stream | b << 40`.
    static func fillOrthogonal(_ p: UnsafeMutablePointer<Float>, size n: Int, seed: UInt64, stream: UInt64, block: Int) {
        var gaussian = [Float](repeating: 0, count: n * n)
        gaussian.withUnsafeMutableBufferPointer {
            fillNormal($0.baseAddress!, count: n * n, seed: seed, stream: stream | UInt64(block) << 40)
        }
        // columns[j] is column j of the matrix; Gram–Schmidt keeps R's diagonal = the norms > 0.
        var columns = (0..<n).map { j in (0..<n).map { i in Double(gaussian[i * n + j]) } }
        for j in 0..<n {
            for k in 0..<j {
                var d = 0.0
                for i in 0..<n { d += columns[k][i] * columns[j][i] }
                for i in 0..<n { columns[j][i] -= d * columns[k][i] }
            }
            var norm = 0.0
            for i in 0..<n { norm += columns[j][i] * columns[j][i] }
            norm = norm.squareRoot()
            // A Gaussian matrix is singular with probability 0; guard anyway with a unit vector.
            if norm < 1e-12 { columns[j] = (0..<n).map { $0 == j ? 1 : 0 }; norm = 1 }
            for i in 0..<n { columns[j][i] /= norm }
        }
        for i in 0..<n { for j in 0..<n { p[i * n + j] = Float(columns[j][i]) } }
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
