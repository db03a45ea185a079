// Sequence models with variable lengths: finite-difference gradient checks of single layers with
// lengths (both directions) and of whole SequenceModels (bidirectional stacks of every cell, every
// pool, sequence and per-step heads, class and value outputs, token and feature inputs, dropout,
// a carried state), the packed-sequence semantics (a padded batch equals its sequences run one by
// one, garbage in padded positions changes nothing), and the state carried across windows.
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

/// As GradientCheckTests: Float32 forward passes differenced in Double.
private let eps: Float = 1e-2, rtol = 2e-2, atol = 2e-3

/// One configuration of a whole-model check.
struct SequenceCase: CustomStringConvertible, Sendable {
    var cell: CellKind
    var bidirectional = true
    var tokens = true
    var pool = PoolKind.last
    var perStep = false
    var classes = true
    var dropout: Float = 0
    var layers = 2
    var leak: LeakRate? = nil
    var skipSteps: [Int]? = nil
    var clockPeriods: [Int]? = nil
    /// Replaces the hidden size a test asks for (clockwork: a multiple of the module count).
    var hidden: Int? = nil

    var description: String {
        "\(cell) \(bidirectional ? "bi" : "uni") \(tokens ? "tokens" : "features") "
            + "\(perStep ? "per-step" : pool.rawValue) \(classes ? "classes" : "values") p\(dropout) L\(layers)"
            + (leak.map { " leak \($0)" } ?? "") + (skipSteps.map { " skip \($0)" } ?? "")
            + (clockPeriods.map { " periods \($0)" } ?? "")
    }

    func config(inputSize: Int = 3, hidden: Int = 3, vocab: Int = 6) -> SequenceModelConfig {
        SequenceModelConfig(cell: cell, vocabSize: tokens ? vocab : 0, inputSize: inputSize, hiddenSize: self.hidden ?? hidden,
                            layers: layers, bidirectional: bidirectional, dropout: dropout, pool: pool, perStep: perStep,
                            outputKind: classes ? .classes : .values, targetDim: 2, numClasses: classes ? 3 : 0,
                            initScheme: .uniform(0.5), leak: leak, skipSteps: skipSteps, clockPeriods: clockPeriods)
    }
}

/// Inputs and targets of one window; padded positions hold garbage (out-of-range tokens, NaN and
/// huge features) that must never reach a result.
struct SequenceBatch {
    let steps: Int
    let lengths: [Int]
    var tokens: [Int32]
    var features: [Float]
    var classTargets: [Int32]
    var valueTargets: [Float]
    /// (rows) 1 = counts; per-step heads: padded steps and one extra position are 0.
    var rowMask: [UInt8]

    init(config c: SequenceModelConfig, steps: Int, lengths: [Int], seed: UInt64) {
        var rng = TestRNG(seed: seed)
        let B = lengths.count, I = c.inputSize
        self.steps = steps
        self.lengths = lengths
        tokens = (0..<(steps * B)).map { _ in Int32(rng.int(below: max(c.vocabSize, 1))) }
        features = rng.floats(steps * B * I)
        for t in 0..<steps {
            for i in 0..<B where t >= lengths[i] {
                tokens[t * B + i] = (t + i) % 2 == 0 ? -5 : 999
                for j in 0..<I { features[(t * B + i) * I + j] = j % 2 == 0 ? .nan : 1e30 }
            }
        }
        let rows = c.perStep ? steps * B : B
        classTargets = (0..<(rows * c.targetDim)).map { _ in Int32(rng.int(below: max(c.numClasses, 1))) }
        valueTargets = rng.floats(rows * c.targetDim)
        rowMask = [UInt8](repeating: 1, count: rows)
        if c.perStep {
            for t in 0..<steps { for i in 0..<B where t >= lengths[i] { rowMask[t * B + i] = 0 } }
            rowMask[0] = 0
        }
    }

    var rows: Int { rowMask.count }
}

/// Forward + loss; with `gradients`, also backward of the summed loss.
@discardableResult
func runSequenceModel(_ model: SequenceModel, _ batch: SequenceBatch, state: RecurrentState? = nil,
                      dropout: SequenceDropout? = nil, gradients: Bool) -> Double {
    let c = model.config, B = batch.lengths.count
    batch.tokens.withUnsafeBufferPointer { tokens in
        batch.features.withUnsafeBufferPointer { features in
            model.forward(tokens: c.vocabSize > 0 ? tokens.baseAddress : nil,
                          features: c.vocabSize > 0 ? nil : features.baseAddress,
                          steps: batch.steps, batch: B, lengths: batch.lengths, state: state, dropout: dropout)
        }
    }
    return lossAndBackward(model, batch, gradients: gradients)
}

/// The summed loss of the last forward's outputs on the batch's valid targets; with `gradients`,
/// also the model's backward of it.
func lossAndBackward(_ model: SequenceModel, _ batch: SequenceBatch, gradients: Bool) -> Double {
    let c = model.config
    let rows = batch.rows, O = c.outputSize
    var dOutputs = [Float](repeating: 0, count: rows * O)
    let loss = dOutputs.withUnsafeMutableBufferPointer { d in
        let dp = gradients ? d.baseAddress : nil
        switch c.outputKind {
        case .classes:
            return SequenceLoss.crossEntropy(logits: model.outputs, targets: batch.classTargets, rowMask: batch.rowMask,
                                             rows: rows, targetDim: c.targetDim, classes: c.numClasses, gradScale: 1,
                                             dLogits: dp).lossSum
        case .values:
            return SequenceLoss.squaredError(predictions: model.outputs, targets: batch.valueTargets,
                                             rowMask: batch.rowMask, rows: rows, targetDim: c.targetDim, gradScale: 1,
                                             dPredictions: dp).lossSum
        }
    }
    if gradients { model.backward(dOutputs: dOutputs, gradientsReady: nil, progress: nil) }
    return loss
}

@Suite struct SequenceLayerGradientTests {
    /// A single layer with lengths (a zero length included), non-zero initial state and gradients
    /// into every output (padded steps too: there the output is the carried state) and the final
    /// state: parameters, input, initial state.
    @Test(arguments: [CellKind.rnnTanh, .lstm, .gru, .leaky], [TimeDirection.forward, .reverse])
    func layerWithLengthsMatchesFiniteDifferences(cell: CellKind, direction: TimeDirection) {
        let T = 5, B = 4, E = 3, H = 3
        let lengths = [5, 3, 3, 0]
        let layout = singleLayerLayout(cell, inputSize: E, hiddenSize: H)
        let arena = ParameterArena(layout: layout)
        var rng = TestRNG(seed: 21)
        rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
        let layer = RecurrentLayers.make(cell: cell, index: 0, inputSize: E, hiddenSize: H, direction: direction,
                                        arena: arena, maxSteps: T, maxBatch: B, leak: layerTestLeak)
        let input = FloatBuffer(rng.floats(T * B * E))
        let h0 = FloatBuffer(rng.floats(B * H)), c0 = FloatBuffer(rng.floats(B * H))
        let wOut = FloatBuffer(rng.floats(T * B * H)), wh = FloatBuffer(rng.floats(B * H)), wc = FloatBuffer(rng.floats(B * H))
        let hT = FloatBuffer(count: B * H), cT = FloatBuffer(count: B * H)
        let hasC = cell.hasCellState

        func loss() -> Double {
            layer.forward(input: input.pointer, steps: T, batch: B, lengths: lengths,
                          initial: LayerState(h: h0.pointer, c: hasC ? c0.pointer : nil),
                          final: LayerState(h: hT.pointer, c: hasC ? cT.pointer : nil))
            var l = dot(wOut.pointer, layer.output, count: T * B * H) + dot(wh.pointer, hT.pointer, count: B * H)
            if hasC { l += dot(wc.pointer, cT.pointer, count: B * H) }
            return l
        }
        _ = loss()
        // The empty row keeps its initial state.
        for j in 0..<H { #expect(hT[3 * H + j] == h0[3 * H + j]) }
        arena.zeroGradients()
        let dOut = wOut.copy(), dInput = FloatBuffer(count: T * B * E)
        let dh0 = FloatBuffer(count: B * H), dc0 = FloatBuffer(count: B * H)
        layer.backward(dOutput: dOut.pointer, dFinal: LayerState(h: wh.pointer, c: hasC ? wc.pointer : nil),
                       dInput: dInput.pointer, dInitial: LayerState(h: dh0.pointer, c: hasC ? dc0.pointer : nil))
        for view in layout.views {
            let r = checkGradient(parameter: arena.parameters(view), analytic: arena.gradients(view),
                                  indices: Array(0..<view.count), eps: eps, rtol: rtol, atol: atol, loss: loss)
            #expect(r.passed, "\(cell) \(direction) \(view.name): \(r)")
        }
        var checks = [("input", input, dInput), ("h0", h0, dh0)]
        if hasC { checks.append(("c0", c0, dc0)) }
        for (name, x, dx) in checks {
            let r = checkGradient(parameter: x.pointer, analytic: dx.pointer, indices: Array(0..<x.count),
                                  eps: eps, rtol: rtol, atol: atol, loss: loss)
            #expect(r.passed, "\(cell) \(direction) \(name): \(r)")
        }
        // Padded inputs get exactly zero gradient.
        for t in 0..<T {
            for i in 0..<B where t >= lengths[i] {
                for j in 0..<E { #expect(dInput[(t * B + i) * E + j] == 0) }
            }
        }
    }
}

@Suite struct SequenceModelGradientTests {
    static let cases: [SequenceCase] = [
        // Every cell, bidirectional, h_n pooling, token classes.
        SequenceCase(cell: .lstm),
        SequenceCase(cell: .gru),
        SequenceCase(cell: .rnnTanh),
        // Every pool on features with value outputs.
        SequenceCase(cell: .lstm, tokens: false, pool: .mean, classes: false),
        SequenceCase(cell: .gru, tokens: false, pool: .max, classes: false),
        SequenceCase(cell: .rnnTanh, tokens: false, pool: .last, classes: false),
        SequenceCase(cell: .lstm, tokens: true, pool: .max),
        // Per-step heads with a step mask.
        SequenceCase(cell: .gru, perStep: true),
        SequenceCase(cell: .lstm, tokens: false, perStep: true, classes: false),
        // Unidirectional, and dropout.
        SequenceCase(cell: .lstm, bidirectional: false, pool: .mean),
        SequenceCase(cell: .lstm, dropout: 0.3),
        SequenceCase(cell: .gru, tokens: false, pool: .mean, perStep: true, dropout: 0.3),
        // Leaky units: learned rates (bidirectional: one leak_logit per direction), fixed ones.
        SequenceCase(cell: .leaky, leak: .learned(low: 0.05, high: 0.9)),
        SequenceCase(cell: .leaky, tokens: false, perStep: true, classes: false, leak: .range(low: 0.1, high: 0.9)),
        // Skip connections through time (both directions; d = 6 > T reads only the initial state)
        // and clockwork modules (periods with a gap: at t = 3 modules 0 and 2 update, not 1).
        SequenceCase(cell: .rnnTanh, skipSteps: [2, 3]),
        SequenceCase(cell: .rnnTanh, tokens: false, perStep: true, classes: false, skipSteps: [2, 6]),
        SequenceCase(cell: .clockwork, bidirectional: false, clockPeriods: [1, 2, 4]),
        SequenceCase(cell: .clockwork, bidirectional: false, tokens: false, perStep: true, classes: false,
                     clockPeriods: [1, 2, 3], hidden: 6),
    ]

    @Test(arguments: cases)
    func sequenceModelBackwardMatchesFiniteDifferences(_ c: SequenceCase) {
        let config = c.config()
        let T = 5, lengths = [5, 3, 3, 0]
        let model = SequenceModel(config: config, seed: 7, maxSteps: T, maxBatch: lengths.count)
        let batch = SequenceBatch(config: config, steps: T, lengths: lengths, seed: 8)
        let dropout = SequenceDropout(seed: 3, step: 2, rowIds: [40, 7, 12, 3])
        func loss() -> Double { runSequenceModel(model, batch, dropout: dropout, gradients: false) }
        model.arena.zeroGradients()
        runSequenceModel(model, batch, dropout: dropout, gradients: true)
        for (i, view) in model.arena.layout.views.enumerated() {
            let r = checkGradient(parameter: model.arena.parameters(view), analytic: model.arena.gradients(view),
                                  indices: sampleIndices(count: view.count, limit: 24, seed: UInt64(i)),
                                  eps: eps, rtol: rtol, atol: atol, piecewise: c.pool == .max && !c.perStep,
                                  loss: loss)
            #expect(r.passed, "\(c) \(view.name): \(r)")
        }
        // The outputs are finite whatever the padded positions hold.
        let rows = c.perStep ? T * lengths.count : lengths.count
        for r in 0..<rows where batch.rowMask[r] != 0 {
            for j in 0..<config.outputSize { #expect(model.outputs[r * config.outputSize + j].isFinite) }
        }
    }

    /// Window 2 of a long sequence, from the state window 1 left (detached, as TBPTT): parameter
    /// gradients with a non-zero carried state and rows that ended in window 1.
    @Test(arguments: [CellKind.lstm, .gru])
    func carriedStateBackwardMatchesFiniteDifferences(cell: CellKind) {
        let c = SequenceCase(cell: cell, bidirectional: false, tokens: false, pool: .last)
        let config = c.config()
        let model = SequenceModel(config: config, seed: 9, maxSteps: 4, maxBatch: 4)
        let first = SequenceBatch(config: config, steps: 4, lengths: [4, 4, 3, 2], seed: 10)
        let second = SequenceBatch(config: config, steps: 3, lengths: [3, 1, 0, 0], seed: 11)
        let carried = RecurrentState(config: config, batch: 4)
        runSequenceModel(model, first, state: carried, gradients: false)
        let state = RecurrentState(config: config, batch: 4)
        func loss() -> Double {
            state.copy(from: carried)
            return runSequenceModel(model, second, state: state, gradients: false)
        }
        model.arena.zeroGradients()
        state.copy(from: carried)
        runSequenceModel(model, second, state: state, gradients: true)
        for (i, view) in model.arena.layout.views.enumerated() {
            let r = checkGradient(parameter: model.arena.parameters(view), analytic: model.arena.gradients(view),
                                  indices: sampleIndices(count: view.count, limit: 24, seed: UInt64(i)),
                                  eps: eps, rtol: rtol, atol: atol, loss: loss)
            #expect(r.passed, "\(cell) carried \(view.name): \(r)")
        }
    }
}

@Suite struct SequenceMaskingTests {
    static let cases: [SequenceCase] = [
        SequenceCase(cell: .lstm, tokens: true, pool: .last),
        SequenceCase(cell: .gru, tokens: false, pool: .mean, classes: false),
        SequenceCase(cell: .lstm, tokens: false, pool: .max),
        SequenceCase(cell: .rnnTanh, tokens: true, pool: .last, dropout: 0.3),
        SequenceCase(cell: .gru, tokens: true, perStep: true),
        SequenceCase(cell: .lstm, bidirectional: false, tokens: false, perStep: true, classes: false, dropout: 0.3),
        SequenceCase(cell: .leaky, tokens: true, pool: .last, leak: .learned(low: 0.05, high: 0.9)),
        SequenceCase(cell: .rnnTanh, tokens: true, pool: .last, skipSteps: [2, 4]),
        SequenceCase(cell: .clockwork, bidirectional: false, tokens: false, perStep: true, classes: false,
                     clockPeriods: [1, 2, 4], hidden: 6),
    ]

    /// A padded batch of sequences of different lengths (garbage in the padding) gives the loss and
    /// the summed gradients of running each sequence alone (batch 1, no padding), to 1e-6 relative;
    /// with dropout, because masks follow row ids, not batch positions.
    @Test(arguments: cases)
    func paddedBatchEqualsSequencesAlone(_ c: SequenceCase) {
        let config = c.config(inputSize: 4, hidden: 5, vocab: 9)
        let T = 6, lengths = [6, 5, 5, 2, 1], rowIds = [11, 3, 8, 0, 5]
        let model = SequenceModel(config: config, seed: 12, maxSteps: T, maxBatch: lengths.count)
        let batch = SequenceBatch(config: config, steps: T, lengths: lengths, seed: 13)
        let B = lengths.count, I = config.inputSize, K = config.targetDim
        model.arena.zeroGradients()
        let batchedLoss = runSequenceModel(model, batch, dropout: SequenceDropout(seed: 1, step: 4, rowIds: rowIds),
                                           gradients: true)
        let batched = model.arena.gradients.copy()

        model.arena.zeroGradients()
        var aloneLoss = 0.0
        for i in 0..<B {
            let n = lengths[i]
            var one = SequenceBatch(config: config, steps: n, lengths: [n], seed: 0)
            one.tokens = []
            one.features = []
            for t in 0..<n {
                let r = t * B + i
                one.tokens.append(batch.tokens[r])
                one.features += batch.features[(r * I)..<(r * I + I)]
            }
            let sourceRows: [Int] = c.perStep ? (0..<n).map { (t: Int) -> Int in t * B + i } : [i]
            one.rowMask = []
            one.classTargets = []
            one.valueTargets = []
            for r in sourceRows {
                one.rowMask.append(batch.rowMask[r])
                one.classTargets += batch.classTargets[(r * K)..<(r * K + K)]
                one.valueTargets += batch.valueTargets[(r * K)..<(r * K + K)]
            }
            aloneLoss += runSequenceModel(model, one, dropout: SequenceDropout(seed: 1, step: 4, rowIds: [rowIds[i]]),
                                          gradients: true)
        }
        #expect(abs(batchedLoss - aloneLoss) <= 1e-6 * abs(aloneLoss), "\(c) loss \(batchedLoss) vs \(aloneLoss)")
        for view in model.arena.layout.views {
            let a = Array(UnsafeBufferPointer(start: batched.pointer + view.offset, count: view.count))
            let b = Array(UnsafeBufferPointer(start: model.arena.gradients(view), count: view.count))
            var diff = 0.0, norm = 0.0
            for j in 0..<a.count {
                diff += Double(a[j] - b[j]) * Double(a[j] - b[j])
                norm += Double(b[j]) * Double(b[j])
            }
            #expect(diff.squareRoot() <= 1e-6 * norm.squareRoot() + 1e-12, "\(c) \(view.name): ‖Δ‖ \(diff.squareRoot()) vs ‖g‖ \(norm.squareRoot())")
        }
    }

    /// Two windows with a carried state give the same h_n outputs and final state as one window
    /// over the whole sequences (rows ending in the first window included).
    @Test(arguments: [CellKind.lstm, .gru, .rnnTanh, .leaky])
    func carriedStateAcrossWindowsEqualsOneWindow(cell: CellKind) {
        let config = SequenceCase(cell: cell, bidirectional: false, tokens: false, classes: false).config()
        let lengths = [7, 5, 3, 0], B = lengths.count, I = config.inputSize, O = config.outputSize
        let model = SequenceModel(config: config, seed: 14, maxSteps: 7, maxBatch: B)
        let whole = SequenceBatch(config: config, steps: 7, lengths: lengths, seed: 15)
        let state = RecurrentState(config: config, batch: B)
        runSequenceModel(model, whole, state: state, gradients: false)
        let expected = Array(UnsafeBufferPointer(start: model.outputs, count: B * O)), expectedH = state.h.array

        state.zero()
        var first = SequenceBatch(config: config, steps: 4, lengths: lengths.map { min($0, 4) }, seed: 0)
        first.features = Array(whole.features[0..<(4 * B * I)])
        var second = SequenceBatch(config: config, steps: 3, lengths: lengths.map { max($0 - 4, 0) }, seed: 0)
        second.features = Array(whole.features[(4 * B * I)...])
        runSequenceModel(model, first, state: state, gradients: false)
        runSequenceModel(model, second, state: state, gradients: false)
        let got = Array(UnsafeBufferPointer(start: model.outputs, count: B * O))
        #expect(closeness(got, expected.map(Double.init), rtol: 1e-6, atol: 1e-7).ratio <= 1, "\(cell) outputs")
        #expect(closeness(state.h.array, expectedH.map(Double.init), rtol: 1e-6, atol: 1e-7).ratio <= 1, "\(cell) h")
    }

    /// The same seed gives the same parameters; the layout has PyTorch's bidirectional names.
    @Test func layoutAndInitialisation() {
        let config = SequenceCase(cell: .lstm).config()
        let a = SequenceModel(config: config, seed: 5, maxSteps: 2, maxBatch: 2)
        let b = SequenceModel(config: config, seed: 5, maxSteps: 3, maxBatch: 1)
        #expect(a.arena.parameters.array == b.arena.parameters.array)
        #expect(a.arena.layout.views.map(\.name) == [
            "embedding.weight",
            "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
            "rnn.weight_ih_l0_reverse", "rnn.weight_hh_l0_reverse", "rnn.bias_ih_l0_reverse", "rnn.bias_hh_l0_reverse",
            "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1",
            "rnn.weight_ih_l1_reverse", "rnn.weight_hh_l1_reverse", "rnn.bias_ih_l1_reverse", "rnn.bias_hh_l1_reverse",
            "head.weight", "head.bias",
        ])
        #expect(a.arena.layout.view("rnn.weight_ih_l1")?.shape == [12, 6])
        #expect(a.arena.layout.view("head.weight")?.shape == [6, 6])
        var bad = config
        bad.hiddenSize = 0
        #expect(bad.problem()?.contains("--hidden") == true)
        bad = config
        bad.dropout = 1
        #expect(bad.problem()?.contains("--dropout") == true)
        #expect(config.problem() == nil)
    }
}
