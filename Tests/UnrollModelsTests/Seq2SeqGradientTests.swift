// Finite-difference gradient checks of the sequence-to-sequence model: every parameter tensor for
// each attention kind, uni- and bidirectional encoders, both bridges, every cell, 1–2 layers, over
// a batch with varied source and target lengths (padded ids are −1, so reading one would trap);
// the batched and the step-by-step decoder paths; input feeding and scheduled sampling. Padding
// must not leak: the batch's loss and gradients equal the sum over its rows run alone.
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

/// Tolerances as GradientCheckTests: Float32 forward passes differenced in Double.
private let eps: Float = 1e-2, rtol = 2e-2, atol = 2e-3

/// A small batch: S = 4, T = 4, B = 3; source lengths sorted, target lengths in any order.
struct Seq2SeqBatch {
    var S = 4, T = 4, B = 3
    var sourceLengths = [4, 3, 1]
    var targetLengths = [2, 4, 3]
    var source: [Int32] = []
    var targetInput: [Int32] = []
    var targetOutput: [Int32] = []

    init(sourceVocab: Int, targetVocab: Int, seed: UInt64) {
        var rng = TestRNG(seed: seed)
        source = (0..<(S * B)).map { i in i / B < sourceLengths[i % B] ? Int32(rng.int(below: sourceVocab)) : -1 }
        targetOutput = (0..<(T * B)).map { i in i / B < targetLengths[i % B] ? Int32(rng.int(below: targetVocab)) : -1 }
        // <bos> = 0, then the outputs shifted by one.
        targetInput = (0..<(T * B)).map { i in
            let t = i / B, b = i % B
            guard t < targetLengths[b] else { return -1 }
            return t == 0 ? 0 : targetOutput[(t - 1) * B + b]
        }
    }

    /// Row b alone, trimmed to its own lengths.
    func row(_ b: Int) -> Seq2SeqBatch {
        var r = self
        r.B = 1
        r.S = sourceLengths[b]
        r.T = max(targetLengths[b], 1)
        r.sourceLengths = [sourceLengths[b]]
        r.targetLengths = [targetLengths[b]]
        r.source = (0..<r.S).map { source[$0 * B + b] }
        r.targetInput = (0..<r.T).map { $0 < targetLengths[b] ? targetInput[$0 * B + b] : -1 }
        r.targetOutput = (0..<r.T).map { $0 < targetLengths[b] ? targetOutput[$0 * B + b] : -1 }
        return r
    }

    func run(_ model: Seq2SeqModel, feedPrediction: ((Int, Int) -> Bool)? = nil) -> (lossSum: Double, count: Int, correct: Int) {
        model.forward(source: source, sourceLengths: sourceLengths, sourceSteps: S, targetInput: targetInput,
                      targetOutput: targetOutput, targetLengths: targetLengths, targetSteps: T, batch: B,
                      feedPrediction: feedPrediction)
    }
}

struct Seq2SeqCase: CustomTestStringConvertible, Sendable {
    var cell: CellKind
    var layers: Int
    var bidirectional: Bool
    var bridge: BridgeKind
    var attention: AttentionKind
    var inputFeeding = false

    var testDescription: String {
        "\(cell) L\(layers) \(bidirectional ? "bi" : "uni") bridge \(bridge) \(attention)\(inputFeeding ? " feeding" : "")"
    }

    func config() -> Seq2SeqModelConfig {
        Seq2SeqModelConfig(cell: cell, sourceVocabSize: 6, targetVocabSize: 7, embeddingSize: 3, hiddenSize: 4,
                           layers: layers, bidirectional: bidirectional, bridge: bridge, attention: attention,
                           inputFeeding: inputFeeding, initScheme: .uniform(0.5))
    }
}

let teacherForcedCases: [Seq2SeqCase] = [
    .init(cell: .gru, layers: 1, bidirectional: true, bridge: .tanh, attention: .general),
    .init(cell: .lstm, layers: 2, bidirectional: true, bridge: .tanh, attention: .additive),
    .init(cell: .rnnTanh, layers: 1, bidirectional: false, bridge: .tanh, attention: .dot),
    .init(cell: .gru, layers: 2, bidirectional: false, bridge: .tanh, attention: .none),
    .init(cell: .lstm, layers: 1, bidirectional: false, bridge: .none, attention: .dot),
    .init(cell: .rnnTanh, layers: 2, bidirectional: true, bridge: .none, attention: .general),
    .init(cell: .gru, layers: 1, bidirectional: true, bridge: .none, attention: .additive),
    .init(cell: .lstm, layers: 1, bidirectional: true, bridge: .tanh, attention: .none),
]

let inputFeedingCases: [Seq2SeqCase] = [
    .init(cell: .gru, layers: 1, bidirectional: true, bridge: .tanh, attention: .general, inputFeeding: true),
    .init(cell: .lstm, layers: 2, bidirectional: false, bridge: .tanh, attention: .additive, inputFeeding: true),
    .init(cell: .rnnTanh, layers: 1, bidirectional: true, bridge: .none, attention: .none, inputFeeding: true),
    .init(cell: .gru, layers: 2, bidirectional: false, bridge: .tanh, attention: .dot, inputFeeding: true),
]

/// Checks every view of `model.arena` against centred differences of `loss`.
func checkSeq2SeqGradients(_ model: Seq2SeqModel, label: String, loss: () -> Double) {
    for (i, view) in model.arena.layout.views.enumerated() {
        let r = checkGradient(parameter: model.arena.parameters(view), analytic: model.arena.gradients(view),
                              indices: sampleIndices(count: view.count, limit: 30, seed: UInt64(i)),
                              eps: eps, rtol: rtol, atol: atol, loss: loss)
        #expect(r.passed, "\(label) \(view.name): \(r)")
    }
}

@Suite struct Seq2SeqGradientTests {
    @Test(arguments: teacherForcedCases)
    func teacherForcedBackwardMatchesFiniteDifferences(c: Seq2SeqCase) {
        let model = Seq2SeqModel(config: c.config(), seed: 3, maxSourceSteps: 4, maxTargetSteps: 4, maxBatch: 3)
        let batch = Seq2SeqBatch(sourceVocab: 6, targetVocab: 7, seed: 8)
        let (_, count, _) = batch.run(model)
        #expect(count == 9)
        model.arena.zeroGradients()
        model.backward()
        checkSeq2SeqGradients(model, label: c.testDescription) { batch.run(model).lossSum }
    }

    @Test(arguments: inputFeedingCases)
    func inputFeedingBackwardMatchesFiniteDifferences(c: Seq2SeqCase) {
        let model = Seq2SeqModel(config: c.config(), seed: 4, maxSourceSteps: 4, maxTargetSteps: 4, maxBatch: 3)
        let batch = Seq2SeqBatch(sourceVocab: 6, targetVocab: 7, seed: 9)
        _ = batch.run(model)
        model.arena.zeroGradients()
        model.backward()
        checkSeq2SeqGradients(model, label: c.testDescription) { batch.run(model).lossSum }
    }

    /// Scheduled sampling: a large output bias makes token 2 the argmax everywhere, robustly under
    /// ±eps, so the fed tokens are the same constants in every evaluation.
    @Test(arguments: [teacherForcedCases[0], teacherForcedCases[1], inputFeedingCases[0], teacherForcedCases[3]])
    func scheduledSamplingBackwardMatchesFiniteDifferences(c: Seq2SeqCase) {
        let model = Seq2SeqModel(config: c.config(), seed: 5, maxSourceSteps: 4, maxTargetSteps: 4, maxBatch: 3)
        model.arena.parameters(model.arena.view("output.bias"))[2] = 6
        let batch = Seq2SeqBatch(sourceVocab: 6, targetVocab: 7, seed: 10)
        let choose: (Int, Int) -> Bool = { row, t in (row + t) % 2 == 1 }
        let (_, _, correct) = batch.run(model, feedPrediction: choose)
        #expect(correct == batch.targetOutput.filter { $0 == 2 }.count)
        model.arena.zeroGradients()
        model.backward(scale: 0.5)
        let scaled = { batch.run(model, feedPrediction: choose).lossSum * 0.5 }
        checkSeq2SeqGradients(model, label: "sampled " + c.testDescription, loss: scaled)
        // The sampled choices changed the loss: teacher forcing gives another value.
        #expect(abs(batch.run(model).lossSum - batch.run(model, feedPrediction: choose).lossSum) > 1e-6)
    }

    /// The step-by-step path (forced by a feedPrediction that never samples) gives the batched
    /// path's loss and gradients.
    @Test(arguments: teacherForcedCases)
    func stepPathEqualsBatchedPath(c: Seq2SeqCase) {
        let model = Seq2SeqModel(config: c.config(), seed: 6, maxSourceSteps: 4, maxTargetSteps: 4, maxBatch: 3)
        let batch = Seq2SeqBatch(sourceVocab: 6, targetVocab: 7, seed: 11)
        let batched = batch.run(model)
        model.arena.zeroGradients()
        model.backward()
        let g1 = model.arena.gradients.array
        let stepped = batch.run(model) { _, _ in false }
        model.arena.zeroGradients()
        model.backward()
        let g2 = model.arena.gradients.array
        #expect(abs(batched.lossSum - stepped.lossSum) <= 1e-5 * abs(batched.lossSum))
        #expect(batched.correct == stepped.correct)
        let r = closeness(g2, g1.map(Double.init), rtol: 1e-4, atol: 1e-6)
        #expect(r.ratio <= 1, "\(c.testDescription) worst at \(r.index)")
    }

    /// Padding does not leak: the batch equals the sum of its rows run alone (loss, count, gradients).
    @Test(arguments: teacherForcedCases + inputFeedingCases)
    func batchEqualsSumOfRowsAlone(c: Seq2SeqCase) {
        let model = Seq2SeqModel(config: c.config(), seed: 7, maxSourceSteps: 4, maxTargetSteps: 4, maxBatch: 3)
        let batch = Seq2SeqBatch(sourceVocab: 6, targetVocab: 7, seed: 12)
        let whole = batch.run(model)
        model.arena.zeroGradients()
        model.backward()
        let gradients = model.arena.gradients.array
        model.arena.zeroGradients()
        var lossSum = 0.0, count = 0
        for b in 0..<batch.B {
            let r = batch.row(b).run(model)
            lossSum += r.lossSum
            count += r.count
            model.backward()
        }
        #expect(count == whole.count)
        #expect(abs(lossSum - whole.lossSum) <= 1e-5 * abs(whole.lossSum))
        let r = closeness(model.arena.gradients.array, gradients.map(Double.init), rtol: 1e-4, atol: 1e-6)
        #expect(r.ratio <= 1, "\(c.testDescription) worst at \(r.index)")
    }

    @Test func configProblemsNameTheOption() {
        var c = Seq2SeqModelConfig(cell: .gru, sourceVocabSize: 5, targetVocabSize: 5, embeddingSize: 3, hiddenSize: 4,
                                   bidirectional: true, attention: .dot)
        #expect(c.problem()?.contains("--attention dot") == true)
        c.bidirectional = false
        #expect(c.problem() == nil)
        c.layers = 0
        #expect(c.problem()?.contains("--layers") == true)
    }

    @Test func initializationIsSeededAndSetsForgetBiasesOfBothStacks() {
        let c = Seq2SeqModelConfig(cell: .lstm, sourceVocabSize: 5, targetVocabSize: 6, embeddingSize: 3, hiddenSize: 4,
                                   bidirectional: true, forgetGateBias: true)
        let a = Seq2SeqModel(config: c, seed: 9, maxSourceSteps: 2, maxTargetSteps: 2, maxBatch: 1)
        let b = Seq2SeqModel(config: c, seed: 9, maxSourceSteps: 2, maxTargetSteps: 2, maxBatch: 1)
        #expect(a.arena.parameters.array == b.arena.parameters.array)
        for name in ["encoder.rnn.bias_ih_l0", "encoder.rnn.bias_ih_l0_reverse", "decoder.rnn.bias_ih_l0"] {
            let p = a.arena.parameters(a.arena.view(name))
            #expect((4..<8).allSatisfy { p[$0] == 1 }, "\(name)")
        }
        let hh = a.arena.parameters(a.arena.view("decoder.rnn.bias_hh_l0"))
        #expect((4..<8).allSatisfy { hh[$0] == 0 })
        // Embeddings N(0, 1) under the pytorch scheme: some value outside U(−1/√H, 1/√H).
        let e = a.arena.view("decoder.embedding.weight")
        #expect((0..<e.count).contains { abs(a.arena.parameters(e)[$0]) > 0.5 })
    }

    @Test func layoutUsesPyTorchNames() {
        let c = Seq2SeqModelConfig(cell: .lstm, sourceVocabSize: 5, targetVocabSize: 6, embeddingSize: 3, hiddenSize: 4,
                                   layers: 2, bidirectional: true, attention: .additive, inputFeeding: true)
        let layout = ParameterLayout.seq2seqModel(c)
        let names = layout.views.map(\.name)
        #expect(names.first == "encoder.embedding.weight")
        #expect(names.contains("encoder.rnn.weight_ih_l1_reverse"))
        #expect(layout.view("encoder.rnn.weight_ih_l1")?.shape == [16, 8])
        #expect(layout.view("bridge.weight_l1")?.shape == [4, 8])
        #expect(layout.view("decoder.rnn.weight_ih_l0")?.shape == [16, 7])
        #expect(layout.view("attention.key.weight")?.shape == [4, 8])
        #expect(layout.view("combine.weight")?.shape == [4, 12])
        #expect(names.suffix(2) == ["output.weight", "output.bias"])
    }
}
