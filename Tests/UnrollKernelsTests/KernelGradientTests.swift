// Finite-difference checks of every pointwise kernel's backward against its forward, plus the
// numerical properties of softmax cross-entropy and the dropout RNG.
import Testing
import UnrollKernels
import UnrollTestSupport

@Suite struct KernelGradientTests {
    /// LSTM step: loss = Σ wh⊙h + Σ wc⊙c over pre-activations and c_{t−1}.
    @Test func lstmStepBackwardMatchesFiniteDifferences() {
        let B = 3, H = 4
        var rng = TestRNG(seed: 1)
        let preB = FloatBuffer(rng.floats(B * 4 * H, -2, 2)), cPrevB = FloatBuffer(rng.floats(B * H))
        let wh = rng.floats(B * H), wc = rng.floats(B * H)
        func loss() -> Double {
            var g = preB.array, c = [Float](repeating: 0, count: B * H), tc = c, h = c
            LSTMKernels.forward(gates: &g, cPrev: cPrevB.pointer, c: &c, tanhC: &tc, h: &h, batch: B, hidden: H)
            return dot(wh, h, count: B * H) + dot(wc, c, count: B * H)
        }
        var g = preB.array, c = [Float](repeating: 0, count: B * H), tc = c, h = c
        LSTMKernels.forward(gates: &g, cPrev: cPrevB.pointer, c: &c, tanhC: &tc, h: &h, batch: B, hidden: H)
        var dGates = [Float](repeating: 0, count: B * 4 * H), dc = wc
        LSTMKernels.backward(dGates: &dGates, dc: &dc, dh: wh, gates: g, cPrev: cPrevB.pointer, tanhC: tc, batch: B, hidden: H)
        let r1 = checkGradient(parameter: preB.pointer, analytic: dGates, indices: Array(0..<preB.count), eps: 1e-2,
                               rtol: 1e-2, atol: 1e-3, loss: loss)
        #expect(r1.passed, "\(r1)")
        let r2 = checkGradient(parameter: cPrevB.pointer, analytic: dc, indices: Array(0..<cPrevB.count), eps: 1e-2,
                               rtol: 1e-2, atol: 1e-3, loss: loss)
        #expect(r2.passed, "\(r2)")
    }

    /// GRU step: loss = Σ w⊙h' over input pre-activations, recurrent pre-activations and h_{t−1}.
    @Test func gruStepBackwardMatchesFiniteDifferences() {
        let B = 2, H = 5
        var rng = TestRNG(seed: 2)
        let ih = FloatBuffer(rng.floats(B * 3 * H, -2, 2)), hh = FloatBuffer(rng.floats(B * 3 * H, -2, 2))
        let hPrev = FloatBuffer(rng.floats(B * H))
        let w = rng.floats(B * H)
        func loss() -> Double {
            var g = ih.array, n = [Float](repeating: 0, count: B * H), h = n
            GRUKernels.forward(gatesIH: &g, gatesHH: hh.pointer, hhN: &n, hPrev: hPrev.pointer, h: &h, batch: B, hidden: H)
            return dot(w, h, count: B * H)
        }
        var g = ih.array, n = [Float](repeating: 0, count: B * H), h = n
        GRUKernels.forward(gatesIH: &g, gatesHH: hh.pointer, hhN: &n, hPrev: hPrev.pointer, h: &h, batch: B, hidden: H)
        var dIH = [Float](repeating: 0, count: B * 3 * H), dHH = dIH, dhPrev = [Float](repeating: 0, count: B * H)
        GRUKernels.backward(dGatesIH: &dIH, dGatesHH: &dHH, dhPrev: &dhPrev, dh: w, gates: g, hhN: n, hPrev: hPrev.pointer,
                            batch: B, hidden: H)
        for (name, r) in [("ih", checkGradient(parameter: ih.pointer, analytic: dIH, indices: Array(0..<ih.count), eps: 1e-2,
                                                rtol: 1e-2, atol: 1e-3, loss: loss)),
                          ("hh", checkGradient(parameter: hh.pointer, analytic: dHH, indices: Array(0..<hh.count), eps: 1e-2,
                                                rtol: 1e-2, atol: 1e-3, loss: loss)),
                          ("hPrev", checkGradient(parameter: hPrev.pointer, analytic: dhPrev, indices: Array(0..<hPrev.count),
                                                   eps: 1e-2, rtol: 1e-2, atol: 1e-3, loss: loss))] {
            #expect(r.passed, "\(name): \(r)")
        }
    }

    @Test(arguments: [false, true])
    func elmanStepBackwardMatchesFiniteDifferences(relu: Bool) {
        let count = 12
        var rng = TestRNG(seed: 3)
        // Keep pre-activations away from relu's kink so ±eps stays on one side.
        let pre = FloatBuffer(rng.floats(count, -2, 2).map { abs($0) < 0.1 ? $0 + 0.3 : $0 })
        let w = rng.floats(count)
        func loss() -> Double {
            var h = pre.array
            ElmanKernels.forward(h: &h, count: count, relu: relu)
            return dot(w, h, count: count)
        }
        var h = pre.array
        ElmanKernels.forward(h: &h, count: count, relu: relu)
        var dPre = [Float](repeating: 0, count: count)
        ElmanKernels.backward(dPre: &dPre, dh: w, h: h, count: count, relu: relu)
        let r = checkGradient(parameter: pre.pointer, analytic: dPre, indices: Array(0..<count), eps: 1e-2, rtol: 1e-2,
                              atol: 1e-3, loss: loss)
        #expect(r.passed, "\(r)")
    }

    @Test func softmaxCrossEntropyBackwardMatchesFiniteDifferences() {
        let N = 4, V = 7
        var rng = TestRNG(seed: 4)
        let logits = FloatBuffer(rng.floats(N * V, -3, 3))
        let targets: [Int32] = [2, -1, 6, 0]
        func loss() -> Double {
            var d = [Float](repeating: 0, count: N * V)
            return SoftmaxCrossEntropy.forwardBackward(dLogits: &d, logits: logits.pointer, targets: targets, rows: N,
                                                       vocab: V, gradScale: 1).lossSum
        }
        var d = [Float](repeating: 0, count: N * V)
        let (_, count) = SoftmaxCrossEntropy.forwardBackward(dLogits: &d, logits: logits.pointer, targets: targets, rows: N,
                                                             vocab: V, gradScale: 1)
        #expect(count == 3)
        #expect(d[V..<(2 * V)].allSatisfy { $0 == 0 }, "ignored row has zero gradient")
        let r = checkGradient(parameter: logits.pointer, analytic: d, indices: Array(0..<logits.count), eps: 1e-2,
                              rtol: 1e-2, atol: 1e-3, loss: loss)
        #expect(r.passed, "\(r)")
    }

    @Test func softmaxCrossEntropyIsStableForHugeLogits() {
        let V = 3
        let logits: [Float] = [1e4, -1e4, 0, 80, 90, 100]
        let targets: [Int32] = [0, 0]
        var d = [Float](repeating: 0, count: 2 * V)
        let (loss, count) = SoftmaxCrossEntropy.forwardBackward(dLogits: &d, logits: logits, targets: targets, rows: 2,
                                                                vocab: V, gradScale: 1)
        #expect(count == 2)
        // Row 0: target has the max by far → loss ≈ 0. Row 1: loss = logsumexp − 80 ≈ 20.
        #expect(abs(loss - 20.0000454) < 1e-4, "loss \(loss)")
        #expect(d.allSatisfy { $0.isFinite })
        var scratch = [Float](repeating: 0, count: V)
        let evalLoss = SoftmaxCrossEntropy.loss(logits: logits, targets: targets, rows: 2, vocab: V, scratch: &scratch)
        #expect(abs(evalLoss.lossSum - loss) < 1e-9)
    }

    @Test func embeddingBackwardScatterAddsRepeatedTokens() {
        let V = 5, E = 3
        var rng = TestRNG(seed: 5)
        let table = FloatBuffer(rng.floats(V * E))
        let tokens: [Int32] = [1, 3, 1, 4]
        let w = rng.floats(tokens.count * E)
        func loss() -> Double {
            var out = [Float](repeating: 0, count: tokens.count * E)
            EmbeddingKernels.forward(&out, table: table.pointer, tokens: tokens, count: tokens.count, vocab: V, width: E)
            return dot(w, out, count: out.count)
        }
        var dTable = [Float](repeating: 0, count: V * E)
        EmbeddingKernels.backward(dTable: &dTable, dOut: w, tokens: tokens, count: tokens.count, width: E)
        let r = checkGradient(parameter: table.pointer, analytic: dTable, indices: Array(0..<table.count), eps: 1e-2,
                              rtol: 1e-3, atol: 1e-4, loss: loss)
        #expect(r.passed, "\(r)")
        #expect(dTable[0..<E].allSatisfy { $0 == 0 } && dTable[2 * E..<3 * E].allSatisfy { $0 == 0 })
    }

    @Test func activationsMatchDefinitionsAndDerivatives() {
        var rng = TestRNG(seed: 6)
        var x = rng.floats(64, -6, 6)
        x += [0, -100, 100, 1e-8]
        var s = x, t = x
        Activations.sigmoid(&s, x, count: x.count)
        Activations.tanh(&t, x, count: x.count)
        for i in 0..<x.count {
            let xd = Double(x[i])
            #expect(abs(Double(s[i]) - 1 / (1 + _exp(-xd))) <= 2e-6 * max(1e-30, 1 / (1 + _exp(-xd))) + 1e-30)
            #expect(abs(Double(t[i]) - _tanh(xd)) <= 2e-6 * abs(_tanh(xd)) + 1e-30)
        }
        // Derivatives from outputs equal centred differences of the forward.
        for i in 0..<64 {
            let h: Float = 1e-2
            var ds: Float = 0, dt: Float = 0
            let one: Float = 1
            Activations.sigmoidBackward(&ds, dy: [one], y: [s[i]], count: 1)
            Activations.tanhBackward(&dt, dy: [one], y: [t[i]], count: 1)
            var p = [x[i] + h, x[i] - h], q = p
            Activations.sigmoid(&p, p, count: 2)
            Activations.tanh(&q, q, count: 2)
            #expect(abs(Double(ds) - Double(p[0] - p[1]) / Double(2 * h)) < 1e-3)
            #expect(abs(Double(dt) - Double(q[0] - q[1]) / Double(2 * h)) < 1e-3)
        }
    }
}

@Suite struct DropoutTests {
    @Test func maskDependsOnlyOnSeedStepSiteAndIndex() {
        let n = 1000
        var whole = [Float](repeating: 0, count: n), again = whole
        DropoutKernels.makeMask(&whole, count: n, probability: 0.3, seed: 42, step: 7, site: 1)
        DropoutKernels.makeMask(&again, count: n, probability: 0.3, seed: 42, step: 7, site: 1)
        #expect(whole == again)
        // Any slice generated on its own equals the same slice of the whole mask (ranks draw their part).
        for (start, length) in [(0, 5), (1, 7), (3, 100), (517, 483)] {
            var part = [Float](repeating: 0, count: length)
            DropoutKernels.makeMask(&part, count: length, probability: 0.3, seed: 42, step: 7, site: 1, startIndex: start)
            #expect(part == Array(whole[start..<(start + length)]), "slice at \(start)")
        }
        for (seed, step, site) in [(UInt64(43), UInt64(7), UInt32(1)), (42, 8, 1), (42, 7, 2)] {
            var other = [Float](repeating: 0, count: n)
            DropoutKernels.makeMask(&other, count: n, probability: 0.3, seed: seed, step: step, site: site)
            #expect(other != whole)
        }
    }

    @Test func maskKeepsTheExpectedFractionScaled() {
        let n = 200_000, p: Float = 0.25
        var mask = [Float](repeating: 0, count: n)
        DropoutKernels.makeMask(&mask, count: n, probability: p, seed: 1, step: 0, site: 0)
        let kept = mask.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 1 / (1 - p)) < 1e-6 })
        let fraction = Double(kept.count) / Double(n)
        // Binomial standard deviation ≈ 0.001; allow 5σ.
        #expect(abs(fraction - 0.75) < 0.005, "kept \(fraction)")
    }
}

#if canImport(Glibc)
import Glibc
private func _exp(_ x: Double) -> Double { Glibc.exp(x) }
private func _tanh(_ x: Double) -> Double { Glibc.tanh(x) }
#endif
