// SequenceLoss: cross-entropy over several labels per row and squared error, checked against
// finite differences and a direct Double evaluation; row masks, ignored labels, aliasing and
// extreme logits.
import Foundation
import Testing
import UnrollKernels
import UnrollTestSupport

@Suite struct SequenceLossTests {
    @Test func crossEntropyMatchesDirectEvaluationAndFiniteDifferences() {
        let N = 4, K = 2, C = 3
        var rng = TestRNG(seed: 31)
        let logits = FloatBuffer(rng.floats(N * K * C, -3, 3))
        let targets: [Int32] = [0, 2, 1, -1, 2, 2, 0, 1]
        let mask: [UInt8] = [1, 1, 0, 1]
        func loss() -> Double {
            SequenceLoss.crossEntropy(logits: logits.pointer, targets: targets, rowMask: mask, rows: N, targetDim: K,
                                      classes: C, gradScale: 1, dLogits: nil).lossSum
        }
        var expected = 0.0
        for n in 0..<N where mask[n] != 0 {
            for k in 0..<K where targets[n * K + k] >= 0 {
                let x = (0..<C).map { Double(logits[(n * K + k) * C + $0]) }
                expected += log(x.map { exp($0) }.reduce(0, +)) - x[Int(targets[n * K + k])]
            }
        }
        let d = FloatBuffer(count: N * K * C)
        let r = SequenceLoss.crossEntropy(logits: logits.pointer, targets: targets, rowMask: mask, rows: N,
                                          targetDim: K, classes: C, gradScale: 1, dLogits: d.pointer)
        #expect(r.count == 3)
        #expect(abs(r.lossSum - expected) <= 1e-5 * expected)
        #expect(abs(loss() - expected) <= 1e-9 * expected)
        let check = checkGradient(parameter: logits.pointer, analytic: d.pointer, indices: Array(0..<(N * K * C)),
                                  eps: 1e-2, rtol: 1e-2, atol: 1e-3, loss: loss)
        #expect(check.passed, "\(check)")
        // Masked rows and ignored labels get exactly zero gradient.
        for j in 0..<(K * C) { #expect(d[2 * K * C + j] == 0) }
        for j in 0..<C { #expect(d[3 * C + j] == 0) }
        // Aliasing the logits and scaling.
        let aliased = logits.copy()
        let ra = SequenceLoss.crossEntropy(logits: aliased.pointer, targets: targets, rowMask: mask, rows: N,
                                           targetDim: K, classes: C, gradScale: 0.5, dLogits: aliased.pointer)
        #expect(ra.lossSum == r.lossSum)
        for j in 0..<(N * K * C) { #expect(abs(aliased[j] - 0.5 * d[j]) <= 1e-7) }
    }

    @Test func crossEntropyIsStableForHugeLogits() {
        let logits: [Float] = [1e4, -1e4, 0, -3e4, 3e4, 2e4]
        let targets: [Int32] = [0, 2]
        var d = [Float](repeating: 0, count: 6)
        let r = SequenceLoss.crossEntropy(logits: logits, targets: targets, rowMask: nil, rows: 2, targetDim: 1,
                                          classes: 3, gradScale: 1, dLogits: &d)
        #expect(r.count == 2)
        #expect(abs(r.lossSum - 1e4) <= 1e-2)
        #expect(d.allSatisfy { $0.isFinite })
    }

    @Test func squaredErrorMatchesFiniteDifferences() {
        let N = 3, K = 2
        var rng = TestRNG(seed: 32)
        let p = FloatBuffer(rng.floats(N * K)), t = rng.floats(N * K)
        let mask: [UInt8] = [1, 0, 1]
        func loss() -> Double {
            SequenceLoss.squaredError(predictions: p.pointer, targets: t, rowMask: mask, rows: N, targetDim: K,
                                      gradScale: 1, dPredictions: nil).lossSum
        }
        let d = FloatBuffer(count: N * K)
        let r = SequenceLoss.squaredError(predictions: p.pointer, targets: t, rowMask: mask, rows: N, targetDim: K,
                                          gradScale: 1, dPredictions: d.pointer)
        var expected = 0.0
        for n in [0, 2] { for k in 0..<K { expected += pow(Double(p[n * K + k]) - Double(t[n * K + k]), 2) } }
        #expect(r.count == 2)
        #expect(abs(r.lossSum - expected) <= 1e-12)
        let check = checkGradient(parameter: p.pointer, analytic: d.pointer, indices: Array(0..<(N * K)),
                                  eps: 1e-2, rtol: 1e-3, atol: 1e-4, loss: loss)
        #expect(check.passed, "\(check)")
        #expect(d[2] == 0 && d[3] == 0)
    }
}
