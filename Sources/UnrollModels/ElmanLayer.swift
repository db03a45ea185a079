// Elman RNN layer over a window, h_t = φ(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh + Σ_d W_d h_{t−d})
// with φ = tanh or relu: forward and backward (BPTT). The pre-activations are built directly in the
// output slots of `hs`, so the cache is just the outputs. The Σ_d terms are the optional skip
// connections through time (Deep Learning §10.7.2), one H×H matrix `rnn.weight_hh_skip{d}_l{k}`
// per d; a reversed layer reads h_{t+d}. States before the window (t − d < 0) are the initial
// state, as if the layer had held it since long before: the same rule that makes a padded step
// the identity, so a padded row reads exactly what it would read run alone. Derivation:
// Sources/UnrollKernels/Derivations.md.
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
}
