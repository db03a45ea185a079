// Output recurrence and the flow regulariser: the Jordan model's teacher-forced forward/backward
// against finite differences (tokens and features, classes and values, padded rows, dropout),
// free-running decoding equal to a teacher-forced forward fed the model's own predictions (also
// across windows); the flow regulariser Ω (Pascanu et al. 2013 eq. 9) of an Elman layer against a
// reference in Double, and its gradient against finite differences of Ω(θ) with the ∂L/∂h vectors
// frozen at their values at θ0 (tanh and relu, both directions, padded rows).
import Testing
@testable import UnrollModels
import UnrollKernels
import UnrollTestSupport

/// As GradientCheckTests: Float32 forward passes differenced in Double.
private let eps: Float = 1e-2, rtol = 2e-2, atol = 2e-3

/// A Jordan model over `batch`'s inputs, with per-step class or value targets.
private func jordanConfig(tokens: Bool, classes: Bool, dropout: Float = 0) -> SequenceModelConfig {
    SequenceModelConfig(cell: .jordan, vocabSize: tokens ? 6 : 0, inputSize: 3, hiddenSize: 4, layers: 1,
                        bidirectional: false, dropout: dropout, perStep: true, outputKind: classes ? .classes : .values,
                        targetDim: 2, numClasses: classes ? 3 : 0, initScheme: .uniform(0.5))
}

/// (T, B, O) teacher-forcing feedback of `batch`: at step t the targets of step t − 1 (one-hot per
/// label, or the values), zero at t = 0 and at padded steps.
private func teacherFeedback(_ c: SequenceModelConfig, _ batch: SequenceBatch) -> [Float] {
    let B = batch.lengths.count, O = c.outputSize, d = c.targetDim, C = c.numClasses
    var y = [Float](repeating: 0, count: batch.steps * B * O)
    for t in 1..<batch.steps {
        for b in 0..<B where t < batch.lengths[b] {
            let previous = (t - 1) * B + b
            for k in 0..<d {
                if c.outputKind == .classes {
                    y[(t * B + b) * O + k * C + Int(batch.classTargets[previous * d + k])] = 1
                } else {
                    y[(t * B + b) * O + k] = batch.valueTargets[previous * d + k]
                }
            }
        }
    }
    return y
}

/// Teacher-forced forward + summed loss of the valid steps; with `gradients`, backward too.
@discardableResult
private func runJordan(_ model: SequenceModel, _ batch: SequenceBatch, feedback: [Float], dropout: SequenceDropout? = nil,
                       gradients: Bool) -> Double {
    let c = model.config, B = batch.lengths.count
    batch.tokens.withUnsafeBufferPointer { tokens in
        batch.features.withUnsafeBufferPointer { features in
            model.forward(tokens: c.vocabSize > 0 ? tokens.baseAddress : nil,
                          features: c.vocabSize > 0 ? nil : features.baseAddress,
                          steps: batch.steps, batch: B, lengths: batch.lengths, state: nil, dropout: dropout,
                          feedback: feedback)
        }
    }
    return lossAndBackward(model, batch, gradients: gradients)
}

@Suite struct JordanModelTests {
    @Test(arguments: [true, false], [true, false])
    func jordanTeacherForcedMatchesFiniteDifferences(tokens: Bool, classes: Bool) {
      for dropout: Float in [0, 0.3] {
        let c = jordanConfig(tokens: tokens, classes: classes, dropout: dropout)
        let model = SequenceModel(config: c, seed: 3, maxSteps: 5, maxBatch: 4)
        let batch = SequenceBatch(config: c, steps: 5, lengths: [5, 4, 2, 0], seed: 9)
        let feedback = teacherFeedback(c, batch)
        let mask = dropout > 0 ? SequenceDropout(seed: 5, step: 2, rowIds: [3, 0, 7, 1]) : nil
        model.arena.zeroGradients()
        runJordan(model, batch, feedback: feedback, dropout: mask, gradients: true)
        #expect(model.jordan != nil && model.layers.isEmpty)
        for view in model.arena.layout.views {
            let r = checkGradient(parameter: model.arena.parameters(view), analytic: model.arena.gradients(view),
                                  indices: Array(0..<view.count), eps: eps, rtol: rtol, atol: atol) {
                runJordan(model, batch, feedback: feedback, dropout: mask, gradients: false)
            }
            #expect(r.passed, "tokens \(tokens) classes \(classes) p\(dropout) \(view.name): \(r)")
        }
        // The fed-back targets matter: W_yh gets a non-zero gradient.
        let yh = model.arena.view("rnn.weight_yh_l0")
        #expect((0..<yh.count).contains { model.arena.gradients(yh)[$0] != 0 })
      }
    }

    /// Free-running decoding = the teacher-forced forward fed the model's own previous predictions,
    /// and two windows with the prediction carried = one window.
    @Test(arguments: [true, false])
    func freeRunningFeedsBackOwnPredictions(classes: Bool) {
        let c = jordanConfig(tokens: true, classes: classes)
        let T = 6, B = 3, O = c.outputSize, d = c.targetDim, C = c.numClasses
        let model = SequenceModel(config: c, seed: 4, maxSteps: T, maxBatch: B)
        let batch = SequenceBatch(config: c, steps: T, lengths: [6, 5, 2], seed: 12)
        var previous = [Float](repeating: 0, count: B * O)
        model.forwardFreeRunning(tokens: batch.tokens, features: nil, steps: T, batch: B, lengths: batch.lengths,
                                 previous: &previous)
        let free = Array(UnsafeBufferPointer(start: model.outputs, count: T * B * O))
        // The predictions, encoded as the model feeds them back.
        var fed = [Float](repeating: 0, count: T * B * O)
        for t in 1..<T {
            for b in 0..<B where t < batch.lengths[b] {
                let out = (t - 1) * B + b
                for k in 0..<d {
                    if classes {
                        var best = 0
                        for j in 1..<C where free[out * O + k * C + j] > free[out * O + k * C + best] { best = j }
                        fed[(t * B + b) * O + k * C + best] = 1
                    } else {
                        fed[(t * B + b) * O + k] = free[out * O + k]
                    }
                }
            }
        }
        batch.tokens.withUnsafeBufferPointer {
            model.forward(tokens: $0.baseAddress, features: nil, steps: T, batch: B, lengths: batch.lengths, state: nil,
                          dropout: nil, feedback: fed)
        }
        var worst: Float = 0
        for t in 0..<T { for b in 0..<B where t < batch.lengths[b] {
            for o in 0..<O { worst = max(worst, abs(model.outputs[(t * B + b) * O + o] - free[(t * B + b) * O + o])) }
        } }
        #expect(worst < 1e-5, "free-running vs teacher-forced on its own predictions: \(worst)")
        // On exit `previous` holds each row's last prediction.
        for b in 0..<B {
            let last = (batch.lengths[b] - 1) * B + b
            if classes {
                for k in 0..<d {
                    var best = 0
                    for j in 1..<C where free[last * O + k * C + j] > free[last * O + k * C + best] { best = j }
                    for j in 0..<C { #expect(previous[b * O + k * C + j] == (j == best ? 1 : 0)) }
                }
            } else {
                for o in 0..<O { #expect(previous[b * O + o] == free[last * O + o]) }
            }
        }
        // Windows of 4 and 2 steps with the prediction carried give the same outputs.
        var carried = [Float](repeating: 0, count: B * O)
        let first = batch.lengths.map { min($0, 4) }, second = batch.lengths.map { max(0, $0 - 4) }
        model.forwardFreeRunning(tokens: batch.tokens, features: nil, steps: 4, batch: B, lengths: first, previous: &carried)
        var windowed = Array(UnsafeBufferPointer(start: model.outputs, count: 4 * B * O))
        let rest = Array(batch.tokens[(4 * B)...])
        model.forwardFreeRunning(tokens: rest, features: nil, steps: 2, batch: B, lengths: second, previous: &carried)
        windowed += Array(UnsafeBufferPointer(start: model.outputs, count: 2 * B * O))
        for t in 0..<T { for b in 0..<B where t < batch.lengths[b] {
            for o in 0..<O { #expect(windowed[(t * B + b) * O + o] == free[(t * B + b) * O + o], "t \(t) b \(b)") }
        } }
    }

    @Test func jordanConfigurationsOutsideItsScopeAreRefused() {
        var c = jordanConfig(tokens: true, classes: true)
        #expect(c.problem() == nil)
        c.perStep = false
        #expect(c.problem()?.contains("--cell jordan needs per-step targets") == true)
        c.perStep = true
        c.layers = 2
        #expect(c.problem()?.contains("--layers must be 1") == true)
        c.layers = 1
        c.bidirectional = true
        #expect(c.problem()?.contains("--bidirectional") == true)
        c.bidirectional = false
        c.initScheme = .identity
        #expect(c.problem()?.contains("--init identity") == true)
        let lm = ModelConfig(cell: .jordan, vocabSize: 5, embeddingSize: 3, hiddenSize: 3, layers: 1)
        #expect(lm.problem()?.contains("--cell jordan needs per-step targets") == true)
    }
}

// MARK: flow regulariser

/// The flow regulariser of one Elman layer, computed independently in Double: Ω = Σ over active
/// (row, step) of (‖(g ⊙ φ'(a_t)) W_hh‖ / ‖g‖ − 1)², from the layer's last forward and W_hh now,
/// with the g vectors given.
private func referenceOmega(_ layer: any RecurrentLayer, arena: ParameterArena, relu: Bool, g: [Double],
                            lengths: [Int], T: Int, B: Int, H: Int) -> Double {
    let w = arena.parameters(arena.view("rnn.weight_hh_l0"))
    var omega = 0.0
    for t in 0..<T {
        for i in 0..<B where t < lengths[i] {
            let row = (t * B + i) * H
            var p = [Double](repeating: 0, count: H), gg = 0.0
            for k in 0..<H {
                let h = Double(layer.output[row + k])
                p[k] = g[row + k] * (relu ? (h > 0 ? 1 : 0) : 1 - h * h)
                gg += g[row + k] * g[row + k]
            }
            guard gg > 0 else { continue }
            var vv = 0.0
            for j in 0..<H {
                var v = 0.0
                for k in 0..<H { v += p[k] * Double(w[k * H + j]) }
                vv += v * v
            }
            let n = vv.squareRoot() / gg.squareRoot()
            omega += (n - 1) * (n - 1)
        }
    }
    return omega
}

/// g_t = ∂L/∂h_t (T, B, H) of L = Σ wOut⊙outputs + Σ wh⊙h_final after the layer's last forward,
/// by BPTT in Double: padded steps pass g unchanged to the step before (in processing order).
private func referenceG(_ layer: any RecurrentLayer, arena: ParameterArena, relu: Bool, wOut: [Float], wh: [Float],
                        lengths: [Int], direction: TimeDirection, T: Int, B: Int, H: Int) -> [Double] {
    let w = arena.parameters(arena.view("rnn.weight_hh_l0"))
    var g = [Double](repeating: 0, count: T * B * H)
    var dh = wh.map(Double.init)
    let order = direction == .forward ? Array((0..<T).reversed()) : Array(0..<T)
    for t in order {
        for i in 0..<B {
            let row = (t * B + i) * H
            var gt = [Double](repeating: 0, count: H)
            for k in 0..<H { gt[k] = Double(wOut[row + k]) + dh[i * H + k]; g[row + k] = gt[k] }
            if t < lengths[i] {
                for j in 0..<H {
                    var v = 0.0
                    for k in 0..<H {
                        let h = Double(layer.output[row + k])
                        v += gt[k] * (relu ? (h > 0 ? 1 : 0) : 1 - h * h) * Double(w[k * H + j])
                    }
                    dh[i * H + j] = v
                }
            } else {
                for k in 0..<H { dh[i * H + k] = gt[k] }
            }
        }
    }
    return g
}

@Suite struct FlowRegularizerTests {
    @Test(arguments: [CellKind.rnnTanh, .rnnRelu], [TimeDirection.forward, .reverse])
    func flowGradientMatchesFiniteDifferencesWithFrozenLossGradients(cell: CellKind, direction: TimeDirection) {
        let T = 5, B = 3, E = 3, H = 4, lengths = [5, 3, 1]
        let relu = cell == .rnnRelu
        let layout = singleLayerLayout(cell, inputSize: E, hiddenSize: H)
        let arena = ParameterArena(layout: layout)
        var rng = TestRNG(seed: 31)
        rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
        guard let layer = RecurrentLayers.make(cell: cell, index: 0, inputSize: E, hiddenSize: H, direction: direction,
                                               arena: arena, maxSteps: T, maxBatch: B) as? ElmanLayer else {
            Issue.record("not an Elman layer")
            return
        }
        let input = FloatBuffer(rng.floats(T * B * E)), h0 = FloatBuffer(rng.floats(B * H))
        let wOut = rng.floats(T * B * H), wh = rng.floats(B * H)
        let hT = FloatBuffer(count: B * H)
        func forward() {
            layer.forward(input: input.pointer, steps: T, batch: B, lengths: lengths,
                          initial: LayerState(h: h0.pointer, c: nil), final: LayerState(h: hT.pointer, c: nil))
        }
        /// Parameter, input and initial-state gradients of one backward with λ.
        func gradients(_ lambda: Float) -> (params: [Float], input: [Float], h0: [Float], omega: Double) {
            forward()
            arena.zeroGradients()
            layer.flowRegularizer = lambda
            let dOut = FloatBuffer(wOut), dFinal = FloatBuffer(wh)
            let dInput = FloatBuffer(count: T * B * E), dh0 = FloatBuffer(count: B * H)
            layer.backward(dOutput: dOut.pointer, dFinal: LayerState(h: dFinal.pointer, c: nil), dInput: dInput.pointer,
                           dInitial: LayerState(h: dh0.pointer, c: nil))
            layer.flowRegularizer = 0
            return (Array(UnsafeBufferPointer(start: arena.gradients.pointer, count: arena.gradients.count)),
                    Array(UnsafeBufferPointer(start: dInput.pointer, count: T * B * E)),
                    Array(UnsafeBufferPointer(start: dh0.pointer, count: B * H)), layer.flowSum)
        }
        let plain = gradients(0), lambda: Float = 0.5, regularised = gradients(lambda)
        #expect(plain.omega == 0)
        // g frozen at θ0; Ω at θ0 as the layer reports it.
        forward()
        let g = referenceG(layer, arena: arena, relu: relu, wOut: wOut, wh: wh, lengths: lengths, direction: direction,
                           T: T, B: B, H: H)
        func omega() -> Double {
            forward()
            return referenceOmega(layer, arena: arena, relu: relu, g: g, lengths: lengths, T: T, B: B, H: H)
        }
        let omega0 = omega()
        #expect(omega0 > 0.01)
        #expect(abs(regularised.omega - omega0) <= 1e-4 * omega0, "Ω \(regularised.omega) vs reference \(omega0)")
        // ∂Ω/∂θ = (gradient of L + λΩ − gradient of L) / λ.
        let dOmega = FloatBuffer(zip(regularised.params, plain.params).map { ($0 - $1) / lambda })
        let step: (eps: Float, atol: Double) = relu ? (1e-3, 5e-3) : (eps, atol)
        for view in layout.views {
            let r = checkGradient(parameter: arena.parameters(view), analytic: dOmega.pointer + view.offset,
                                  indices: Array(0..<view.count), eps: step.eps, rtol: rtol, atol: step.atol,
                                  piecewise: relu, loss: omega)
            #expect(r.passed, "\(cell) \(direction) \(view.name): \(r)")
        }
        let dInput = FloatBuffer(zip(regularised.input, plain.input).map { ($0 - $1) / lambda })
        let dh0 = FloatBuffer(zip(regularised.h0, plain.h0).map { ($0 - $1) / lambda })
        for (name, x, dx) in [("input", input, dInput), ("h0", h0, dh0)] {
            // Padded positions of the input are never read: their gradient is zero on both sides.
            let r = checkGradient(parameter: x.pointer, analytic: dx.pointer, indices: Array(0..<x.count),
                                  eps: step.eps, rtol: rtol, atol: step.atol, piecewise: relu, loss: omega)
            #expect(r.passed, "\(cell) \(direction) \(name): \(r)")
        }
        // The regulariser changes W_hh's gradient (its direct term) at all.
        let hh = arena.view("rnn.weight_hh_l0")
        #expect((0..<hh.count).contains { abs(dOmega[hh.offset + $0]) > 1e-3 })
    }

    /// The model sets λ on its Elman layers and sums their Ω.
    /// A long tanh window whose loss reaches only the last step: ∂L/∂h_t shrinks geometrically to
    /// numerical zero at the early steps, where the ratio is undefined and 1/‖g‖ overflowed Float
    /// (NaN gradients on adding, T = 100). Those terms are left out; the gradient stays finite and
    /// Ω counts only the steps whose gradient has not vanished.
    @Test func vanishedLossGradientsLeaveNoNaN() {
        let T = 120, B = 2, E = 2, H = 8
        let layout = singleLayerLayout(.rnnTanh, inputSize: E, hiddenSize: H)
        let arena = ParameterArena(layout: layout)
        var rng = TestRNG(seed: 7)
        rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.15, 0.15)
        guard let layer = RecurrentLayers.make(cell: .rnnTanh, index: 0, inputSize: E, hiddenSize: H, direction: .forward,
                                               arena: arena, maxSteps: T, maxBatch: B) as? ElmanLayer else {
            Issue.record("not an Elman layer")
            return
        }
        let input = FloatBuffer(rng.floats(T * B * E)), h0 = FloatBuffer(count: B * H), hT = FloatBuffer(count: B * H)
        layer.forward(input: input.pointer, steps: T, batch: B, lengths: nil,
                      initial: LayerState(h: h0.pointer, c: nil), final: LayerState(h: hT.pointer, c: nil))
        arena.zeroGradients()
        layer.flowRegularizer = 1
        let dOut = FloatBuffer(count: T * B * H), dFinal = FloatBuffer([Float](repeating: 1, count: B * H))
        let dInput = FloatBuffer(count: T * B * E)
        layer.backward(dOutput: dOut.pointer, dFinal: LayerState(h: dFinal.pointer, c: nil), dInput: dInput.pointer,
                       dInitial: nil)
        let gradients = UnsafeBufferPointer(start: arena.gradients.pointer, count: arena.gradients.count)
        #expect(gradients.allSatisfy { $0.isFinite }, "non-finite parameter gradient")
        #expect(UnsafeBufferPointer(start: dInput.pointer, count: T * B * E).allSatisfy { $0.isFinite })
        // Terms exist (the late steps) but not for all T·B (row, step) pairs.
        #expect(layer.flowSum.isFinite && layer.flowSum > 0)
        #expect(layer.flowSum < Double(T * B))
    }

    @Test func sequenceModelReportsOmegaOfItsLayers() {
        let c = SequenceModelConfig(cell: .rnnTanh, vocabSize: 0, inputSize: 3, hiddenSize: 4, layers: 1,
                                    bidirectional: true, perStep: false, outputKind: .values, targetDim: 1, numClasses: 0)
        let model = SequenceModel(config: c, seed: 2, maxSteps: 6, maxBatch: 3)
        let batch = SequenceBatch(config: c, steps: 6, lengths: [6, 4, 3], seed: 5)
        model.arena.zeroGradients()
        runSequenceModel(model, batch, gradients: true)
        let plain = Array(UnsafeBufferPointer(start: model.arena.gradients.pointer, count: model.arena.gradients.count))
        #expect(model.flowSum == 0)
        model.flowRegularizer = 0.1
        model.arena.zeroGradients()
        runSequenceModel(model, batch, gradients: true)
        let layers = model.layers.joined().compactMap { $0 as? ElmanLayer }
        #expect(layers.count == 2 && layers.allSatisfy { $0.flowRegularizer == 0.1 && $0.flowSum > 0 })
        #expect(abs(model.flowSum - layers.reduce(0) { $0 + $1.flowSum }) < 1e-12)
        let changed = (0..<plain.count).contains { abs(model.arena.gradients[$0] - plain[$0]) > 1e-6 }
        #expect(changed)
    }
}
