// Finite-difference gradient checks of BPTT: single layers of every cell kind (leaky with learned
// rates) in both time
// directions (parameters, input, initial state), and whole language models with 1–2 layers, with
// and without dropout, over a multi-step window from a non-zero initial state with a gradient
// flowing into the final state.
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

private let allCells: [CellKind] = [.rnnTanh, .rnnRelu, .lstm, .gru, .leaky]

/// Leak rates of the leaky layers in single-layer checks: learned, so that ∂L/∂a is checked too
/// (the logits start random in ±0.6 like every parameter there: α ≈ 0.35…0.65).
let layerTestLeak = LeakRate.learned(low: 0.05, high: 0.8)

/// The `rnn.*_l0` views of one layer of `cell` (with `rnn.leak_logit_l0` for a leaky cell).
func singleLayerLayout(_ cell: CellKind, inputSize E: Int, hiddenSize H: Int) -> ParameterLayout {
    var layout = ParameterLayout()
    layout.append("rnn.weight_ih_l0", shape: [cell.gateCount * H, E])
    layout.append("rnn.weight_hh_l0", shape: [cell.gateCount * H, H])
    layout.append("rnn.bias_ih_l0", shape: [cell.gateCount * H])
    layout.append("rnn.bias_hh_l0", shape: [cell.gateCount * H])
    if cell == .leaky { layout.append("rnn.leak_logit_l0", shape: [H]) }
    return layout
}

/// Tolerances for Float32 forward passes differenced in Double: eps 1e-2 keeps rounding noise
/// (~1e-6/eps) well below the truncation error (~eps²).
private let eps: Float = 1e-2, rtol = 2e-2, atol = 2e-3

/// relu's kink at 0 breaks centred differences whenever ±eps moves a pre-activation across it; a
/// smaller step makes that unlikely at the price of more rounding noise (hence the wider atol).
private func step(_ cell: CellKind) -> (eps: Float, atol: Double) {
    cell == .rnnRelu ? (1e-3, 5e-3) : (eps, atol)
}

@Suite struct LayerGradientTests {
    @Test(arguments: allCells, [TimeDirection.forward, .reverse])
    func layerBackwardMatchesFiniteDifferences(cell: CellKind, direction: TimeDirection) {
        let T = 4, B = 3, E = 5, H = 4
        let layout = singleLayerLayout(cell, inputSize: E, hiddenSize: H)
        let arena = ParameterArena(layout: layout)
        var rng = TestRNG(seed: 11)
        rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
        let layer = RecurrentLayers.make(cell: cell, index: 0, inputSize: E, hiddenSize: H, direction: direction,
                                        arena: arena, maxSteps: T, maxBatch: B, leak: layerTestLeak)
        let input = FloatBuffer(rng.floats(T * B * E))
        let h0 = FloatBuffer(rng.floats(B * H)), c0 = FloatBuffer(rng.floats(B * H))
        let wOut = FloatBuffer(rng.floats(T * B * H)), wh = FloatBuffer(rng.floats(B * H)), wc = FloatBuffer(rng.floats(B * H))
        let hT = FloatBuffer(count: B * H), cT = FloatBuffer(count: B * H)
        let hasC = cell.hasCellState

        // L = Σ wOut⊙outputs + Σ wh⊙h_final (+ Σ wc⊙c_final)
        func loss() -> Double {
            layer.forward(input: input.pointer, steps: T, batch: B,
                          initial: LayerState(h: h0.pointer, c: hasC ? c0.pointer : nil),
                          final: LayerState(h: hT.pointer, c: hasC ? cT.pointer : nil))
            var l = dot(wOut.pointer, layer.output, count: T * B * H) + dot(wh.pointer, hT.pointer, count: B * H)
            if hasC { l += dot(wc.pointer, cT.pointer, count: B * H) }
            return l
        }
        _ = loss()
        arena.zeroGradients()
        let dOut = wOut.copy(), dInput = FloatBuffer(count: T * B * E)
        let dh0 = FloatBuffer(count: B * H), dc0 = FloatBuffer(count: B * H)
        layer.backward(dOutput: dOut.pointer, dFinal: LayerState(h: wh.pointer, c: hasC ? wc.pointer : nil),
                       dInput: dInput.pointer, dInitial: LayerState(h: dh0.pointer, c: hasC ? dc0.pointer : nil))

        for view in layout.views {
            let r = checkGradient(parameter: arena.parameters(view), analytic: arena.gradients(view),
                                  indices: Array(0..<view.count), eps: step(cell).eps, rtol: rtol, atol: step(cell).atol,
                                  piecewise: cell == .rnnRelu, loss: loss)
            #expect(r.passed, "\(cell) \(direction) \(view.name): \(r)")
        }
        var checks = [("input", input, dInput), ("h0", h0, dh0)]
        if hasC { checks.append(("c0", c0, dc0)) }
        for (name, x, dx) in checks {
            let r = checkGradient(parameter: x.pointer, analytic: dx.pointer, indices: Array(0..<x.count),
                                  eps: step(cell).eps, rtol: rtol, atol: step(cell).atol,
                                  piecewise: cell == .rnnRelu, loss: loss)
            #expect(r.passed, "\(cell) \(direction) \(name): \(r)")
        }
    }

    @Test func reversedLayerReadsTimeBackwards() {
        // A reversed layer over x equals a forward layer over x reversed in time (outputs reversed).
        let T = 5, B = 2, E = 3, H = 4
        let config = ModelConfig(cell: .gru, vocabSize: 2, embeddingSize: E, hiddenSize: H, layers: 1)
        let arena = ParameterArena(layout: .languageModel(config))
        Initializer.initialize(arena, config: config, seed: 3)
        let forward = RecurrentLayers.make(cell: .gru, index: 0, inputSize: E, hiddenSize: H, direction: .forward,
                                          arena: arena, maxSteps: T, maxBatch: B)
        let reverse = RecurrentLayers.make(cell: .gru, index: 0, inputSize: E, hiddenSize: H, direction: .reverse,
                                          arena: arena, maxSteps: T, maxBatch: B)
        var rng = TestRNG(seed: 4)
        let x = rng.floats(T * B * E)
        var xr = [Float]()
        for t in (0..<T).reversed() { xr += x[(t * B * E)..<((t + 1) * B * E)] }
        let h0 = FloatBuffer(rng.floats(B * H)), f1 = FloatBuffer(count: B * H), f2 = FloatBuffer(count: B * H)
        let xb = FloatBuffer(x), xrb = FloatBuffer(xr)
        reverse.forward(input: xb.pointer, steps: T, batch: B, initial: LayerState(h: h0.pointer, c: nil),
                        final: LayerState(h: f1.pointer, c: nil))
        forward.forward(input: xrb.pointer, steps: T, batch: B, initial: LayerState(h: h0.pointer, c: nil),
                        final: LayerState(h: f2.pointer, c: nil))
        for t in 0..<T {
            for i in 0..<(B * H) {
                #expect(reverse.output[t * B * H + i] == forward.output[(T - 1 - t) * B * H + i])
            }
        }
        #expect(f1.array == f2.array)
    }
}

@Suite struct ModelGradientTests {
    @Test(arguments: allCells, [1, 2])
    func modelBackwardMatchesFiniteDifferences(cell: CellKind, layers: Int) {
        checkModel(cell: cell, layers: layers, dropout: 0)
    }

    @Test(arguments: allCells)
    func modelWithDropoutBackwardMatchesFiniteDifferences(cell: CellKind) {
        checkModel(cell: cell, layers: 2, dropout: 0.3)
    }

    /// Leaky cells with fixed rates (one, a log-spaced range) and learned ones (∂L/∂a checked).
    @Test(arguments: [LeakRate.fixed(0.3), .range(low: 0.02, high: 0.9), .learned(low: 0.05, high: 0.9)], [1, 2])
    func leakyModelBackwardMatchesFiniteDifferences(leak: LeakRate, layers: Int) {
        checkModel(cell: .leaky, layers: layers, dropout: 0, leak: leak)
    }

    func checkModel(cell: CellKind, layers: Int, dropout: Float, leak: LeakRate? = nil) {
        let T = 4, B = 3, V = 7, E = 5, H = 4
        let config = ModelConfig(cell: cell, vocabSize: V, embeddingSize: E, hiddenSize: H, layers: layers,
                                 dropout: dropout, initScheme: .uniform(0.5), leak: leak)
        let model = RecurrentLanguageModel(config: config, seed: 5, maxSteps: T, maxBatch: B)
        var rng = TestRNG(seed: 6)
        let tokens: [Int32] = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
        var targets: [Int32] = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
        targets[4] = -1
        let initial = RecurrentState(config: config, batch: B)
        rng.fill(initial.h.pointer, count: initial.h.count)
        if let c = initial.c { rng.fill(c.pointer, count: c.count) }
        let wFinal = RecurrentState(config: config, batch: B)
        rng.fill(wFinal.h.pointer, count: wFinal.h.count)
        if let c = wFinal.c { rng.fill(c.pointer, count: c.count) }
        // Fixed masks: the same dropout context on every evaluation.
        let context = DropoutContext(seed: 9, step: 3, firstStream: 0, globalBatch: B)
        let state = RecurrentState(config: config, batch: B)

        func loss() -> Double {
            state.copy(from: initial)
            model.forward(tokens: tokens, steps: T, batch: B, state: state, dropout: context)
            var l = model.loss(targets: targets).lossSum + dot(wFinal.h.pointer, state.h.pointer, count: state.h.count)
            if let c = state.c, let wc = wFinal.c { l += dot(wc.pointer, c.pointer, count: c.count) }
            return l
        }
        _ = loss()
        model.arena.zeroGradients()
        let dInitial = RecurrentState(config: config, batch: B)
        let (_, count) = model.backward(targets: targets, dFinalState: wFinal, dInitialState: dInitial)
        #expect(count == T * B - 1)

        for (i, view) in model.arena.layout.views.enumerated() {
            let r = checkGradient(parameter: model.arena.parameters(view), analytic: model.arena.gradients(view),
                                  indices: sampleIndices(count: view.count, limit: 40, seed: UInt64(i)),
                                  eps: step(cell).eps, rtol: rtol, atol: step(cell).atol,
                                  piecewise: cell == .rnnRelu, loss: loss)
            #expect(r.passed, "\(cell) L\(layers) p\(dropout) \(view.name): \(r)")
        }
        var initials = [("h0", initial.h, dInitial.h)]
        if let c = initial.c, let dc = dInitial.c { initials.append(("c0", c, dc)) }
        for (name, x, dx) in initials {
            let r = checkGradient(parameter: x.pointer, analytic: dx.pointer, indices: Array(0..<x.count),
                                  eps: step(cell).eps, rtol: rtol, atol: step(cell).atol,
                                  piecewise: cell == .rnnRelu, loss: loss)
            #expect(r.passed, "\(cell) L\(layers) p\(dropout) \(name): \(r)")
        }
    }
}

@Suite struct ReductionGroupSplitTests {
    /// With reduction groups, the recurrent gradients of a batch are the halving-tree sum of its
    /// groups, so the batch's gradient equals, bit for bit, the sum of its two halves' gradients
    /// run separately — what two ranks add up in the allreduce: every parameter, the recurrent
    /// layers, the readout and the embedding rows alike. The learned leak logits included (their
    /// σ'(a) factor must be applied per row, before the sum). V·H = 4,096 · 256 runs the readout
    /// group by group (group-major logits), the others over all rows at once (time-major).
    @Test(arguments: [(CellKind.lstm, nil as LeakRate?, 9, 6), (.leaky, LeakRate.learned(low: 0.05, high: 0.9), 9, 6),
                      (.lstm, nil, 500, 64), (.lstm, nil, 4096, 256)])
    func batchGradientIsTheSumOfItsHalvesBitForBit(cell: CellKind, leak: LeakRate?, V: Int, H: Int) {
        let T = 5, B = 8
        let config = ModelConfig(cell: cell, vocabSize: V, embeddingSize: 4, hiddenSize: H, layers: 2,
                                 initScheme: .uniform(0.4), leak: leak)
        var rng = TestRNG(seed: 31)
        let tokens: [Int32] = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
        let targets: [Int32] = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
        func gradients(rows: Range<Int>) -> ParameterArena {
            let b = rows.count
            let model = RecurrentLanguageModel(config: config, seed: 4, maxSteps: T, maxBatch: b)
            model.useReductionGroups(size: 2)
            var x: [Int32] = [], y: [Int32] = []
            for t in 0..<T { for i in rows { x.append(tokens[t * B + i]); y.append(targets[t * B + i]) } }
            let state = RecurrentState(config: config, batch: b)
            model.arena.zeroGradients()
            model.forward(tokens: x, steps: T, batch: b, state: state, dropout: nil, wholeGroups: true)
            model.backward(targets: y)
            return model.arena
        }
        let whole = gradients(rows: 0..<8), left = gradients(rows: 0..<4), right = gradients(rows: 4..<8)
        for view in whole.layout.views {
            let w = whole.gradients(view), l = left.gradients(view), r = right.gradients(view)
            let same = (0..<view.count).allSatisfy { w[$0] == l[$0] + r[$0] }
            #expect(same, "\(cell) \(view.name)")
        }
    }
}
