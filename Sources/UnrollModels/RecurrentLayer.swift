// One recurrent layer run over a window of T steps for B streams, forward next to backward (BPTT,
// Deep Learning §10.2.2). Shared by all cells: the input projection of all T·B rows is one GEMM
// before the time loop, the weight gradients are one GEMM each over all T·B rows after it; only
// h·W_hhᵀ (forward) and dGates·W_hh (backward) run per step. Subclasses supply the cell's
// pointwise step. Time can run forward or reversed (the backward half of a bidirectional layer).
//
// Hidden states live in `hs`, (T+1, B, H) in time order with one extra slot for the initial state:
// forward direction: slot 0 = initial, slot t+1 = h_t; reversed: slot t = h_t, slot T = initial.
// So the T outputs and the T "previous states" are both contiguous (T·B, H) blocks, which is what
// lets dW_hh be one GEMM.
//
// Variable lengths (packed-sequence semantics, PyTorch `pack_padded_sequence`): with the B rows
// sorted by length, non-increasing, the rows active at time t are the prefix [0, b_t),
// b_t = #{i : length_i > t}, in both directions. A step runs the recurrent product and the cell on
// those b_t rows only and copies rows [b_t, B) of the previous slot into the current one, so a
// padded step never changes a state: the final slot holds each row's state after its last valid
// step (forward) or after t = 0 (reverse). Backward zeroes the gate gradients of inactive rows
// (the all-rows GEMMs then ignore them) and passes their dh (and dc) straight to the previous step.
import UnrollKernels

/// Direction in which a layer consumes its input sequence.
public enum TimeDirection: Sendable {
    case forward
    case reverse
}

/// Pointers to one layer's state for a batch: h (B, H) and, for LSTM, c (B, H).
public struct LayerState {
    public var h: UnsafeMutablePointer<Float>
    public var c: UnsafeMutablePointer<Float>?
    public init(h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>?) {
        self.h = h
        self.c = c
    }
}

/// A recurrent layer over a window: each cell kind (LSTMLayer, GRULayer, ElmanLayer) implements
/// forward and backward on top of the shared storage and GEMMs of `RecurrentLayerBase`.
public protocol RecurrentLayer: RecurrentLayerBase {
    /// Runs the layer over a window.
    /// - input: (T, B, E), kept by pointer until `backward`. Rows at padded steps (t ≥ length) are
    ///   never read by the cell; they must be finite (they meet zero gradients in the weight GEMM).
    /// - lengths: nil = every row runs all T steps; otherwise B valid step counts, non-increasing,
    ///   each in 0...T (see the file header).
    /// - initial: state before the first processed step; final: receives each row's state after
    ///   its last processed step (may alias `initial`).
    func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?, initial: LayerState,
                 final: LayerState)

    /// Backpropagates through the window of the last forward, accumulating (+=) parameter gradients.
    /// - dOutput: (T, B, H) ∂L/∂outputs; consumed (overwritten).
    /// - dFinal: ∂L/∂(final state), or nil for zero.
    /// - dInput: receives (T, B, E) ∂L/∂input (overwritten), or nil if not needed.
    /// - dInitial: receives ∂L/∂(initial state), or nil if not needed.
    func backward(dOutput: UnsafeMutablePointer<Float>, dFinal: LayerState?,
                  dInput: UnsafeMutablePointer<Float>?, dInitial: LayerState?)
}

extension RecurrentLayer {
    /// Runs the layer over a window in which every row is valid for all T steps.
    public func forward(input: UnsafePointer<Float>, steps: Int, batch: Int, initial: LayerState, final: LayerState) {
        forward(input: input, steps: steps, batch: batch, lengths: nil, initial: initial, final: final)
    }
}

/// Callbacks a layer makes during its backward so that gradient communication can overlap it.
public struct BackwardHooks {
    /// Called with an arena offset once every gradient from that offset to the end of the arena is
    /// final (given that the layers above this one have finished): after `weight_hh`'s gradient
    /// (with the biases behind it) and again after `weight_ih`'s, before the input gradient GEMM.
    public var gradientsReady: ((_ offset: Int) -> Void)?
    /// Called after every time step of backward: a chance to drive outstanding communication.
    public var timeStep: (() -> Void)?

    public init(gradientsReady: ((_ offset: Int) -> Void)? = nil, timeStep: (() -> Void)? = nil) {
        self.gradientsReady = gradientsReady
        self.timeStep = timeStep
    }
}

/// Parameters (views into a `ParameterArena`), the workspace backward needs from the last
/// forward, and the GEMMs every cell shares.
public class RecurrentLayerBase {
    public let cell: CellKind
    public let inputSize: Int
    public let hiddenSize: Int
    public let direction: TimeDirection
    public let maxSteps: Int
    public let maxBatch: Int
    let arena: ParameterArena
    let weightIH: ParameterView, weightHH: ParameterView, biasIH: ParameterView, biasHH: ParameterView

    /// (T+1, B, H) hidden states, see the file header for slot order.
    let hs: FloatBuffer
    /// (B, H) recurrent gradient carried backwards in time.
    let dhRecurrent: FloatBuffer
    /// W_hh packed once per window for the per-step products: as W_hhᵀ (H × G·H) for forward, as
    /// W_hh (G·H × H) for backward.
    let packedForward: FloatBuffer
    let packedBackward: FloatBuffer
    /// (G·H) column sums shared by both bias gradients when they are equal.
    let biasGradientScratch: FloatBuffer
    /// (T) active rows b_t per time step of the last forward, when it had lengths.
    let activeRows: AlignedBuffer<Int>
    /// Window of the last forward.
    public private(set) var steps = 0
    public private(set) var batch = 0
    /// Whether the last forward had lengths (otherwise every row is active at every step).
    private(set) var hasLengths = false
    /// Input of the last forward, (T, B, E); must stay valid until backward.
    var input: UnsafePointer<Float>?
    /// Set by the model for the duration of one backward; see `BackwardHooks`.
    var hooks = BackwardHooks()
    /// Fixed reduction groups (see ReductionGroups): when set, the row products use the M-stable
    /// packed kernel and the weight and bias gradients are summed per group by the halving tree,
    /// so the layer's results do not depend on how many streams share the batch. Nil: one GEMM
    /// over all T·B rows each (the sequence model).
    public private(set) var groups: ReductionGroups?
    /// W_ih packed as W_ihᵀ (E × G·H) for the input projection and as W_ih (G·H × E) for the input
    /// gradient; only with `groups`.
    private var packedInputForward: FloatBuffer?
    private var packedInputBackward: FloatBuffer?

    var gateWidth: Int { cell.gateCount * hiddenSize }

    /// Arena offset of this layer's first parameter (its weight_ih).
    public var firstParameterOffset: Int { weightIH.offset }

    /// Creates a layer whose parameters are the `{prefix}rnn.*_l{index}{suffix}` views of `arena`
    /// (prefix e.g. `encoder.` in a sequence-to-sequence model).
    public init(cell: CellKind, index: Int, inputSize: Int, hiddenSize: Int, direction: TimeDirection = .forward,
                arena: ParameterArena, maxSteps: Int, maxBatch: Int, suffix: String = "", prefix: String = "") {
        self.cell = cell
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.direction = direction
        self.maxSteps = maxSteps
        self.maxBatch = maxBatch
        self.arena = arena
        weightIH = arena.view("\(prefix)rnn.weight_ih_l\(index)\(suffix)")
        weightHH = arena.view("\(prefix)rnn.weight_hh_l\(index)\(suffix)")
        biasIH = arena.view("\(prefix)rnn.bias_ih_l\(index)\(suffix)")
        biasHH = arena.view("\(prefix)rnn.bias_hh_l\(index)\(suffix)")
        precondition(weightIH.shape == [cell.gateCount * hiddenSize, inputSize], "weight_ih shape mismatch")
        hs = FloatBuffer(count: (maxSteps + 1) * maxBatch * hiddenSize)
        dhRecurrent = FloatBuffer(count: maxBatch * hiddenSize)
        let G = cell.gateCount * hiddenSize
        packedForward = FloatBuffer(count: BLAS.packedCount(k: hiddenSize, n: G))
        packedBackward = FloatBuffer(count: BLAS.packedCount(k: G, n: hiddenSize))
        biasGradientScratch = FloatBuffer(count: G)
        activeRows = AlignedBuffer<Int>(count: maxSteps)
    }

    /// Sums this layer's row gradients by `groups` from now on (see `groups`).
    public func useReductionGroups(_ groups: ReductionGroups) {
        self.groups = groups
        let G = cell.gateCount * hiddenSize
        packedInputForward = FloatBuffer(count: BLAS.packedCount(k: inputSize, n: G))
        packedInputBackward = FloatBuffer(count: BLAS.packedCount(k: G, n: inputSize))
    }

    // MARK: slot arithmetic (see file header)

    @inline(__always) func outputSlot(_ t: Int) -> Int { direction == .forward ? t + 1 : t }
    @inline(__always) func previousSlot(_ t: Int) -> Int { direction == .forward ? t : t + 1 }
    @inline(__always) var initialSlot: Int { direction == .forward ? 0 : steps }
    @inline(__always) var finalSlot: Int { direction == .forward ? steps : 0 }
    /// Time index of the s-th processed step.
    @inline(__always) func time(ofStep s: Int) -> Int { direction == .forward ? s : steps - 1 - s }

    /// The (T, B, H) outputs of the last forward, in time order.
    public var output: UnsafeMutablePointer<Float> {
        hs.pointer + (direction == .forward ? 1 : 0) * batch * hiddenSize
    }

    /// The (T, B, H) states preceding each output, in time order.
    var previousStates: UnsafeMutablePointer<Float> {
        hs.pointer + (direction == .forward ? 0 : 1) * batch * hiddenSize
    }

    @inline(__always) func slot(_ s: Int) -> UnsafeMutablePointer<Float> { hs.pointer + s * batch * hiddenSize }

    // MARK: variable lengths (see file header)

    /// b_t: rows [0, b_t) are active at time t.
    @inline(__always) func active(_ t: Int) -> Int { hasLengths ? activeRows[t] : batch }

    /// Forward, after the cell ran on the active rows of time t: rows [b, B) of `current` (B, H)
    /// take their values from `previous`, so a padded step leaves the state unchanged.
    @inline(__always)
    func carryInactive(_ current: UnsafeMutablePointer<Float>, from previous: UnsafePointer<Float>, active b: Int) {
        guard b < batch else { return }
        let H = hiddenSize
        (current + b * H).update(from: previous + b * H, count: (batch - b) * H)
    }

    /// Backward, after the cell ran on the active rows of time t: inactive rows get zero gate
    /// gradients (dGates (B, width)) and pass ∂L/∂h_t (dOut, recurrent part included) on to
    /// h_{t−1} unchanged (dhPrev (B, H)).
    @inline(__always)
    func passInactive(dGates: UnsafeMutablePointer<Float>, width: Int, dhPrev: UnsafeMutablePointer<Float>,
                      dOut: UnsafePointer<Float>, active b: Int) {
        guard b < batch else { return }
        let H = hiddenSize
        (dGates + b * width).update(repeating: 0, count: (batch - b) * width)
        (dhPrev + b * H).update(from: dOut + b * H, count: (batch - b) * H)
    }

    // MARK: shared GEMMs

    /// gates (T·B, G·H) = input·W_ihᵀ + b_ih (+ b_hh when the cell adds both biases up front).
    func projectInput(_ gates: UnsafeMutablePointer<Float>, includeRecurrentBias: Bool) {
        guard let input else { return }
        let rows = steps * batch, G = gateWidth
        RowKernels.broadcastRows(gates, bias: arena.parameters(biasIH),
                                 bias2: includeRecurrentBias ? arena.parameters(biasHH) : nil, rows: rows, cols: G)
        if let packed = packedInputForward {
            BLAS.pack(packed.pointer, b: arena.parameters(weightIH), k: inputSize, n: G, ldb: inputSize, transB: true)
            BLAS.gemmPackedRows(m: rows, n: G, k: inputSize, a: input, lda: inputSize, packed: packed.pointer,
                                beta: 1, c: gates, ldc: G)
            return
        }
        BLAS.sgemm(transB: true, m: rows, n: G, k: inputSize, a: input, lda: inputSize,
                   b: arena.parameters(weightIH), ldb: inputSize, beta: 1, c: gates, ldc: G)
    }

    /// Packs W_hhᵀ for this window's forward steps.
    func packForward() {
        BLAS.pack(packedForward.pointer, b: arena.parameters(weightHH), k: hiddenSize, n: gateWidth,
                  ldb: hiddenSize, transB: true)
    }

    /// Packs W_hh for this window's backward steps.
    func packBackward() {
        BLAS.pack(packedBackward.pointer, b: arena.parameters(weightHH), k: gateWidth, n: hiddenSize,
                  ldb: hiddenSize, transB: false)
    }

    /// c (m, G·H) = beta·c + hPrev (m, H) · W_hhᵀ — the one product that must run per step, over the
    /// m active rows.
    @inline(__always)
    func recurrentProduct(_ c: UnsafeMutablePointer<Float>, hPrev: UnsafePointer<Float>, beta: Float, rows m: Int) {
        guard m > 0 else { return }
        BLAS.gemmPacked(m: m, n: gateWidth, k: hiddenSize, a: hPrev, lda: hiddenSize,
                        packed: packedForward.pointer, beta: beta, c: c, ldc: gateWidth)
    }

    /// dhPrev (m, H) = beta·dhPrev + dGates (m, G·H) · W_hh over the m active rows.
    @inline(__always)
    func recurrentBackward(_ dhPrev: UnsafeMutablePointer<Float>, dGates: UnsafePointer<Float>, beta: Float,
                           rows m: Int) {
        guard m > 0 else { return }
        BLAS.gemmPacked(m: m, n: hiddenSize, k: gateWidth, a: dGates, lda: gateWidth,
                        packed: packedBackward.pointer, beta: beta, c: dhPrev, ldc: hiddenSize)
    }

    /// After the time loop: bias gradients, dW_hh += dGatesHHᵀ·Hprev, dW_ih += dGatesIHᵀ·X and
    /// dInput = dGatesIH·W_ih — each one GEMM over all T·B rows. The order follows the arena layout
    /// backwards (W_ih, W_hh, b_ih, b_hh), so that `hooks.gradientsReady` can hand the W_hh part and
    /// then the W_ih part to communication while the remaining GEMMs still run.
    func finishBackward(dGatesIH: UnsafePointer<Float>, dGatesHH: UnsafePointer<Float>,
                        dInput: UnsafeMutablePointer<Float>?) {
        guard let input else { return }
        if let groups {
            finishBackwardGrouped(groups, input: input, dGatesIH: dGatesIH, dGatesHH: dGatesHH, dInput: dInput)
            return
        }
        let rows = steps * batch, G = gateWidth, H = hiddenSize, E = inputSize
        if dGatesIH == dGatesHH {
            // LSTM and Elman: both biases get the same gradient; sum the (T·B, G) block once.
            let sums = biasGradientScratch.pointer
            sums.update(repeating: 0, count: G)
            RowKernels.accumulateColumnSums(sums, dGatesIH, rows: rows, cols: G)
            RowKernels.add(arena.gradients(biasIH), sums, count: G)
            RowKernels.add(arena.gradients(biasHH), sums, count: G)
        } else {
            RowKernels.accumulateColumnSums(arena.gradients(biasIH), dGatesIH, rows: rows, cols: G)
            RowKernels.accumulateColumnSums(arena.gradients(biasHH), dGatesHH, rows: rows, cols: G)
        }
        BLAS.sgemm(transA: true, m: G, n: H, k: rows, a: dGatesHH, lda: G, b: previousStates, ldb: H,
                   beta: 1, c: arena.gradients(weightHH), ldc: H)
        maskRecurrentGradient()
        hooks.gradientsReady?(weightHH.offset)
        BLAS.sgemm(transA: true, m: G, n: E, k: rows, a: dGatesIH, lda: G, b: input, ldb: E,
                   beta: 1, c: arena.gradients(weightIH), ldc: E)
        hooks.gradientsReady?(weightIH.offset)
        if let dInput {
            BLAS.sgemm(m: rows, n: E, k: G, a: dGatesIH, lda: G, b: arena.parameters(weightIH), ldb: E,
                       beta: 0, c: dInput, ldc: E)
        }
    }

    /// `finishBackward` with fixed reduction groups: every gradient is the halving-tree sum of the
    /// groups' contributions (weights: GroupedGEMM over the rows in place); the input gradient is
    /// a row product (M-stable kernel).
    private func finishBackwardGrouped(_ groups: ReductionGroups, input: UnsafePointer<Float>,
                                       dGatesIH: UnsafePointer<Float>, dGatesHH: UnsafePointer<Float>,
                                       dInput: UnsafeMutablePointer<Float>?) {
        let T = steps, B = batch, g = groups.size, G = gateWidth, H = hiddenSize, E = inputSize
        let K = groups.groups(inBatch: B)
        func columnSums(_ dGates: UnsafePointer<Float>, into result: UnsafeMutablePointer<Float>) {
            groups.sum(groups: K, into: result, count: G) { q, out in
                out.update(repeating: 0, count: G)
                for t in 0..<T { RowKernels.accumulateColumnSums(out, dGates + (t * B + q * g) * G, rows: g, cols: G) }
            }
        }
        if dGatesIH == dGatesHH {
            let sums = biasGradientScratch.pointer
            sums.update(repeating: 0, count: G)
            columnSums(dGatesIH, into: sums)
            RowKernels.add(arena.gradients(biasIH), sums, count: G)
            RowKernels.add(arena.gradients(biasHH), sums, count: G)
        } else {
            columnSums(dGatesIH, into: arena.gradients(biasIH))
            columnSums(dGatesHH, into: arena.gradients(biasHH))
        }
        let layout = GroupedGEMM.RowLayout.timeMajor(batch: B, groupSize: g)
        // LSTM and Elman: both weight gradients read the same ∂L/∂gates, packed once.
        let packedHH = groups.packRows(m: G, steps: T, groups: K, layout: layout, a: dGatesHH, lda: G)
        groups.accumulateProducts(packedHH, n: H, b: previousStates, ldb: H, c: arena.gradients(weightHH), ldc: H)
        maskRecurrentGradient()
        hooks.gradientsReady?(weightHH.offset)
        let packedIH = dGatesIH == dGatesHH
            ? packedHH : groups.packRows(m: G, steps: T, groups: K, layout: layout, a: dGatesIH, lda: G)
        groups.accumulateProducts(packedIH, n: E, b: input, ldb: E, c: arena.gradients(weightIH), ldc: E)
        hooks.gradientsReady?(weightIH.offset)
        if let dInput, let packed = packedInputBackward {
            BLAS.pack(packed.pointer, b: arena.parameters(weightIH), k: G, n: E, ldb: E, transB: false)
            BLAS.gemmPackedRows(m: T * B, n: E, k: G, a: dGatesIH, lda: G, packed: packed.pointer, beta: 0,
                                c: dInput, ldc: E)
        }
    }

    /// Called by `finishBackward` right after dW_hh is accumulated, before it is reported ready:
    /// a cell whose W_hh has structural zeros (clockwork) zeroes their gradient here.
    func maskRecurrentGradient() {}

    /// result (width) += the column sums of `rows` (T·B, width) of the last window: one pass over
    /// all rows, or per reduction group added by the halving tree (as the bias gradients).
    func accumulateColumnSums(_ result: UnsafeMutablePointer<Float>, rows: UnsafePointer<Float>, width: Int) {
        guard let groups else {
            RowKernels.accumulateColumnSums(result, rows, rows: steps * batch, cols: width)
            return
        }
        let T = steps, B = batch, g = groups.size
        groups.sum(groups: groups.groups(inBatch: B), into: result, count: width) { q, out in
            out.update(repeating: 0, count: width)
            for t in 0..<T { RowKernels.accumulateColumnSums(out, rows + (t * B + q * g) * width, rows: g, cols: width) }
        }
    }

    func begin(input: UnsafePointer<Float>, steps: Int, batch: Int, lengths: [Int]?) {
        precondition(steps >= 1 && steps <= maxSteps, "window of \(steps) steps outside 1...\(maxSteps)")
        precondition(batch >= 1 && batch <= maxBatch, "batch of \(batch) outside 1...\(maxBatch)")
        self.input = input
        self.steps = steps
        self.batch = batch
        hasLengths = false
        if let lengths {
            precondition(lengths.count == batch, "\(lengths.count) lengths for a batch of \(batch)")
            countActiveRows(lengths, steps: steps, into: activeRows)
            hasLengths = lengths[batch - 1] < steps
        }
        packForward()
    }
}

/// Fills `active[t]` with b_t = #{i : lengths[i] > t}, the rows still running at step t of a batch
/// sorted longest first (the prefix that takes part in step t), for t in 0..<steps.
/// Preconditions: each length in 0...steps, non-increasing.
func countActiveRows(_ lengths: [Int], steps: Int, into active: AlignedBuffer<Int>) {
    let batch = lengths.count
    for i in 0..<batch {
        precondition(lengths[i] >= 0 && lengths[i] <= steps, "length \(lengths[i]) outside 0...\(steps)")
        precondition(i == 0 || lengths[i] <= lengths[i - 1], "lengths must be non-increasing")
    }
    // The lengths are non-increasing, so the count only shrinks as t grows.
    var b = batch
    for t in 0..<steps {
        while b > 0 && lengths[b - 1] <= t { b -= 1 }
        active[t] = b
    }
}

/// Builds layers by cell kind.
public enum RecurrentLayers {
    /// The layer for `cell` over the `{prefix}rnn.*_l{index}{suffix}` views of `arena`; `leak` (leaky
    /// cells only, nil = `LeakRate.default`) gives the leak rates; `skipSteps` (rnn, rnn-relu) the
    /// skip connections through time; `clockPeriods` (clockwork only, nil = the default for the
    /// hidden size) the module periods.
    public static func make(cell: CellKind, index: Int, inputSize: Int, hiddenSize: Int,
                            direction: TimeDirection = .forward, arena: ParameterArena,
                            maxSteps: Int, maxBatch: Int, suffix: String = "", prefix: String = "",
                            leak: LeakRate? = nil, skipSteps: [Int] = [], clockPeriods: [Int]? = nil) -> any RecurrentLayer {
        // Skip steps of another cell are refused by `recurrenceProblem` before a model is built.
        switch cell {
        case .clockwork:
            ClockworkLayer(index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction, arena: arena,
                           maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix,
                           periods: ClockPeriods.resolved(clockPeriods, hidden: hiddenSize))
        case .leaky, .esn:
            LeakyLayer(cell: cell, index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction,
                       arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix,
                       leak: leak ?? cellLeak(cell, nil) ?? .default)
        case .lstm:
            LSTMLayer(cell: cell, index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction,
                      arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix)
        case .gru:
            GRULayer(cell: cell, index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction,
                     arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix)
        case .jordan:
            preconditionFailure("a Jordan layer reads the previous output; SequenceModel builds it (JordanLayer)")
        case .rnnTanh, .rnnRelu:
            ElmanLayer(cell: cell, index: index, inputSize: inputSize, hiddenSize: hiddenSize, direction: direction,
                       arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, suffix: suffix, prefix: prefix,
                       skipSteps: skipSteps)
        case .treeRNN, .treeLSTM:
            // Refused by every sequence configuration's validation (TreeModel runs these).
            preconditionFailure("\(cell.rawValue) is a tree cell, not a sequence layer")
        }
    }
}
