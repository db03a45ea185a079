// Elman RNN layer over a window, h_t = φ(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh) with φ = tanh or
// relu: forward and backward (BPTT). The pre-activations are built directly in the output slots
// of `hs`, so the cache is just the outputs.
import UnrollKernels

final class ElmanLayer: RecurrentLayerBase, RecurrentLayer {
    /// (T, B, H) pre-activation gradients.
    let dPre: FloatBuffer

    override init(cell: CellKind, index: Int, inputSize: Int, hiddenSize: Int, direction: TimeDirection,
                  arena: ParameterArena, maxSteps: Int, maxBatch: Int, suffix: String, prefix: String) {
        dPre = FloatBuffer(count: maxSteps * maxBatch * hiddenSize)
        super.init(cell: cell, index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction,
                   arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix)
    }

    private var relu: Bool { cell == .rnnRelu }

    func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?, initial: LayerState,
                 final: LayerState) {
        begin(input: input, steps: steps, batch: batch, lengths: lengths)
        let BH = batch * hiddenSize
        projectInput(output, includeRecurrentBias: true)   // output slots hold pre-activations
        slot(initialSlot).update(from: initial.h, count: BH)
        for s in 0..<steps {
            let t = time(ofStep: s), b = active(t)
            let h = slot(outputSlot(t)), previous = slot(previousSlot(t))
            recurrentProduct(h, hPrev: previous, beta: 1, rows: b)
            ElmanKernels.forward(h: h, count: b * hiddenSize, relu: relu)
            carryInactive(h, from: previous, active: b)   // replaces the inactive rows' pre-activations
        }
        final.h.update(from: slot(finalSlot), count: BH)
    }

    func backward(dOutput: UnsafeMutablePointer<Float>, dFinal: LayerState?,
                           dInput: UnsafeMutablePointer<Float>?, dInitial: LayerState?) {
        packBackward()
        let BH = batch * hiddenSize
        let dh = dhRecurrent.pointer
        if let dFinal { dh.update(from: dFinal.h, count: BH) } else { dh.update(repeating: 0, count: BH) }
        for s in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: s), b = active(t)
            let dOut = dOutput + t * BH
            RowKernels.add(dOut, dh, count: BH)
            let dp = dPre.pointer + t * BH
            ElmanKernels.backward(dPre: dp, dh: dOut, h: slot(outputSlot(t)), count: b * hiddenSize, relu: relu)
            recurrentBackward(dh, dGates: dp, beta: 0, rows: b)
            passInactive(dGates: dp, width: hiddenSize, dhPrev: dh, dOut: dOut, active: b)
            hooks.timeStep?()
        }
        if let dInitial { dInitial.h.update(from: dh, count: BH) }
        finishBackward(dGatesIH: dPre.pointer, dGatesHH: dPre.pointer, dInput: dInput)
    }
}
