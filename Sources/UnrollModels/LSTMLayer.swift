// LSTM layer over a window: forward and backward (BPTT) with the cache backward needs.
// Gate order i,f,g,o as PyTorch; both biases are added once in the input projection.
import UnrollKernels

final class LSTMLayer: RecurrentLayerBase, RecurrentLayer {
    /// (T, B, 4H) gate activations [i f g o].
    let gates: FloatBuffer
    /// (T+1, B, H) cell states, same slot order as `hs`.
    let cs: FloatBuffer
    /// (T, B, H) tanh(c_t).
    let tanhC: FloatBuffer
    /// (T, B, 4H) pre-activation gradients.
    let dGates: FloatBuffer
    /// (B, H) ∂L/∂c carried backwards in time.
    let dc: FloatBuffer

    override init(cell: CellKind, index: Int, inputSize: Int, hiddenSize: Int, direction: TimeDirection,
                  arena: ParameterArena, maxSteps: Int, maxBatch: Int, suffix: String, prefix: String) {
        let rows = maxSteps * maxBatch
        gates = FloatBuffer(count: rows * 4 * hiddenSize)
        cs = FloatBuffer(count: (maxSteps + 1) * maxBatch * hiddenSize)
        tanhC = FloatBuffer(count: rows * hiddenSize)
        dGates = FloatBuffer(count: rows * 4 * hiddenSize)
        dc = FloatBuffer(count: maxBatch * hiddenSize)
        super.init(cell: cell, index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction,
                   arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix)
    }

    @inline(__always) private func cellSlot(_ s: Int) -> UnsafeMutablePointer<Float> {
        cs.pointer + s * batch * hiddenSize
    }

    func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?, initial: LayerState,
                 final: LayerState) {
        begin(input: input, steps: steps, batch: batch, lengths: lengths)
        guard let c0 = initial.c, let cT = final.c else { preconditionFailure("LSTM state needs c") }
        let BH = batch * hiddenSize, BG = batch * gateWidth
        projectInput(gates.pointer, includeRecurrentBias: true)
        slot(initialSlot).update(from: initial.h, count: BH)
        cellSlot(initialSlot).update(from: c0, count: BH)
        for s in 0..<steps {
            let t = time(ofStep: s), b = active(t)
            let g = gates.pointer + t * BG
            let previous = previousSlot(t), current = outputSlot(t)
            recurrentProduct(g, hPrev: slot(previous), beta: 1, rows: b)
            if b > 0 {
                LSTMKernels.forward(gates: g, cPrev: cellSlot(previous), c: cellSlot(current),
                                    tanhC: tanhC.pointer + t * BH, h: slot(current), batch: b, hidden: hiddenSize)
            }
            carryInactive(slot(current), from: slot(previous), active: b)
            carryInactive(cellSlot(current), from: cellSlot(previous), active: b)
        }
        final.h.update(from: slot(finalSlot), count: BH)
        cT.update(from: cellSlot(finalSlot), count: BH)
    }

    func backward(dOutput: UnsafeMutablePointer<Float>, dFinal: LayerState?,
                           dInput: UnsafeMutablePointer<Float>?, dInitial: LayerState?) {
        packBackward()
        let BH = batch * hiddenSize, BG = batch * gateWidth
        let dh = dhRecurrent.pointer
        if let dFinal { dh.update(from: dFinal.h, count: BH) } else { dh.update(repeating: 0, count: BH) }
        if let dcT = dFinal?.c { dc.pointer.update(from: dcT, count: BH) } else { dc.zero() }
        for s in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: s), b = active(t)
            let dOut = dOutput + t * BH
            RowKernels.add(dOut, dh, count: BH)
            let dg = dGates.pointer + t * BG
            if b > 0 {
                // Inactive rows keep their dc: a padded step passes ∂L/∂c through unchanged.
                LSTMKernels.backward(dGates: dg, dc: dc.pointer, dh: dOut, gates: gates.pointer + t * BG,
                                     cPrev: cellSlot(previousSlot(t)), tanhC: tanhC.pointer + t * BH,
                                     batch: b, hidden: hiddenSize)
            }
            recurrentBackward(dh, dGates: dg, beta: 0, rows: b)
            passInactive(dGates: dg, width: gateWidth, dhPrev: dh, dOut: dOut, active: b)
            hooks.timeStep?()
        }
        if let dInitial {
            dInitial.h.update(from: dh, count: BH)
            dInitial.c?.update(from: dc.pointer, count: BH)
        }
        finishBackward(dGatesIH: dGates.pointer, dGatesHH: dGates.pointer, dInput: dInput)
    }
}
