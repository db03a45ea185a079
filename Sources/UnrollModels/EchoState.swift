// Echo state networks (Deep Learning §10.8; Jaeger 2001; Lukoševičius 2012, "A practical guide to
// applying echo state networks"): a fixed random reservoir whose states a trained linear readout
// reads. The reservoir is a leaky-integration layer (LeakyLayer, α fixed; α = 1 is Jaeger's plain
// ESN) with W_hh sparse (each entry nonzero with probability `density`, U(−1, 1)) and scaled to
// spectral radius `radius`, W_ih and b_ih U(−s, s) with s = `inputScale`, b_hh = 0. The spectral
// radius is estimated by power iteration in Double from a seeded start vector, so the same seed
// gives the same reservoir bits on every rank. The readout (`head.*`) is solved in closed form by
// the training task (ridge regression, UnrollKernels/Ridge.swift); nothing here is trained.
import UnrollKernels
#if canImport(Glibc)
import Glibc
#endif

/// The reservoir and readout settings of `--cell esn`.
public struct EchoStateConfig: Codable, Equatable, Sendable {
    /// Spectral radius W_hh is scaled to (`--radius`, > 0).
    public var radius: Double
    /// Probability that an entry of W_hh is nonzero (`--density`, in (0, 1]).
    public var density: Double
    /// W_ih and b_ih are drawn from U(−s, s) (`--input-scale`, > 0).
    public var inputScale: Double
    /// Ridge penalty λ of the readout solve (`--ridge`, ≥ 0; λ = 0 is least squares).
    public var ridge: Double

    public static let defaultRadius = 0.9, defaultDensity = 0.1, defaultInputScale = 1.0, defaultRidge = 1e-6
    public static let `default` = EchoStateConfig(radius: defaultRadius, density: defaultDensity,
                                                  inputScale: defaultInputScale, ridge: defaultRidge)

    public init(radius: Double, density: Double, inputScale: Double, ridge: Double) {
        self.radius = radius
        self.density = density
        self.inputScale = inputScale
        self.ridge = ridge
    }

    /// The first out-of-range setting in one line naming its option, or nil.
    public func problem() -> String? {
        if !(radius > 0 && radius.isFinite) { return "--radius must be a finite number > 0, got \(radius)" }
        if !(density > 0 && density <= 1) { return "--density must be in (0, 1], got \(density)" }
        if !(inputScale > 0 && inputScale.isFinite) { return "--input-scale must be a finite number > 0, got \(inputScale)" }
        if !(ridge >= 0 && ridge.isFinite) { return "--ridge must be a finite number ≥ 0, got \(ridge)" }
        return nil
    }

    /// The leak rate an ESN uses without `--leak`: α = 1, no leak (Jaeger's ESN).
    public static let defaultLeak = LeakRate.fixed(1)
}

/// Reservoir construction and measurement.
public enum EchoState {
    /// Power-iteration steps: a burn-in, then the geometric mean of the growth factors over the rest.
    static let burnIn = 500, measured = 2500

    /// Fills the reservoir views of `arena` (every `rnn.*` view and `embedding.weight`) from `seed`;
    /// view i draws from stream i (as `Initializer`), W_hh's pattern and values from two further
    /// streams of it. Token embeddings (fixed, like the rest of the reservoir) are N(0, 1/E), so an
    /// input vector has unit expected squared norm. The head is set to zero (it is solved).
    public static func initialize(_ arena: ParameterArena, hiddenSize H: Int, config: EchoStateConfig, seed: UInt64) {
        let s = Float(config.inputScale)
        for (index, view) in arena.layout.views.enumerated() {
            let p = arena.parameters(view), stream = UInt64(index)
            if view.name.hasPrefix("rnn.weight_hh") {
                fillReservoir(p, size: H, config: config, seed: seed, stream: stream)
            } else if view.name.hasPrefix("rnn.weight_ih") || view.name.hasPrefix("rnn.bias_ih") {
                Philox.fillUniform(p, count: view.count, low: -s, high: s, seed: seed, stream: stream)
            } else if view.name == "embedding.weight" {
                Initializer.fillNormal(p, count: view.count, seed: seed, stream: stream)
                let scale = 1 / Float(view.shape[1]).squareRoot()
                for i in 0..<view.count { p[i] *= scale }
            } else {
                // b_hh, head.weight, head.bias.
                p.update(repeating: 0, count: view.count)
            }
        }
    }

    /// w (H, H) row-major: each entry nonzero with probability `density`, U(−1, 1), then scaled so
    /// that its spectral radius (by `spectralRadius`) is `radius`. A pattern whose radius is 0
    /// (nilpotent, possible at tiny H·density) is left unscaled; the training task refuses it.
    static func fillReservoir(_ w: UnsafeMutablePointer<Float>, size H: Int, config: EchoStateConfig,
                              seed: UInt64, stream: UInt64) {
        let n = H * H
        var pattern = [Float](repeating: 0, count: n)
        pattern.withUnsafeMutableBufferPointer {
            Philox.fillUniform($0.baseAddress!, count: n, low: 0, high: 1, seed: seed, stream: stream | 1 << 40)
        }
        Philox.fillUniform(w, count: n, low: -1, high: 1, seed: seed, stream: stream | 2 << 40)
        let density = Float(config.density)
        for i in 0..<n where !(pattern[i] < density) { w[i] = 0 }
        let rho = spectralRadius(UnsafePointer(w), size: H, seed: seed, stream: stream | 3 << 40)
        guard rho > 0 else { return }
        let factor = config.radius / rho
        for i in 0..<n where w[i] != 0 { w[i] = Float(Double(w[i]) * factor) }
    }

    /// The spectral radius max |λ_i| of w (H, H) row-major, estimated by power iteration in Double
    /// (sparse rows, plain loops in a fixed order, so the result is the same bits everywhere):
    /// v ← W v / ‖W v‖ from a seeded start, and ρ = exp(mean log ‖W v‖) over the last
    /// `measured` of `burnIn + measured` steps — the geometric mean copes with a dominant complex
    /// pair, whose iterates rotate instead of converging. 0 when an iterate vanishes (nilpotent).
    public static func spectralRadius(_ w: UnsafePointer<Float>, size H: Int, seed: UInt64, stream: UInt64) -> Double {
        // Compressed rows.
        var start = [Int](repeating: 0, count: H + 1), columns: [Int] = [], values: [Double] = []
        for i in 0..<H {
            for j in 0..<H where w[i * H + j] != 0 {
                columns.append(j)
                values.append(Double(w[i * H + j]))
            }
            start[i + 1] = columns.count
        }
        guard !values.isEmpty else { return 0 }
        var v = [Float](repeating: 0, count: H)
        v.withUnsafeMutableBufferPointer {
            Philox.fillUniform($0.baseAddress!, count: H, low: -1, high: 1, seed: seed, stream: stream)
        }
        var x = v.map { Double($0) }, y = [Double](repeating: 0, count: H)
        func normalize(_ z: inout [Double]) -> Double {
            var s = 0.0
            for value in z { s += value * value }
            let norm = s.squareRoot()
            if norm > 0 { for i in 0..<H { z[i] /= norm } }
            return norm
        }
        guard normalize(&x) > 0 else { return 0 }
        var logSum = 0.0
        for step in 0..<(burnIn + measured) {
            for i in 0..<H {
                var s = 0.0
                for e in start[i]..<start[i + 1] { s += values[e] * x[columns[e]] }
                y[i] = s
            }
            let growth = normalize(&y)
            if growth == 0 { return 0 }
            if step >= burnIn { logSum += log(growth) }
            swap(&x, &y)
        }
        return exp(logSum / Double(measured))
    }
}
