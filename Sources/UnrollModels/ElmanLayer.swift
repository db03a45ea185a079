// Elman RNN layer over a window, h_t = φ(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh + Σ_d W_d h_{t−d})
// with φ = tanh or relu: forward and backward (BPTT). The pre-activations are built directly in the
// output slots of `hs`, so the cache is just the outputs. The Σ_d terms are the optional skip
// connections through time (Deep Learning §10.7.2), one H×H matrix `rnn.weight_hh_skip{d}_l{k}`
// per d; a reversed layer reads h_{t+d}. States before the window (t − d < 0) are the initial
// state, as if the layer had held it since long before: the same rule that makes a padded step
// the identity, so a padded row reads exactly what it would read run alone. Optionally (without
// skips) the backward adds the gradient of the flow regulariser λ·Ω (Pascanu, Mikolov & Bengio
// 2013 eq. 9; Deep Learning eq. 10.16) in the same pass, with ∂L/∂h treated as constant as in the
// paper. Derivations: Sources/UnrollKernels/Derivations.md.
import UnrollKernels

final class ElmanLayer: RecurrentLayerBase, RecurrentLayer {
    /// (T, B, H) pre-activation gradients.
    let dPre: FloatBuffer
    /// Skip steps d (sorted) and their weights W_d (H, H).
    let skipSteps: [Int]
    let skipWeights: [ParameterView]
    /// Per d: W_dᵀ packed for forward, W_d packed for backward.
    let packedSkipForward: [FloatBuffer], packedSkipBackward: [FloatBuffer]
    /// (B, H) ∂L/∂(initial state) through the skip paths; (B, H) scratch for Σ_t δa_t of the steps
    /// that read the initial state.
    let dInitialSkip: FloatBuffer, dPreSum: FloatBuffer
    /// λ of the flow regulariser; 0 = off. Not with reduction groups.
    var flowRegularizer: Float = 0
    /// Ω of the last backward: Σ over active (row, step) of (‖g_t ∂h_t/∂h_{t−1}‖ / ‖g_t‖ − 1)²,
    /// g_t = ∂L/∂h_t (0 when λ = 0).
    private(set) var flowSum: Double = 0
    /// Smallest ‖∂L/∂h_t‖ of a row whose flow term counts; below it the gradient has vanished and the
    /// ratio ‖v_t‖/‖g_t‖ is undefined (its gradient, ∝ 1/‖g_t‖, would overflow).
    static let flowGradientFloor = 1e-12
    /// The regulariser's work buffers, allocated at its first use.
    private var flow: FlowBuffers?

    /// pL (T, B, H) loss-only pre-activation gradients g ⊙ φ'; r (T, B, H) λ·∂Ω_t/∂v_t; omega (B, H)
    /// λ·∂Ω/∂h carried backwards; s, q (B, H) per-step scratch.
    private struct FlowBuffers {
        let pL: FloatBuffer, r: FloatBuffer, omega: FloatBuffer, s: FloatBuffer, q: FloatBuffer
    }

    init(cell: CellKind, index: Int, inputSize: Int, hiddenSize H: Int, direction: TimeDirection,
         arena: ParameterArena, maxSteps: Int, maxBatch: Int, suffix: String, prefix: String, skipSteps: [Int] = []) {
        precondition(SkipSteps.problem(skipSteps) == nil || skipSteps.isEmpty, "bad skip steps \(skipSteps)")
        dPre = FloatBuffer(count: maxSteps * maxBatch * H)
        let sorted = skipSteps.sorted()
        self.skipSteps = sorted
        skipWeights = sorted.map { arena.view(skipWeightName(d: $0, layer: index, suffix: suffix, prefix: prefix)) }
        for view in skipWeights { precondition(view.shape == [H, H], "\(view.name) shape mismatch") }
        packedSkipForward = skipSteps.map { _ in FloatBuffer(count: BLAS.packedCount(k: H, n: H)) }
        packedSkipBackward = skipSteps.map { _ in FloatBuffer(count: BLAS.packedCount(k: H, n: H)) }
        dInitialSkip = FloatBuffer(count: skipSteps.isEmpty ? 0 : maxBatch * H)
        dPreSum = FloatBuffer(count: skipSteps.isEmpty ? 0 : maxBatch * H)
        super.init(cell: cell, index: index, inputSize: inputSize, hiddenSize: H, direction: direction,
                   arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix)
    }

    private var relu: Bool { cell == .rnnRelu }

    /// The slot of `hs` that step t's skip term for d reads: h_{t−d} (forward) or h_{t+d}
    /// (reverse), clamped to the initial state's slot before the window.
    @inline(__always) private func skipSourceSlot(_ t: Int, _ d: Int) -> Int {
        direction == .forward ? max(t - d + 1, 0) : min(t + d, steps)
    }

    func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?, initial: LayerState,
                 final: LayerState) {
        begin(input: input, steps: steps, batch: batch, lengths: lengths)
        let H = hiddenSize, BH = batch * H
        for (q, view) in skipWeights.enumerated() {
            BLAS.pack(packedSkipForward[q].pointer, b: arena.parameters(view), k: H, n: H, ldb: H, transB: true)
        }
        projectInput(output, includeRecurrentBias: true)   // output slots hold pre-activations
        slot(initialSlot).update(from: initial.h, count: BH)
        for s in 0..<steps {
            let t = time(ofStep: s), b = active(t)
            let h = slot(outputSlot(t)), previous = slot(previousSlot(t))
            recurrentProduct(h, hPrev: previous, beta: 1, rows: b)
            if b > 0 {
                for (q, d) in skipSteps.enumerated() {
                    // (b, H) += h_{t∓d} (b, H) · W_dᵀ
                    BLAS.gemmPacked(m: b, n: H, k: H, a: slot(skipSourceSlot(t, d)), lda: H,
                                    packed: packedSkipForward[q].pointer, beta: 1, c: h, ldc: H)
                }
            }
            ElmanKernels.forward(h: h, count: b * H, relu: relu)
            carryInactive(h, from: previous, active: b)   // replaces the inactive rows' pre-activations
        }
        final.h.update(from: slot(finalSlot), count: BH)
    }

    func backward(dOutput: UnsafeMutablePointer<Float>, dFinal: LayerState?,
                  dInput: UnsafeMutablePointer<Float>?, dInitial: LayerState?) {
        packBackward()
        let H = hiddenSize, BH = batch * H
        for (q, view) in skipWeights.enumerated() {
            BLAS.pack(packedSkipBackward[q].pointer, b: arena.parameters(view), k: H, n: H, ldb: H, transB: false)
        }
        if !skipSteps.isEmpty { dInitialSkip.pointer.update(repeating: 0, count: BH) }
        let dh = dhRecurrent.pointer
        if let dFinal { dh.update(from: dFinal.h, count: BH) } else { dh.update(repeating: 0, count: BH) }
        flowSum = 0
        if flowRegularizer > 0 {
            backwardWithFlow(dOutput: dOutput, dInput: dInput, dInitial: dInitial)
            return
        }
        for s in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: s), b = active(t)
            let dOut = dOutput + t * BH
            RowKernels.add(dOut, dh, count: BH)
            let dp = dPre.pointer + t * BH
            ElmanKernels.backward(dPre: dp, dh: dOut, h: slot(outputSlot(t)), count: b * H, relu: relu)
            recurrentBackward(dh, dGates: dp, beta: 0, rows: b)
            passInactive(dGates: dp, width: H, dhPrev: dh, dOut: dOut, active: b)
            if b > 0 {
                // ∂L/∂h_{t∓d} += δa_t · W_d: into the output gradient of that (later-processed) step,
                // which carries it on like any other, or into the initial state's before the window.
                for (q, d) in skipSteps.enumerated() {
                    let j = direction == .forward ? t - d : t + d
                    let target = j >= 0 && j < steps ? dOutput + j * BH : dInitialSkip.pointer
                    BLAS.gemmPacked(m: b, n: H, k: H, a: dp, lda: H, packed: packedSkipBackward[q].pointer,
                                    beta: 1, c: target, ldc: H)
                }
            }
            hooks.timeStep?()
        }
        if let dInitial {
            dInitial.h.update(from: dh, count: BH)
            if !skipSteps.isEmpty { RowKernels.add(dInitial.h, dInitialSkip.pointer, count: BH) }
        }
        for (q, d) in skipSteps.enumerated() { accumulateSkipGradient(arena.gradients(skipWeights[q]), d: d) }
        finishBackward(dGatesIH: dPre.pointer, dGatesHH: dPre.pointer, dInput: dInput)
    }

    /// dW_d (H, H) += Σ_t δa_tᵀ h_{src(t)}: one GEMM over the steps whose source is inside the window
    /// (a contiguous block of δa rows against a contiguous block of state slots), plus one (B-row)
    /// GEMM of the summed δa of the steps that read the initial state. With reduction groups (the
    /// language model) the sum is still one GEMM; skip connections are refused there.
    private func accumulateSkipGradient(_ gradient: UnsafeMutablePointer<Float>, d: Int) {
        let T = steps, B = batch, H = hiddenSize, BH = B * H
        let inside = max(T - d + 1, 0)
        // Forward: steps [d−1, T) read slots [0, T−d+1); reverse: steps [0, T−d+1) read slots [d, T].
        let firstStep = direction == .forward ? d - 1 : 0
        let firstSlot = direction == .forward ? 0 : d
        if inside > 0 {
            BLAS.sgemm(transA: true, m: H, n: H, k: inside * B, a: dPre.pointer + firstStep * BH, lda: H,
                       b: slot(firstSlot), ldb: H, beta: 1, c: gradient, ldc: H)
        }
        // The other steps read the initial state's slot.
        let clamped = direction == .forward ? 0..<min(d - 1, T) : max(T - d + 1, 0)..<T
        guard !clamped.isEmpty else { return }
        let sum = dPreSum.pointer
        sum.update(repeating: 0, count: BH)
        for t in clamped { RowKernels.add(sum, dPre.pointer + t * BH, count: BH) }
        BLAS.sgemm(transA: true, m: H, n: H, k: B, a: sum, lda: H, b: slot(initialSlot), ldb: H,
                   beta: 1, c: gradient, ldc: H)
    }

    /// BPTT of L + λ·Ω, Ω = Σ_t Σ_rows (‖v_t‖/‖g_t‖ − 1)² with g_t = ∂L/∂h_t (loss only, held
    /// constant) and v_t = (g_t ⊙ φ'(a_t)) W_hh = g_t ∂h_t/∂h_{t−1}. Two adjoints run backwards:
    /// g (the loss's, in `dhRecurrent`, exactly as without the regulariser) and ω = λ·∂Ω/∂h (in
    /// `flow.omega`); the pre-activation gradient used by every weight GEMM is their sum, and W_hh
    /// also gets Ω's direct term Σ (g ⊙ φ')ᵀ·λ∂Ω/∂v, one more GEMM over all T·B rows.
    private func backwardWithFlow(dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>?,
                                  dInitial: LayerState?) {
        precondition(groups == nil, "the flow regulariser does not run with reduction groups")
        precondition(skipSteps.isEmpty, "the flow regulariser does not run with skip connections")
        let H = hiddenSize, BH = batch * H, lambda = flowRegularizer
        if flow == nil {
            let rows = maxSteps * maxBatch * H, one = maxBatch * H
            flow = FlowBuffers(pL: FloatBuffer(count: rows), r: FloatBuffer(count: rows), omega: FloatBuffer(count: one),
                               s: FloatBuffer(count: one), q: FloatBuffer(count: one))
        }
        guard let flow else { return }
        let dh = dhRecurrent.pointer, omega = flow.omega.pointer, s = flow.s.pointer, q = flow.q.pointer
        omega.update(repeating: 0, count: BH)   // Ω does not depend on the final state
        var sum = 0.0
        for step in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: step), b = active(t)
            let g = dOutput + t * BH             // becomes g_t = ∂L/∂h_t
            RowKernels.add(g, dh, count: BH)
            let h = UnsafePointer(slot(outputSlot(t)))
            let pL = flow.pL.pointer + t * BH, r = flow.r.pointer + t * BH, dp = dPre.pointer + t * BH
            ElmanKernels.backward(dPre: pL, dh: g, h: h, count: b * H, relu: relu)
            recurrentBackward(dh, dGates: pL, beta: 0, rows: b)   // v_t: also the recurrent part of g_{t−1}
            // r = λ·∂Ω_t/∂v = λ·2(n − 1)/(‖g‖‖v‖)·v, n = ‖v‖/‖g‖. A g that has vanished to numerical
            // zero (‖g‖ < `flowGradientFloor`, common for early steps of a long tanh sequence) makes the
            // ratio undefined and 1/‖g‖ overflow Float: such a term is left out, like a zero g's.
            for i in 0..<b {
                var gg = 0.0, vv = 0.0
                for j in 0..<H {
                    gg += Double(g[i * H + j]) * Double(g[i * H + j])
                    vv += Double(dh[i * H + j]) * Double(dh[i * H + j])
                }
                let gn = gg.squareRoot(), vn = vv.squareRoot()
                guard gn >= Self.flowGradientFloor else { (r + i * H).update(repeating: 0, count: H); continue }
                let n = vn / gn
                sum += (n - 1) * (n - 1)
                let coefficient = vn > 0 ? Float(Double(lambda) * 2 * (n - 1) / (gn * vn)) : 0
                for j in 0..<H { r[i * H + j] = coefficient * dh[i * H + j] }
            }
            (r + b * H).update(repeating: 0, count: (batch - b) * H)
            // s = r·W_hhᵀ (W_hh r per row); q = ω ⊙ φ' + s ⊙ g ⊙ φ'': λ·∂Ω/∂a_t, through the later
            // steps (ω) and directly.
            recurrentProduct(s, hPrev: r, beta: 0, rows: b)
            for e in 0..<(b * H) {
                let y = h[e]
                let first: Float, second: Float
                if relu { first = y > 0 ? 1 : 0; second = 0 } else { first = 1 - y * y; second = -2 * y * first }
                q[e] = omega[e] * first + s[e] * g[e] * second
                dp[e] = pL[e] + q[e]
            }
            (pL + b * H).update(repeating: 0, count: (batch - b) * H)
            recurrentBackward(omega, dGates: q, beta: 0, rows: b)   // inactive rows keep ω unchanged
            passInactive(dGates: dp, width: H, dhPrev: dh, dOut: g, active: b)
            hooks.timeStep?()
        }
        flowSum = sum
        if let dInitial {
            dInitial.h.update(from: dh, count: BH)
            RowKernels.add(dInitial.h, omega, count: BH)
        }
        // Ω's direct dependence on W_hh through v: dW_hh += Σ_rows (g ⊙ φ')ᵀ·r, before the hooks
        // of `finishBackward` hand W_hh's gradient to communication.
        BLAS.sgemm(transA: true, m: H, n: H, k: steps * batch, a: flow.pL.pointer, lda: H, b: flow.r.pointer, ldb: H,
                   beta: 1, c: arena.gradients(weightHH), ldc: H)
        finishBackward(dGatesIH: dPre.pointer, dGatesHH: dPre.pointer, dInput: dInput)
    }
}
