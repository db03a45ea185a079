// Clockwork RNN layer over a window (Koutník, Greff, Gomez & Schmidhuber 2014): the H tanh units
// form M modules of m = H/M units with strictly increasing periods T_0 < T_1 < … (1, 2, 4, … by
// default). At step t module i updates, h_t[i] = tanh(W_ih[i] x_t + b_ih[i] + b_hh[i] +
// Σ_{j ≥ i} W_hh[i, j] h_{t−1}[j]), only when t mod T_i = 0 and otherwise keeps h_{t−1}[i]. W_hh is
// block upper triangular (module i reads modules of period ≥ T_i): the blocks below the diagonal
// are never read (so the function does not depend on them), their gradient is zeroed and
// `Initializer` starts them at 0, so they stay exactly zero in the usual flat arena. Per step only
// the due modules are computed: one GEMM per due module over its m rows of W_hh and the columns of
// the modules it reads, (b, H − i·m)·(H − i·m, m) (with power-of-two periods the due modules are a
// prefix, about 2 of M on average). Time t counts from the window's first step (every sequence
// starts its clock at 0); forward direction only.
// Derivation: Sources/UnrollKernels/Derivations.md.
import UnrollKernels

final class ClockworkLayer: RecurrentLayerBase, RecurrentLayer {
    /// Module periods, strictly increasing.
    let periods: [Int]
    /// Units per module.
    let moduleSize: Int
    /// (T, B, H) pre-activations (input projection plus the recurrent product of active modules).
    let preActivations: FloatBuffer
    /// (T, B, H) pre-activation gradients (zero for modules that did not update).
    let dPre: FloatBuffer

    init(index: Int, inputSize: Int, hiddenSize H: Int, direction: TimeDirection, arena: ParameterArena,
         maxSteps: Int, maxBatch: Int, suffix: String, prefix: String, periods: [Int]) {
        precondition(ClockPeriods.problem(periods, hidden: H) == nil, ClockPeriods.problem(periods, hidden: H) ?? "")
        precondition(direction == .forward, "a clockwork layer runs forward in time only")
        self.periods = periods
        moduleSize = H / periods.count
        preActivations = FloatBuffer(count: maxSteps * maxBatch * H)
        dPre = FloatBuffer(count: maxSteps * maxBatch * H)
        super.init(cell: .clockwork, index: index, inputSize: inputSize, hiddenSize: H, direction: direction,
                   arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix)
    }

    /// The modules that update at step t (t mod T_i = 0).
    func dueModules(at t: Int) -> [Int] { periods.indices.filter { t % periods[$0] == 0 } }

    func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?, initial: LayerState,
                 final: LayerState) {
        begin(input: input, steps: steps, batch: batch, lengths: lengths)
        let H = hiddenSize, BH = batch * H, m = moduleSize
        let w = UnsafePointer(arena.parameters(weightHH))
        projectInput(preActivations.pointer, includeRecurrentBias: true)
        slot(0).update(from: initial.h, count: BH)
        for t in 0..<steps {
            let b = active(t)
            let h = slot(t + 1), previous = slot(t), u = preActivations.pointer + t * BH
            // Every unit keeps its state (padded rows, and modules not due at t) …
            h.update(from: previous, count: BH)
            guard b > 0 else { continue }
            // … except the active rows of the due modules: u[:, c0..<c0+m] += h_{t−1}[:, c0...] · W_hh[c0..<c0+m, c0...]ᵀ
            // (module i reads modules i… only), then tanh.
            for i in dueModules(at: t) {
                let c0 = i * m
                BLAS.sgemm(transB: true, m: b, n: m, k: H - c0, a: previous + c0, lda: H, b: w + c0 * H + c0, ldb: H,
                           beta: 1, c: u + c0, ldc: H)
                for r in 0..<b { Activations.tanh(h + r * H + c0, u + r * H + c0, count: m) }
            }
        }
        final.h.update(from: slot(steps), count: BH)
    }

    func backward(dOutput: UnsafeMutablePointer<Float>, dFinal: LayerState?,
                  dInput: UnsafeMutablePointer<Float>?, dInitial: LayerState?) {
        let H = hiddenSize, BH = batch * H, m = moduleSize
        let w = UnsafePointer(arena.parameters(weightHH))
        let dh = dhRecurrent.pointer
        if let dFinal { dh.update(from: dFinal.h, count: BH) } else { dh.update(repeating: 0, count: BH) }
        for t in stride(from: steps - 1, through: 0, by: -1) {
            let b = active(t)
            let dOut = dOutput + t * BH, dp = dPre.pointer + t * BH, h = slot(t + 1)
            RowKernels.add(dOut, dh, count: BH)   // ∂L/∂h_t: output part + recurrent part
            dp.update(repeating: 0, count: BH)
            // Units that kept their state pass ∂L/∂h_t straight to h_{t−1} …
            dh.update(from: dOut, count: BH)
            if b > 0 {
                let due = dueModules(at: t)
                // … updated ones through tanh and W_hh only.
                for i in due {
                    let c0 = i * m
                    for r in 0..<b {
                        Activations.tanhBackward(dp + r * H + c0, dy: dOut + r * H + c0, y: h + r * H + c0, count: m)
                        (dh + r * H + c0).update(repeating: 0, count: m)
                    }
                }
                for i in due {
                    // dh_{t−1}[:, c0...] += δa[:, c0..<c0+m] · W_hh[c0..<c0+m, c0...]
                    let c0 = i * m
                    BLAS.sgemm(m: b, n: H - c0, k: m, a: dp + c0, lda: H, b: w + c0 * H + c0, ldb: H,
                               beta: 1, c: dh + c0, ldc: H)
                }
            }
            hooks.timeStep?()
        }
        if let dInitial { dInitial.h.update(from: dh, count: BH) }
        finishBackward(dGatesIH: dPre.pointer, dGatesHH: dPre.pointer, dInput: dInput)
    }

    /// Zeroes dW_hh's blocks below the diagonal (module i reading a faster module j < i).
    override func maskRecurrentGradient() {
        ClockPeriods.zeroLowerBlocks(arena.gradients(weightHH), hidden: hiddenSize, modules: periods.count)
    }
}

extension ClockPeriods {
    /// Sets the blocks of an (H, H) matrix below the module diagonal to zero: rows of module i,
    /// columns of modules j < i.
    public static func zeroLowerBlocks(_ matrix: UnsafeMutablePointer<Float>, hidden H: Int, modules M: Int) {
        let m = H / M
        for i in 1..<max(M, 1) {
            for r in (i * m)..<((i + 1) * m) { (matrix + r * H).update(repeating: 0, count: i * m) }
        }
    }
}
