// The closed-form readout's pieces (echo state networks): the normal equations against plain loops,
// the Cholesky ridge solve against a naive Gauss–Jordan solve in Double, a singular system refused,
// and the exact accumulator giving the same bits in any order and grouping.
import Testing
@testable import UnrollKernels
import UnrollTestSupport

struct RidgeTests {
    /// Deterministic values in (−1, 1).
    static func values(_ n: Int, seed: UInt64) -> [Double] {
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { Philox.fillUniform($0.baseAddress!, count: n, low: -1, high: 1, seed: seed, stream: 7) }
        return out.map { Double($0) }
    }


    @Test func normalEquationsMatchPlainLoops() {
        let n = 23, f = 5, o = 3
        let phi = Self.values(n * f, seed: 1), y = Self.values(n * o, seed: 2)
        var gram = [Double](repeating: 0.5, count: f * f), cross = [Double](repeating: -0.25, count: f * o)
        Ridge.accumulate(gram: &gram, cross: &cross, phi: phi, y: y, rows: n, features: f, outputs: o)
        for i in 0..<f {
            for j in 0..<f {
                var s = 0.5
                for r in 0..<n { s += phi[r * f + i] * phi[r * f + j] }
                #expect(abs(gram[i * f + j] - s) < 1e-12)
            }
            #expect(gram[i * f + (i + 1) % f] == gram[((i + 1) % f) * f + i], "G must be exactly symmetric")
            for k in 0..<o {
                var s = -0.25
                for r in 0..<n { s += phi[r * f + i] * y[r * o + k] }
                #expect(abs(cross[i * o + k] - s) < 1e-12)
            }
        }
    }

    @Test(arguments: [0.0, 0.01, 3.0])
    func choleskyRidgeSolveMatchesANaiveSolve(lambda: Double) throws {
        let n = 40, f = 7, o = 2
        let phi = Self.values(n * f, seed: 3), y = Self.values(n * o, seed: 4)
        var gram = [Double](repeating: 0, count: f * f), cross = [Double](repeating: 0, count: f * o)
        Ridge.accumulate(gram: &gram, cross: &cross, phi: phi, y: y, rows: n, features: f, outputs: o)
        let w = try Ridge.solve(gram: gram, cross: cross, features: f, outputs: o, lambda: lambda)
        var a = gram
        for i in 0..<f { a[i * f + i] += lambda }
        let reference = gaussJordanSolve(a, cross, n: f, m: o)
        for i in 0..<(f * o) { #expect(abs(w[i] - reference[i]) <= 1e-10 * max(1, abs(reference[i])), "w[\(i)]") }
        // The ridge solution makes the gradient of ‖ΦW − Y‖² + λ‖W‖² vanish: Φᵀ(ΦW − Y) + λW = 0.
        for i in 0..<f {
            for k in 0..<o {
                var g = lambda * w[i * o + k]
                for r in 0..<n {
                    var p = 0.0
                    for j in 0..<f { p += phi[r * f + j] * w[j * o + k] }
                    g += phi[r * f + i] * (p - y[r * o + k])
                }
                #expect(abs(g) < 1e-9)
            }
        }
    }

    @Test func aSingularSystemIsRefusedAndRidgeFixesIt() throws {
        // Column 3 repeats column 1: ΦᵀΦ is singular; with λ = 0 the solve must refuse, not return noise.
        let n = 12, f = 4, o = 1
        var phi = Self.values(n * f, seed: 5)
        for r in 0..<n { phi[r * f + 3] = phi[r * f + 1] }
        let y = Self.values(n, seed: 6)
        var gram = [Double](repeating: 0, count: f * f), cross = [Double](repeating: 0, count: f * o)
        Ridge.accumulate(gram: &gram, cross: &cross, phi: phi, y: y, rows: n, features: f, outputs: o)
        #expect(throws: RidgeError.self) { try Ridge.solve(gram: gram, cross: cross, features: f, outputs: o, lambda: 0) }
        do {
            _ = try Ridge.solve(gram: gram, cross: cross, features: f, outputs: o, lambda: 0)
        } catch let error as RidgeError {
            #expect(error.message.contains("singular") && !error.message.contains("\n"))
        }
        let w = try Ridge.solve(gram: gram, cross: cross, features: f, outputs: o, lambda: 1e-3)
        // Symmetric penalty: the two equal columns share the weight equally.
        #expect(abs(w[1] - w[3]) < 1e-9)
    }

    @Test func exactSumIsTheSameBitsInAnyOrderAndGrouping() {
        // Values spanning many binades (and signs), whose plain Double sum depends on the order.
        let count = 600
        let raw = Self.values(count, seed: 8)
        let values = raw.enumerated().map { i, v in v * Double(sign: .plus, exponent: (i * 37) % 90 - 45, significand: 1) }
        var inOrder = ExactSum(count: 1)
        for v in values { inOrder.add(v, at: 0) }
        var reversed = ExactSum(count: 1)
        for v in values.reversed() { reversed.add(v, at: 0) }
        // Three "ranks" holding interleaved shares, combined afterwards.
        var parts = (0..<3).map { _ in ExactSum(count: 1) }
        for (i, v) in values.enumerated() { parts[i % 3].add(v, at: 0) }
        var merged = parts[2]
        merged.add(parts[0])
        merged.add(parts[1])
        merged.normalize()
        inOrder.normalize()
        reversed.normalize()
        #expect(inOrder.storage == reversed.storage)
        #expect(inOrder.storage == merged.storage)
        #expect(inOrder.value(at: 0).bitPattern == merged.value(at: 0).bitPattern)
        // And the plain sums do differ with the order (so the test can tell).
        let forward = values.reduce(0, +), backward = values.reversed().reduce(0, +)
        #expect(forward != backward)
        // The exact total is within one rounding of the true sum: compare with a sum of the sorted
        // magnitudes' compensated (Kahan) total.
        var s = 0.0, c = 0.0
        for v in values.sorted(by: { abs($0) < abs($1) }) {
            let y = v - c, t = s + y
            c = (t - s) - y
            s = t
        }
        #expect(abs(inOrder.value(at: 0) - s) <= 4 * s.ulp)
    }
}
