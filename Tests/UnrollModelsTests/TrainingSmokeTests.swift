// A tiny model must be able to memorise one batch: the end-to-end check that forward, backward,
// clipping and the update fit together.
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

@Suite struct TrainingSmokeTests {
    /// Every cell of a language model (`jordan` needs per-step targets of a sequence task and is
    /// trained in JordanFlowTests and launch/test-train 41; tree cells run on trees).
    @Test(arguments: CellKind.allCases.filter { $0 != .jordan && !$0.isTree })
    func tinyModelOverfitsOneBatch(cell: CellKind) {
        let T = 8, B = 4, V = 10
        // Leaky units: time scales of 1–5 steps for a window of 8 (the default's slowest units,
        // α = 0.01, barely move within 8 steps and cannot memorise position-wise random targets).
        // Clockwork: periods 1 and 2 (the default's slow modules update once in 8 steps).
        let config = ModelConfig(cell: cell, vocabSize: V, embeddingSize: 8, hiddenSize: 32, layers: 2,
                                 leak: cell == .leaky ? .range(low: 0.2, high: 1) : nil,
                                 clockPeriods: cell == .clockwork ? [1, 2] : nil)
        let model = RecurrentLanguageModel(config: config, seed: 1, maxSteps: T, maxBatch: B)
        var rng = TestRNG(seed: 2)
        let tokens: [Int32] = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
        let targets: [Int32] = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
        let state = RecurrentState(config: config, batch: B)
        let arena = model.arena
        let m = FloatBuffer(count: arena.parameters.count), v = FloatBuffer(count: arena.parameters.count)
        var first = 0.0, last = 0.0
        for step in 0..<300 {
            state.zero()
            arena.zeroGradients()
            model.forward(tokens: tokens, steps: T, batch: B, state: state, dropout: nil)
            let (loss, count) = model.backward(targets: targets, gradScale: 1 / Float(T * B))
            let mean = loss / Double(count)
            if step == 0 { first = mean }
            last = mean
            Clipping.clipByGlobalNorm(arena.gradients.pointer, count: arena.count, maxNorm: 5)
            OptimizerKernels.adam(arena.parameters.pointer, grad: arena.gradients.pointer, m: m.pointer, v: v.pointer,
                                  count: arena.parameters.count, lr: 0.01, beta1: 0.9,
                                  beta2: 0.999, epsilon: 1e-8, step: step + 1, weightDecay: 0,
                                  decoupledWeightDecay: false)
        }
        // Random targets over 10 classes start near ln 10 ≈ 2.3; memorising drives the loss to ~0.
        #expect(first > 1.8, "initial loss \(first)")
        #expect(last < 0.05, "\(cell): loss after 300 steps \(last)")
    }
}
