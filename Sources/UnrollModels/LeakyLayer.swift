// Leaky-integration layer over a window (Deep Learning §10.7.3; Jaeger et al. 2007; Mozer 1992):
// h_t = (1 − α) ⊙ h_{t−1} + α ⊙ tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), forward and backward
// (BPTT). α (H) is fixed per unit, or learned as α = σ(a) with a = `rnn.leak_logit_l{k}` in the
// arena. Units with small α keep their state for about 1/α steps: a log-spaced range of α gives
// the layer several time scales. GEMMs as in every cell (RecurrentLayerBase); the pointwise step is
// CKernels' uk_leaky_forward/backward. Derivation: Sources/UnrollKernels/Derivations.md.
import UnrollKernels

final class LeakyLayer: RecurrentLayerBase, RecurrentLayer {
    let leak: LeakRate
    /// The learned logits a (H), when α is learned.
    let leakLogit: ParameterView?
    /// (H) α of the current window: fixed at construction, or σ(a) at each forward.
    let alpha: FloatBuffer
    /// (T, B, H) pre-activations, then u = tanh(pre) (kept for backward).
    let activations: FloatBuffer
    /// (T, B, H) pre-activation gradients.
    let dPre: FloatBuffer
    /// (H) σ'(a) = α(1 − α) of the current window (learned rates; 1 for fixed ones).
    let alphaSlope: FloatBuffer
    /// (T, B, H) per-row ∂L/∂a, summed over rows after the time loop (learned rates); with fixed
    /// rates (B, H), overwritten every step and never read.
    let dLogitRows: FloatBuffer

    /// `cell` is `.leaky`, or `.esn` for an echo-state reservoir (the same layer with fixed weights).
    init(cell: CellKind = .leaky, index: Int, inputSize: Int, hiddenSize H: Int, direction: TimeDirection,
         arena: ParameterArena, maxSteps: Int, maxBatch: Int, suffix: String, leak: LeakRate) {
        precondition(leak.problem() == nil, leak.problem() ?? "")
        self.leak = leak
        leakLogit = leak.isLearned ? arena.view("rnn.leak_logit_l\(index)\(suffix)") : nil
        alpha = FloatBuffer(leak.rates(hidden: H))
        let rows = maxSteps * maxBatch
        activations = FloatBuffer(count: rows * H)
        dPre = FloatBuffer(count: rows * H)
        alphaSlope = FloatBuffer([Float](repeating: 1, count: H))
        dLogitRows = FloatBuffer(count: (leak.isLearned ? rows : maxBatch) * H)
        super.init(cell: cell, index: index, inputSize: inputSize, hiddenSize: H, direction: direction,
                   arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix)
    }

    func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?, initial: LayerState,
                 final: LayerState) {
        begin(input: input, steps: steps, batch: batch, lengths: lengths)
        let H = hiddenSize, BH = batch * H
        if let leakLogit {
            Activations.sigmoid(alpha.pointer, arena.parameters(leakLogit), count: H)
            for j in 0..<H { alphaSlope[j] = alpha[j] * (1 - alpha[j]) }
        }
        projectInput(activations.pointer, includeRecurrentBias: true)
        slot(initialSlot).update(from: initial.h, count: BH)
        for s in 0..<steps {
            let t = time(ofStep: s), b = active(t)
            let u = activations.pointer + t * BH
            let h = slot(outputSlot(t)), previous = slot(previousSlot(t))
            if b > 0 {
                recurrentProduct(u, hPrev: previous, beta: 1, rows: b)
                LeakyKernels.forward(u: u, hPrev: previous, alpha: alpha.pointer, h: h, batch: b, hidden: H)
            }
            carryInactive(h, from: previous, active: b)
        }
        final.h.update(from: slot(finalSlot), count: BH)
    }

    func backward(dOutput: UnsafeMutablePointer<Float>, dFinal: LayerState?,
                  dInput: UnsafeMutablePointer<Float>?, dInitial: LayerState?) {
        packBackward()
        let H = hiddenSize, BH = batch * H
        let dh = dhRecurrent.pointer
        if let dFinal { dh.update(from: dFinal.h, count: BH) } else { dh.update(repeating: 0, count: BH) }
        let learned = leakLogit != nil
        for s in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: s), b = active(t)
            let dOut = dOutput + t * BH
            RowKernels.add(dOut, dh, count: BH)   // ∂L/∂h_t: output part + recurrent part
            let dp = dPre.pointer + t * BH
            let da = dLogitRows.pointer + (learned ? t * BH : 0)
            if b > 0 {
                LeakyKernels.backward(dPre: dp, dhPrev: dh, dRate: da,
                                      dh: dOut, u: activations.pointer + t * BH, hPrev: slot(previousSlot(t)),
                                      alpha: alpha.pointer, rateScale: alphaSlope.pointer, batch: b, hidden: H)
                recurrentBackward(dh, dGates: dp, beta: 1, rows: b)
            }
            passInactive(dGates: dp, width: H, dhPrev: dh, dOut: dOut, active: b)
            if learned && b < batch { (da + b * H).update(repeating: 0, count: (batch - b) * H) }
            hooks.timeStep?()
        }
        if let dInitial { dInitial.h.update(from: dh, count: BH) }
        if let leakLogit {
            // ∂L/∂a: the rows already carry the factor σ'(a), so the sum (per reduction group when
            // set, as the biases) is the gradient; a factor after the sum would make the result
            // depend on how the rows are split over ranks.
            accumulateColumnSums(arena.gradients(leakLogit), rows: dLogitRows.pointer, width: H)
        }
        finishBackward(dGatesIH: dPre.pointer, dGatesHH: dPre.pointer, dInput: dInput)
    }
}
