// GRU layer over a window in PyTorch's formulation (gates r,z,n; b_hn stays inside r ⊙ (…)):
// forward and backward (BPTT) with the cache backward needs.
import UnrollKernels

final class GRULayer: RecurrentLayerBase, RecurrentLayer {
    /// (T, B, 3H) input pre-activations, then gate activations [r z n].
    let gates: FloatBuffer
    /// (T, B, H) W_hn h + b_hn per step.
    let hhN: FloatBuffer
    /// (B, 3H) h·W_hhᵀ + b_hh of the current step.
    let recurrentGates: FloatBuffer
    /// (T, B, 3H) gradients w.r.t. the input and the recurrent pre-activations.
    let dGatesIH: FloatBuffer
    let dGatesHH: FloatBuffer

    override init(cell: CellKind, index: Int, inputSize: Int, hiddenSize: Int, direction: TimeDirection,
                  arena: ParameterArena, maxSteps: Int, maxBatch: Int, suffix: String, prefix: String) {
        let rows = maxSteps * maxBatch
        gates = FloatBuffer(count: rows * 3 * hiddenSize)
        hhN = FloatBuffer(count: rows * hiddenSize)
        recurrentGates = FloatBuffer(count: maxBatch * 3 * hiddenSize)
        dGatesIH = FloatBuffer(count: rows * 3 * hiddenSize)
        dGatesHH = FloatBuffer(count: rows * 3 * hiddenSize)
        super.init(cell: cell, index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction,
                   arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix)
    }

    func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?, initial: LayerState,
                 final: LayerState) {
        begin(input: input, steps: steps, batch: batch, lengths: lengths)
        let BH = batch * hiddenSize, BG = batch * gateWidth
        projectInput(gates.pointer, includeRecurrentBias: false)
        slot(initialSlot).update(from: initial.h, count: BH)
        let hh = recurrentGates.pointer
        for s in 0..<steps {
            let t = time(ofStep: s), b = active(t)
            let previous = slot(previousSlot(t)), current = slot(outputSlot(t))
            if b > 0 {
                RowKernels.broadcastRows(hh, bias: arena.parameters(biasHH), rows: b, cols: gateWidth)
                recurrentProduct(hh, hPrev: previous, beta: 1, rows: b)
                GRUKernels.forward(gatesIH: gates.pointer + t * BG, gatesHH: hh, hhN: hhN.pointer + t * BH,
                                   hPrev: previous, h: current, batch: b, hidden: hiddenSize)
            }
            carryInactive(current, from: previous, active: b)
        }
        final.h.update(from: slot(finalSlot), count: BH)
    }

    func backward(dOutput: UnsafeMutablePointer<Float>, dFinal: LayerState?,
                           dInput: UnsafeMutablePointer<Float>?, dInitial: LayerState?) {
        packBackward()
        let BH = batch * hiddenSize, BG = batch * gateWidth
        let dh = dhRecurrent.pointer
        if let dFinal { dh.update(from: dFinal.h, count: BH) } else { dh.update(repeating: 0, count: BH) }
        for s in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: s), b = active(t)
            let dOut = dOutput + t * BH
            RowKernels.add(dOut, dh, count: BH)
            let dIH = dGatesIH.pointer + t * BG, dHH = dGatesHH.pointer + t * BG
            if b > 0 {
                GRUKernels.backward(dGatesIH: dIH, dGatesHH: dHH, dhPrev: dh, dh: dOut,
                                    gates: gates.pointer + t * BG, hhN: hhN.pointer + t * BH,
                                    hPrev: slot(previousSlot(t)), batch: b, hidden: hiddenSize)
            }
            recurrentBackward(dh, dGates: dHH, beta: 1, rows: b)
            passInactive(dGates: dHH, width: gateWidth, dhPrev: dh, dOut: dOut, active: b)
            if b < batch { (dIH + b * gateWidth).update(repeating: 0, count: (batch - b) * gateWidth) }
            hooks.timeStep?()
        }
        if let dInitial { dInitial.h.update(from: dh, count: BH) }
        finishBackward(dGatesIH: dGatesIH.pointer, dGatesHH: dGatesHH.pointer, dInput: dInput)
    }
}
