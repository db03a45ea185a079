// Optimizer rules against their textbook definitions (PyTorch's torch.optim documentation),
// computed independently in Double, and the learning-rate schedules.
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport
import UnrollTraining
#if canImport(Glibc)
import Glibc
#endif

@Suite struct OptimizerTests {
    /// Runs 3 steps of `kind` on a 1-view arena with fixed gradients and compares with `reference`,
    /// which maps (θ, g, step, state) → θ' in Double.
    func check(_ config: OptimizerConfig, lr: Double,
               reference: (inout [Double], [Double], Int, inout [String: [Double]]) -> Void) {
        var layout = ParameterLayout()
        layout.append("w", shape: [5])
        let arena = ParameterArena(layout: layout)
        var rng = TestRNG(seed: 1)
        let optimizer = Optimizer(config: config, parameterCount: arena.parameters.count)
        var theta = (0..<5).map { _ in Double(rng.uniform(-1, 1)) }
        for i in 0..<5 { arena.parameters[i] = Float(theta[i]) }
        var state: [String: [Double]] = [:]
        for step in 1...3 {
            let g = (0..<5).map { _ in Double(rng.uniform(-1, 1)) }
            for i in 0..<5 { arena.gradients[i] = Float(g[i]) }
            optimizer.update(arena, lr: Float(lr))
            reference(&theta, g, step, &state)
        }
        #expect(optimizer.stepCount == 3)
        for i in 0..<5 {
            #expect(abs(Double(arena.parameters[i]) - theta[i]) < 1e-5, "\(config.kind) element \(i)")
        }
    }

    /// A table whose gradient is zero outside a few rows, then a dense part: the sparse SGD update
    /// must equal the dense one bit for bit, the sparse norm the dense norm (to float rounding), and
    /// rules that touch every element (momentum) must ignore the sparsity hint.
    @Test(arguments: [OptimizerKind.sgd, .momentum])
    func sparseRowsMatchDenseUpdate(kind: OptimizerKind) {
        var layout = ParameterLayout()
        layout.append("embedding.weight", shape: [50, 6])
        layout.append("dense", shape: [37])
        let rows = [3, 17, 18, 49], width = 6, blockEnd = layout.views[1].offset
        var rng = TestRNG(seed: 7)
        func arena() -> ParameterArena {
            let a = ParameterArena(layout: layout)
            var r = TestRNG(seed: 11)
            for i in 0..<a.count { a.parameters[i] = r.uniform(-1, 1) }
            return a
        }
        let dense = arena(), sparse = arena()
        let config = OptimizerConfig(kind: kind, momentum: 0.9)
        let denseOptimizer = Optimizer(config: config, parameterCount: dense.count)
        let sparseOptimizer = Optimizer(config: config, parameterCount: sparse.count)
        let hint = SparseRows(rows: rows, width: width, blockEnd: blockEnd)
        for _ in 0..<3 {
            dense.zeroGradients()
            for row in rows { for j in 0..<width { dense.gradients[row * width + j] = rng.uniform(-1, 1) } }
            for i in blockEnd..<(blockEnd + 37) { dense.gradients[i] = rng.uniform(-1, 1) }
            sparse.gradients.pointer.update(from: dense.gradients.pointer, count: dense.gradients.count)
            let denseNorm = Clipping.globalNorm(dense.gradients.pointer, count: dense.count)
            let sparseNorm = hint.norm(sparse.gradients.pointer, count: sparse.count)
            #expect(abs(sparseNorm - denseNorm) <= 1e-6 * denseNorm)  // float partial sums
            denseOptimizer.update(dense, lr: 0.3, gradScale: 0.5)
            sparseOptimizer.update(sparse, lr: 0.3, gradScale: 0.5, sparse: hint)
        }
        for i in 0..<dense.count {
            #expect(dense.parameters[i].bitPattern == sparse.parameters[i].bitPattern, "element \(i)")
        }
    }

    @Test func sgdWithWeightDecay() {
        check(OptimizerConfig(kind: .sgd, weightDecay: 0.1), lr: 0.5) { p, g, _, _ in
            for i in p.indices { p[i] -= 0.5 * (g[i] + 0.1 * p[i]) }
        }
    }

    @Test(arguments: [false, true])
    func momentumAndNesterov(nesterov: Bool) {
        check(OptimizerConfig(kind: nesterov ? .nesterov : .momentum, momentum: 0.9), lr: 0.1) { p, g, _, s in
            var v = s["v"] ?? [Double](repeating: 0, count: p.count)
            for i in p.indices {
                v[i] = 0.9 * v[i] + g[i]
                p[i] -= 0.1 * (nesterov ? g[i] + 0.9 * v[i] : v[i])
            }
            s["v"] = v
        }
    }

    @Test(arguments: [false, true])
    func adamAndAdamW(decoupled: Bool) {
        let config = OptimizerConfig(kind: decoupled ? .adamw : .adam, beta1: 0.9, beta2: 0.99, epsilon: 1e-8,
                                     weightDecay: 0.01)
        check(config, lr: 0.01) { p, g, t, s in
            var m = s["m"] ?? [Double](repeating: 0, count: p.count)
            var v = s["v"] ?? [Double](repeating: 0, count: p.count)
            for i in p.indices {
                var gi = g[i]
                if decoupled { p[i] *= 1 - 0.01 * 0.01 } else { gi += 0.01 * p[i] }
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.99 * v[i] + 0.01 * gi * gi
                let mHat = m[i] / (1 - pow(0.9, Double(t))), vHat = v[i] / (1 - pow(0.99, Double(t)))
                p[i] -= 0.01 * mHat / (vHat.squareRoot() + 1e-8)
            }
            s["m"] = m
            s["v"] = v
        }
    }

    @Test func adagrad() {
        check(OptimizerConfig(kind: .adagrad, epsilon: 1e-10), lr: 0.1) { p, g, _, s in
            var sum = s["s"] ?? [Double](repeating: 0, count: p.count)
            for i in p.indices {
                sum[i] += g[i] * g[i]
                p[i] -= 0.1 * g[i] / (sum[i].squareRoot() + 1e-10)
            }
            s["s"] = sum
        }
    }

    @Test func clippingScalesOnlyAboveThreshold() {
        let g = FloatBuffer([3, 4])   // norm 5
        let (norm, clipped) = Clipping.clipByGlobalNorm(g.pointer, count: 2, maxNorm: 10)
        #expect(norm == 5 && !clipped && g.array == [3, 4])
        let (norm2, clipped2) = Clipping.clipByGlobalNorm(g.pointer, count: 2, maxNorm: 1)
        #expect(norm2 == 5 && clipped2)
        #expect(abs(g[0] - 0.6) < 1e-7 && abs(g[1] - 0.8) < 1e-7)
        let bad = FloatBuffer([.nan, 1])
        let (norm3, clipped3) = Clipping.clipByGlobalNorm(bad.pointer, count: 2, maxNorm: 1)
        #expect(norm3.isNaN && !clipped3)
        let e = FloatBuffer([-3, 0.5, 2])
        Clipping.clipElementwise(e.pointer, count: 3, limit: 1)
        #expect(e.array == [-1, 0.5, 1])
    }
}

@Suite struct ScheduleTests {
    @Test func zarembaStepDecay() {
        let s = LRSchedule.stepDecay(afterEpoch: 4, factor: 0.5)
        let rates = (1...7).map { s.rate(base: 1, step: 0, epoch: $0, state: LRScheduleState()) }
        #expect(rates == [1, 1, 1, 1, 0.5, 0.25, 0.125])
    }

    @Test func cosineWithWarmup() {
        let s = LRSchedule.cosine(warmupSteps: 10, totalSteps: 110, minFactor: 0.1)
        #expect(abs(s.rate(base: 1, step: 0, epoch: 1, state: .init()) - 0.1) < 1e-12)
        #expect(abs(s.rate(base: 1, step: 9, epoch: 1, state: .init()) - 1) < 1e-12)
        #expect(abs(s.rate(base: 1, step: 60, epoch: 1, state: .init()) - 0.55) < 1e-12)
        #expect(abs(s.rate(base: 1, step: 110, epoch: 1, state: .init()) - 0.1) < 1e-12)
    }

    @Test func plateauDecaysAfterPatience() {
        let s = LRSchedule.plateau(factor: 0.5, patience: 1, threshold: 0.01)
        var state = LRScheduleState()
        for loss in [5.0, 4.0, 3.99, 3.98] { s.observeValidation(loss, state: &state) }
        // 4.0 improved; 3.99 and 3.98 are within 1% → second bad evaluation exceeds patience 1.
        #expect(state.plateauFactor == 0.5)
        #expect(s.rate(base: 2, step: 0, epoch: 1, state: state) == 1)
    }
}
