// Shared test helpers: seeded random fills, centred finite differences with the loss accumulated
// in Double, and closeness checks that report the worst element.
import UnrollKernels

/// A small deterministic generator for test data (SplitMix64).
public struct TestRNG {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }

    public mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }

    public mutating func fill(_ p: UnsafeMutablePointer<Float>, count: Int, _ low: Float = -1, _ high: Float = 1) {
        for i in 0..<count { p[i] = uniform(low, high) }
    }

    public mutating func floats(_ count: Int, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform(low, high) }
    }
}

/// Result of comparing analytic and numeric derivatives.
public struct GradientComparison: CustomStringConvertible {
    public var worstIndex = -1
    public var worstAnalytic: Double = 0
    public var worstNumeric: Double = 0
    public var worstExcess: Double = -.infinity
    public var checked = 0

    /// True if every element satisfied |a − n| ≤ atol + rtol·max(|a|, |n|).
    public var passed: Bool { worstExcess <= 0 }

    public var description: String {
        "checked \(checked), worst at \(worstIndex): analytic \(worstAnalytic) numeric \(worstNumeric)"
    }
}

/// Centred finite differences: for each index in `indices`, perturbs `parameter[i]` by ±eps, calls
/// `loss()` (which must recompute from scratch and return a Double), and compares
/// (L(+) − L(−)) / 2eps with `analytic[i]`.
///
/// `piecewise`: for functions with kinks (relu), where ±eps may straddle a kink and the centred
/// difference mixes two slopes, an element also passes if the analytic value matches one of the
/// one-sided differences (the derivative of the piece the current point lies on).
public func checkGradient(parameter: UnsafeMutablePointer<Float>, analytic: UnsafePointer<Float>,
                          indices: [Int], eps: Float, rtol: Double, atol: Double, piecewise: Bool = false,
                          loss: () -> Double) -> GradientComparison {
    var result = GradientComparison()
    for i in indices {
        let saved = parameter[i]
        parameter[i] = saved + eps
        let plus = loss()
        parameter[i] = saved - eps
        let minus = loss()
        parameter[i] = saved
        // The step actually taken in Float may differ from 2·eps.
        let step = Double(saved + eps) - Double(saved - eps)
        let numeric = (plus - minus) / step
        let a = Double(analytic[i])
        func excessOver(_ n: Double) -> Double { abs(a - n) - (atol + rtol * max(abs(a), abs(n))) }
        var excess = excessOver(numeric)
        if piecewise && excess > 0 {
            let base = loss()
            let right = (plus - base) / (Double(saved + eps) - Double(saved))
            let left = (base - minus) / (Double(saved) - Double(saved - eps))
            excess = min(excess, excessOver(right), excessOver(left))
        }
        result.checked += 1
        if excess > result.worstExcess {
            result.worstExcess = excess
            result.worstIndex = i
            result.worstAnalytic = a
            result.worstNumeric = numeric
        }
    }
    return result
}

/// Up to `limit` indices of 0..<count, spread deterministically (all of them if count ≤ limit).
public func sampleIndices(count: Int, limit: Int, seed: UInt64) -> [Int] {
    if count <= limit { return Array(0..<count) }
    var rng = TestRNG(seed: seed)
    return (0..<limit).map { _ in rng.int(below: count) }
}

/// Largest |a − b| / (atol + rtol·|b|) over two arrays; ≤ 1 means close. Returns (ratio, index).
public func closeness(_ a: [Float], _ b: [Double], rtol: Double, atol: Double) -> (ratio: Double, index: Int) {
    precondition(a.count == b.count, "closeness: \(a.count) vs \(b.count) elements")
    var worst = 0.0, at = -1
    for i in 0..<a.count {
        let r = abs(Double(a[i]) - b[i]) / (atol + rtol * abs(b[i]))
        if r > worst || r.isNaN { worst = r.isNaN ? .infinity : r; at = i }
    }
    return (worst, at)
}

/// Σ w ⊙ x in Double.
public func dot(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) -> Double {
    var s = 0.0
    for i in 0..<count { s += Double(w[i]) * Double(x[i]) }
    return s
}
