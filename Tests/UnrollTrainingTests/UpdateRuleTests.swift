// UpdateRule against its definition computed in Double: θ' = θ − lr·g/N, scaled by clip/‖g/N‖
// when that norm exceeds the threshold (or clamped element-wise in value mode), and no update at
// all for a non-finite norm or an empty step. GradientSync on one process returns the totals it
// was given and leaves the gradient alone.
import Testing
import UnrollDistributed
import UnrollKernels
import UnrollModels
import UnrollTraining

@Suite struct UpdateRuleTests {
    /// An arena of one 4-element view with gradient `g` (the SUM over `divisor` targets) and
    /// parameters 1, 2, 3, 4.
    func arena(_ g: [Float]) -> ParameterArena {
        var layout = ParameterLayout()
        layout.append("w", shape: [4])
        let arena = ParameterArena(layout: layout)
        for i in 0..<4 {
            arena.parameters[i] = Float(i + 1)
            arena.gradients[i] = g[i]
        }
        return arena
    }

    func parameters(_ a: ParameterArena) -> [Double] { (0..<4).map { Double(a.parameters[$0]) } }

    @Test func belowTheThresholdItIsSGDOnTheMean() {
        let a = arena([2, -4, 6, 0])
        let sgd = Optimizer(config: OptimizerConfig(kind: .sgd), parameterCount: a.count)
        let out = UpdateRule.apply(to: a, optimizer: sgd, divisor: 4, clip: 100, clipMode: .norm, lr: 0.5)
        let mean = [0.5, -1, 1.5, 0]
        #expect(!out.clipped && !out.skipped)
        #expect(abs(out.gradNorm - (mean.map { $0 * $0 }.reduce(0, +)).squareRoot()) < 1e-6)
        for (i, p) in parameters(a).enumerated() { #expect(abs(p - (Double(i + 1) - 0.5 * mean[i])) < 1e-6) }
    }

    @Test func aboveTheThresholdTheStepIsScaledToTheClipNorm() {
        let a = arena([3, 4, 0, 0])  // mean over 1: norm 5
        let sgd = Optimizer(config: OptimizerConfig(kind: .sgd), parameterCount: a.count)
        let out = UpdateRule.apply(to: a, optimizer: sgd, divisor: 1, clip: 1, clipMode: .norm, lr: 1)
        #expect(out.clipped && abs(out.gradNorm - 5) < 1e-6)
        let expected: [Double] = [1 - 0.6, 2 - 0.8, 3, 4]
        for (i, p) in parameters(a).enumerated() { #expect(abs(p - expected[i]) < 1e-6) }
    }

    @Test func valueModeClampsEachElementOfTheMean() {
        let a = arena([4, -8, 0.5, 0])  // mean over 2: 2, -4, 0.25, 0
        let sgd = Optimizer(config: OptimizerConfig(kind: .sgd), parameterCount: a.count)
        _ = UpdateRule.apply(to: a, optimizer: sgd, divisor: 2, clip: 1, clipMode: .value, lr: 1)
        let expected: [Double] = [1 - 1, 2 + 1, 3 - 0.25, 4]
        for (i, p) in parameters(a).enumerated() { #expect(abs(p - expected[i]) < 1e-6) }
    }

    @Test(arguments: [([Float.nan, 0, 0, 0], 4), ([Float.infinity, 0, 0, 0], 4), ([1, 1, 1, 1], 0)])
    func nonFiniteOrEmptyStepsAreSkipped(g: [Float], divisor: Int) {
        let a = arena(g)
        let adam = Optimizer(config: OptimizerConfig(kind: .adam), parameterCount: a.count)
        let out = UpdateRule.apply(to: a, optimizer: adam, divisor: divisor, clip: 5, clipMode: .norm, lr: 0.1)
        #expect(out.skipped && !out.clipped)
        #expect(parameters(a) == [1, 2, 3, 4])
        #expect(adam.stepCount == 0)
    }

    @Test func gradientSyncOnOneProcessReturnsTheLocalTotals() throws {
        let a = arena([1, 2, 3, 4])
        let sync = GradientSync(arena: a, embedding: nil, bucketBytes: 64, communicator: SingleProcessCommunicator())
        try sync.beginStep(touchedRows: [Int32]())
        sync.gradientsReady(from: 0)
        let totals = try sync.finish(StepTotals(lossSum: 12.5, count: 7, stop: true))
        #expect(totals == StepTotals(lossSum: 12.5, count: 7, stop: true))
        #expect((0..<4).map { a.gradients[$0] } == [1, 2, 3, 4])
        #expect(sync.sparseRows == nil)
        sync.zeroGradients()
        #expect((0..<4).map { a.gradients[$0] } == [0, 0, 0, 0])
    }
}
