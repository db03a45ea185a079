// Skip connections through time (Deep Learning §10.7.2) and the clockwork RNN (Koutník et al.
// 2014): single layers against finite differences (both directions for skips, padded rows, several
// periods including non-prefix sets of due modules), forwards against a naive reference written
// from the definitions, the clockwork's masked blocks (zero at initialisation, zero gradient,
// never read), and the identity initialisation of skip weights.
#if canImport(Glibc)
import Glibc
#endif
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

/// As GradientCheckTests: Float32 forward passes differenced in Double.
private let eps: Float = 1e-2, rtol = 2e-2, atol = 2e-3

/// One layer's `rnn.*_l0` views plus the skip weights for `skipSteps`.
private func layerLayout(_ cell: CellKind, inputSize E: Int, hiddenSize H: Int, skipSteps: [Int] = []) -> ParameterLayout {
    var layout = singleLayerLayout(cell, inputSize: E, hiddenSize: H)
    for d in skipSteps { layout.append(skipWeightName(d: d, layer: 0), shape: [H, H]) }
    return layout
}

/// Runs `layer` and returns L = Σ wOut ⊙ outputs + Σ wh ⊙ h_final; with `gradients`, also runs
/// backward into the arena and returns ∂L/∂input and ∂L/∂h0.
private struct LayerProbe {
    let T: Int, B: Int, E: Int, H: Int
    let lengths: [Int]?
    let input: FloatBuffer, h0: FloatBuffer, wOut: FloatBuffer, wh: FloatBuffer, hT: FloatBuffer

    init(T: Int, B: Int, E: Int, H: Int, lengths: [Int]?, seed: UInt64) {
        self.T = T; self.B = B; self.E = E; self.H = H
        self.lengths = lengths
        var rng = TestRNG(seed: seed)
        input = FloatBuffer(rng.floats(T * B * E))
        h0 = FloatBuffer(rng.floats(B * H))
        wOut = FloatBuffer(rng.floats(T * B * H))
        wh = FloatBuffer(rng.floats(B * H))
        hT = FloatBuffer(count: B * H)
    }

    func loss(_ layer: any RecurrentLayer) -> Double {
        layer.forward(input: input.pointer, steps: T, batch: B, lengths: lengths,
                      initial: LayerState(h: h0.pointer, c: nil), final: LayerState(h: hT.pointer, c: nil))
        return dot(wOut.pointer, layer.output, count: T * B * H) + dot(wh.pointer, hT.pointer, count: B * H)
    }

    func gradients(_ layer: any RecurrentLayer, arena: ParameterArena) -> (dInput: FloatBuffer, dh0: FloatBuffer) {
        _ = loss(layer)
        arena.zeroGradients()
        let dOut = wOut.copy(), dInput = FloatBuffer(count: T * B * E), dh0 = FloatBuffer(count: B * H)
        layer.backward(dOutput: dOut.pointer, dFinal: LayerState(h: wh.pointer, c: nil), dInput: dInput.pointer,
                       dInitial: LayerState(h: dh0.pointer, c: nil))
        return (dInput, dh0)
    }

    /// Every parameter, input and initial-state element against centred differences.
    func check(_ layer: any RecurrentLayer, arena: ParameterArena, relu: Bool, label: String) {
        let (dInput, dh0) = gradients(layer, arena: arena)
        let (e, a): (Float, Double) = relu ? (1e-3, 5e-3) : (eps, atol)
        for view in arena.layout.views {
            let r = checkGradient(parameter: arena.parameters(view), analytic: arena.gradients(view),
                                  indices: Array(0..<view.count), eps: e, rtol: rtol, atol: a, piecewise: relu,
                                  loss: { loss(layer) })
            #expect(r.passed, "\(label) \(view.name): \(r)")
        }
        for (name, x, dx) in [("input", input, dInput), ("h0", h0, dh0)] {
            let r = checkGradient(parameter: x.pointer, analytic: dx.pointer, indices: Array(0..<x.count), eps: e,
                                  rtol: rtol, atol: a, piecewise: relu, loss: { loss(layer) })
            #expect(r.passed, "\(label) \(name): \(r)")
        }
    }
}

/// The Elman layer with skips written from its definition in Double: h_t = φ(W_ih x_t + b_ih +
/// b_hh + W_hh h_{t∓1} + Σ_d W_d h_{t∓d}), states before the window = h0, padded steps keep the
/// state (rows sorted by length; a reversed row starts at its last valid step). Returns (T, B, H).
private func referenceSkipOutputs(arena: ParameterArena, relu: Bool, direction: TimeDirection, skipSteps: [Int],
                                  probe p: LayerProbe) -> [Double] {
    let T = p.T, B = p.B, E = p.E, H = p.H
    func w(_ name: String) -> UnsafeMutablePointer<Float> { arena.parameters(arena.view(name)) }
    let wih = w("rnn.weight_ih_l0"), whh = w("rnn.weight_hh_l0"), bih = w("rnn.bias_ih_l0"), bhh = w("rnn.bias_hh_l0")
    var out = [Double](repeating: 0, count: T * B * H)
    for i in 0..<B {
        let n = p.lengths?[i] ?? T
        // states[k] = h after the k-th processed step of the row; states before index 0 are h0.
        var states: [[Double]] = []
        func state(_ k: Int) -> [Double] { k < 0 ? (0..<H).map { Double(p.h0[i * H + $0]) } : states[k] }
        for k in 0..<n {
            let t = direction == .forward ? k : n - 1 - k
            var h = [Double](repeating: 0, count: H)
            for j in 0..<H {
                var a = Double(bih[j]) + Double(bhh[j])
                for e in 0..<E { a += Double(wih[j * E + e]) * Double(p.input[(t * B + i) * E + e]) }
                let prev = state(k - 1)
                for l in 0..<H { a += Double(whh[j * H + l]) * prev[l] }
                for d in skipSteps {
                    let wd = w(skipWeightName(d: d, layer: 0)), source = state(k - d)
                    for l in 0..<H { a += Double(wd[j * H + l]) * source[l] }
                }
                h[j] = relu ? max(a, 0) : tanh(a)
            }
            states.append(h)
            for j in 0..<H { out[(t * B + i) * H + j] = h[j] }
        }
        // Padded steps hold the carried state: the last one (forward) or h0 (reverse).
        for t in n..<T {
            let h = direction == .forward ? state(n - 1) : state(-1)
            for j in 0..<H { out[(t * B + i) * H + j] = h[j] }
        }
    }
    return out
}

@Suite struct SkipConnectionTests {
    static let lengthCases: [[Int]?] = [nil, [6, 4, 2, 0]]

    /// d = 2 and 3 inside the window, d = 7 > T: every step reads the initial state.
    @Test(arguments: [CellKind.rnnTanh, .rnnRelu], [TimeDirection.forward, .reverse])
    func skipLayerMatchesFiniteDifferences(cell: CellKind, direction: TimeDirection) {
        for lengths in Self.lengthCases {
            let T = 6, B = 4, E = 3, H = 3, skips = [2, 3, 7]
            let arena = ParameterArena(layout: layerLayout(cell, inputSize: E, hiddenSize: H, skipSteps: skips))
            var rng = TestRNG(seed: 41)
            rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
            let layer = RecurrentLayers.make(cell: cell, index: 0, inputSize: E, hiddenSize: H, direction: direction,
                                            arena: arena, maxSteps: T, maxBatch: B, skipSteps: skips)
            let probe = LayerProbe(T: T, B: B, E: E, H: H, lengths: lengths, seed: 42)
            probe.check(layer, arena: arena, relu: cell == .rnnRelu, label: "\(cell) \(direction) \(lengths ?? [])")
        }
    }

    /// The forward pass is the definition: compared with a Double reference, padded rows included.
    @Test(arguments: [TimeDirection.forward, .reverse])
    func skipForwardMatchesTheDefinition(direction: TimeDirection) {
        for lengths in Self.lengthCases {
            let T = 6, B = 4, E = 3, H = 3, skips = [2, 5]
            let arena = ParameterArena(layout: layerLayout(.rnnTanh, inputSize: E, hiddenSize: H, skipSteps: skips))
            var rng = TestRNG(seed: 43)
            rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
            let layer = RecurrentLayers.make(cell: .rnnTanh, index: 0, inputSize: E, hiddenSize: H, direction: direction,
                                            arena: arena, maxSteps: T, maxBatch: B, skipSteps: skips)
            let probe = LayerProbe(T: T, B: B, E: E, H: H, lengths: lengths, seed: 44)
            _ = probe.loss(layer)
            let expected = referenceSkipOutputs(arena: arena, relu: false, direction: direction, skipSteps: skips, probe: probe)
            let got = Array(UnsafeBufferPointer(start: layer.output, count: T * B * H))
            let (ratio, at) = closeness(got, expected, rtol: 1e-5, atol: 1e-6)
            #expect(ratio <= 1, "\(direction) \(lengths ?? []): element \(at): \(got[max(at, 0)]) vs \(expected[max(at, 0)])")
        }
    }

    /// Skip weights of a layer with zero skip weights change nothing: the layer is the plain Elman one.
    @Test func zeroSkipWeightsGiveThePlainLayer() {
        let T = 5, B = 2, E = 3, H = 4
        let arena = ParameterArena(layout: layerLayout(.rnnTanh, inputSize: E, hiddenSize: H, skipSteps: [2]))
        var rng = TestRNG(seed: 45)
        rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
        let skipView = arena.view(skipWeightName(d: 2, layer: 0))
        arena.parameters(skipView).update(repeating: 0, count: skipView.count)
        let plainArena = ParameterArena(layout: singleLayerLayout(.rnnTanh, inputSize: E, hiddenSize: H))
        for view in plainArena.layout.views {
            plainArena.parameters(view).update(from: arena.parameters(arena.view(view.name)), count: view.count)
        }
        let skip = RecurrentLayers.make(cell: .rnnTanh, index: 0, inputSize: E, hiddenSize: H, arena: arena,
                                       maxSteps: T, maxBatch: B, skipSteps: [2])
        let plain = RecurrentLayers.make(cell: .rnnTanh, index: 0, inputSize: E, hiddenSize: H, arena: plainArena,
                                        maxSteps: T, maxBatch: B)
        let probe = LayerProbe(T: T, B: B, E: E, H: H, lengths: nil, seed: 46)
        #expect(probe.loss(skip) == probe.loss(plain))
    }

    /// --init identity: W_hh = I and skip weights 0, so the start is exactly an IRNN.
    @Test func identityInitialisationZeroesSkipWeights() {
        let config = SequenceModelConfig(cell: .rnnRelu, vocabSize: 0, inputSize: 2, hiddenSize: 4, layers: 1,
                                         bidirectional: true, outputKind: .values, targetDim: 1, numClasses: 0,
                                         initScheme: .identity, skipSteps: [2, 4])
        let model = SequenceModel(config: config, seed: 3, maxSteps: 4, maxBatch: 2)
        for suffix in ["", "_reverse"] {
            for d in [2, 4] {
                let view = model.arena.view(skipWeightName(d: d, layer: 0, suffix: suffix))
                #expect((0..<view.count).allSatisfy { model.arena.parameters(view)[$0] == 0 })
            }
        }
    }
}

/// The clockwork layer from its definition in Double (forward, rows with lengths): (T, B, H).
private func referenceClockworkOutputs(arena: ParameterArena, periods: [Int], probe p: LayerProbe) -> [Double] {
    let T = p.T, B = p.B, E = p.E, H = p.H, m = H / periods.count
    func w(_ name: String) -> UnsafeMutablePointer<Float> { arena.parameters(arena.view(name)) }
    let wih = w("rnn.weight_ih_l0"), whh = w("rnn.weight_hh_l0"), bih = w("rnn.bias_ih_l0"), bhh = w("rnn.bias_hh_l0")
    var out = [Double](repeating: 0, count: T * B * H)
    for i in 0..<B {
        var h = (0..<H).map { Double(p.h0[i * H + $0]) }
        for t in 0..<T {
            if t < (p.lengths?[i] ?? T) {
                var next = h
                for j in 0..<H where t % periods[j / m] == 0 {
                    var a = Double(bih[j]) + Double(bhh[j])
                    for e in 0..<E { a += Double(wih[j * E + e]) * Double(p.input[(t * B + i) * E + e]) }
                    // Module j/m reads modules of period ≥ its own: columns from its first unit on.
                    for l in ((j / m) * m)..<H { a += Double(whh[j * H + l]) * h[l] }
                    next[j] = tanh(a)
                }
                h = next
            }
            for j in 0..<H { out[(t * B + i) * H + j] = h[j] }
        }
    }
    return out
}

/// A clockwork layer's arena: every parameter U(−0.6, 0.6), W_hh's masked blocks 0 (as
/// `Initializer` leaves them; the Double reference reads only the unmasked ones either way).
private func clockworkArena(E: Int, H: Int, periods: [Int], seed: UInt64) -> ParameterArena {
    let arena = ParameterArena(layout: singleLayerLayout(.clockwork, inputSize: E, hiddenSize: H))
    var rng = TestRNG(seed: seed)
    rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
    ClockPeriods.zeroLowerBlocks(arena.parameters(arena.view("rnn.weight_hh_l0")), hidden: H, modules: periods.count)
    return arena
}

@Suite struct ClockworkTests {
    /// Periods 1,2,4 (the due modules always a prefix), 1,2,3 (at t = 3 modules 0 and 2 but not 1),
    /// 2,3 (nothing updates at t = 1): with and without padded rows, non-zero h0 and a gradient into
    /// the final state. The masked blocks hold random values here: the layer never reads them, so
    /// their differences are 0 like their gradient (which must be exactly 0).
    @Test(arguments: [[1, 2, 4], [1, 2, 3], [2, 3]])
    func clockworkLayerMatchesFiniteDifferences(periods: [Int]) {
        for lengths in SkipConnectionTests.lengthCases {
            let T = 6, B = 4, E = 3, H = 2 * periods.count
            let arena = ParameterArena(layout: singleLayerLayout(.clockwork, inputSize: E, hiddenSize: H))
            var rng = TestRNG(seed: 51)
            rng.fill(arena.parameters.pointer, count: arena.parameters.count, -0.6, 0.6)
            let layer = RecurrentLayers.make(cell: .clockwork, index: 0, inputSize: E, hiddenSize: H, arena: arena,
                                            maxSteps: T, maxBatch: B, clockPeriods: periods)
            let probe = LayerProbe(T: T, B: B, E: E, H: H, lengths: lengths, seed: 52)
            probe.check(layer, arena: arena, relu: false, label: "periods \(periods) \(lengths ?? [])")
            // The masked blocks' gradients are exactly zero.
            _ = probe.gradients(layer, arena: arena)
            let g = arena.gradients(arena.view("rnn.weight_hh_l0")), m = 2
            for r in 0..<H { for c in 0..<((r / m) * m) { #expect(g[r * H + c] == 0, "dW_hh[\(r), \(c)]") } }
        }
    }

    /// The forward pass is the definition; a module keeps its state exactly between its ticks.
    @Test(arguments: [[1, 2, 4], [1, 2, 3]])
    func clockworkForwardMatchesTheDefinition(periods: [Int]) {
        for lengths in SkipConnectionTests.lengthCases {
            let T = 6, B = 4, E = 3, H = 2 * periods.count
            let arena = clockworkArena(E: E, H: H, periods: periods, seed: 53)
            let layer = RecurrentLayers.make(cell: .clockwork, index: 0, inputSize: E, hiddenSize: H, arena: arena,
                                            maxSteps: T, maxBatch: B, clockPeriods: periods)
            let probe = LayerProbe(T: T, B: B, E: E, H: H, lengths: lengths, seed: 54)
            _ = probe.loss(layer)
            let expected = referenceClockworkOutputs(arena: arena, periods: periods, probe: probe)
            let got = Array(UnsafeBufferPointer(start: layer.output, count: T * B * H))
            let (ratio, at) = closeness(got, expected, rtol: 1e-5, atol: 1e-6)
            #expect(ratio <= 1, "\(periods) \(lengths ?? []): element \(at)")
            // Between ticks a module's units are bit-identical to the step before.
            for t in 1..<T {
                for i in 0..<B {
                    for j in 0..<H where t % periods[j / 2] != 0 {
                        #expect(got[(t * B + i) * H + j] == got[((t - 1) * B + i) * H + j])
                    }
                }
            }
        }
    }

    /// Initialisation zeroes W_hh's blocks below the module diagonal under every scheme; the
    /// default periods are powers of two over the largest module count ≤ 8 dividing H.
    @Test(arguments: [InitScheme.pytorch, .uniform(0.3), .identity, .orthogonal])
    func initialisationZeroesTheMaskedBlocks(scheme: InitScheme) {
        let H = 12
        let config = SequenceModelConfig(cell: .clockwork, vocabSize: 5, inputSize: 3, hiddenSize: H, layers: 2,
                                         bidirectional: false, outputKind: .classes, targetDim: 1, numClasses: 2,
                                         initScheme: scheme)
        #expect(config.effectiveClockPeriods == [1, 2, 4, 8, 16, 32])
        let model = SequenceModel(config: config, seed: 5, maxSteps: 3, maxBatch: 2)
        for k in 0..<2 {
            let w = model.arena.parameters(model.arena.view("rnn.weight_hh_l\(k)"))
            var upper = 0
            for r in 0..<H {
                for c in 0..<H {
                    if c < (r / 2) * 2 { #expect(w[r * H + c] == 0, "\(scheme.name) l\(k) [\(r), \(c)]") } else if w[r * H + c] != 0 { upper += 1 }
                }
            }
            #expect(upper > 0)
        }
    }

    @Test func periodAndSkipProblemsAreOneLine() throws {
        #expect(ClockPeriods.problem([1, 2, 4], hidden: 10)?.contains("--hidden 10 is not divisible into 3 equal modules") == true)
        #expect(ClockPeriods.problem([2, 2], hidden: 4)?.contains("increase strictly") == true)
        #expect(ClockPeriods.problem([0, 2], hidden: 4)?.contains("each period must be in") == true)
        #expect(ClockPeriods.defaultModules(hidden: 100) == 5)
        #expect(throws: SkipStepsError.self) { try SkipSteps.parse("0") }
        #expect(throws: SkipStepsError.self) { try SkipSteps.parse("2,2") }
        #expect(throws: SkipStepsError.self) { try SkipSteps.parse("2,x") }
        #expect(try SkipSteps.parse("4, 2") == [2, 4])
        #expect(recurrenceProblem(cell: .lstm, hidden: 4, skipSteps: [2], clockPeriods: nil)?
            .hasPrefix("--skip-steps applies to --cell rnn and rnn-relu") == true)
        #expect(recurrenceProblem(cell: .gru, hidden: 4, skipSteps: nil, clockPeriods: [1, 2])?
            .hasPrefix("--clock-periods / --clock-modules apply to --cell clockwork") == true)
    }
}
