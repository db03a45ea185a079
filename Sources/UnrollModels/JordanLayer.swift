// Output-recurrence (Jordan) layer (Deep Learning §10.2, fig. 10.4; Jordan 1986): the hidden layer
// reads the previous *output* instead of the previous hidden state,
//     h_t = tanh(W_ih x_t + b_ih + W_yh y_{t−1} + b_yh),   o_t = head(h_t).
// Trained with teacher forcing (y_{t−1} = the previous target: one-hot for classes, the values for
// regression; y_{−1} = 0), so no step depends on another and the window is parallel over time: the
// input projection and the feedback projection are one GEMM each over all T·B rows, and so are the
// weight gradients; there is no per-step product. Free-running decoding (the model's own previous
// prediction fed back) runs step by step through `step`. Derivation: Sources/UnrollKernels/Derivations.md.
// Letters: T steps, B rows, E input width, H hidden, Y feedback width (the head's output width).
import UnrollKernels

/// One Jordan layer over the `rnn.*_l{index}` views of an arena: `weight_ih` (H, E), `weight_yh`
/// (H, Y), `bias_ih` (H), `bias_yh` (H).
public final class JordanLayer {
    public let inputSize: Int
    public let hiddenSize: Int
    /// Y: the width of the fed-back output (the head's output width).
    public let feedbackSize: Int
    public let maxSteps: Int
    public let maxBatch: Int
    let arena: ParameterArena
    let weightIH: ParameterView, weightYH: ParameterView, biasIH: ParameterView, biasYH: ParameterView
    /// (T, B, H) hidden states of the last forward (padded positions hold finite, unused values).
    let hs: FloatBuffer
    /// (T, B, H) pre-activation gradients.
    let dPre: FloatBuffer
    /// (T) rows active at each step of the last forward.
    let activeRows: AlignedBuffer<Int>
    private var input: UnsafePointer<Float>?
    private var feedback: UnsafePointer<Float>?
    public private(set) var steps = 0
    public private(set) var batch = 0

    /// The layout entries of layer `index` (in arena order).
    public static func appendLayout(_ layout: inout ParameterLayout, index: Int, inputSize E: Int, hiddenSize H: Int,
                                    feedbackSize Y: Int) {
        layout.append("rnn.weight_ih_l\(index)", shape: [H, E])
        layout.append("rnn.weight_yh_l\(index)", shape: [H, Y])
        layout.append("rnn.bias_ih_l\(index)", shape: [H])
        layout.append("rnn.bias_yh_l\(index)", shape: [H])
    }

    public init(index: Int, inputSize: Int, hiddenSize: Int, feedbackSize: Int, arena: ParameterArena,
                maxSteps: Int, maxBatch: Int) {
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.feedbackSize = feedbackSize
        self.maxSteps = maxSteps
        self.maxBatch = maxBatch
        self.arena = arena
        weightIH = arena.view("rnn.weight_ih_l\(index)")
        weightYH = arena.view("rnn.weight_yh_l\(index)")
        biasIH = arena.view("rnn.bias_ih_l\(index)")
        biasYH = arena.view("rnn.bias_yh_l\(index)")
        precondition(weightIH.shape == [hiddenSize, inputSize] && weightYH.shape == [hiddenSize, feedbackSize],
                     "Jordan layer shape mismatch")
        hs = FloatBuffer(count: maxSteps * maxBatch * hiddenSize)
        dPre = FloatBuffer(count: maxSteps * maxBatch * hiddenSize)
        activeRows = AlignedBuffer<Int>(count: maxSteps)
    }

    /// Arena offset of the layer's first parameter (its weight_ih).
    public var firstParameterOffset: Int { weightIH.offset }

    /// The (T, B, H) hidden states of the last forward.
    public var output: UnsafeMutablePointer<Float> { hs.pointer }

    /// pre (rows, H) = input (rows, E)·W_ihᵀ + b_ih + b_yh: one GEMM.
    public func projectInput(_ pre: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows: Int) {
        RowKernels.broadcastRows(pre, bias: arena.parameters(biasIH), bias2: arena.parameters(biasYH), rows: rows,
                                 cols: hiddenSize)
        BLAS.sgemm(transB: true, m: rows, n: hiddenSize, k: inputSize, a: input, lda: inputSize,
                   b: arena.parameters(weightIH), ldb: inputSize, beta: 1, c: pre, ldc: hiddenSize)
    }

    /// Teacher-forced forward over a window: h (T, B, H) = tanh(X W_ihᵀ + Y_prev W_yhᵀ + b_ih + b_yh).
    /// - input: (T, B, E); feedback: (T, B, Y) the previous step's targets encoded (zero at t = −1
    ///   and at padded positions); both kept by pointer until `backward`.
    /// - lengths: nil = all rows run T steps; else B non-increasing counts in 0...T.
    public func forward(input: UnsafePointer<Float>, feedback: UnsafePointer<Float>, steps: Int, batch: Int,
                        lengths: [Int]?) {
        precondition(steps >= 1 && steps <= maxSteps && batch >= 1 && batch <= maxBatch, "window exceeds the workspace")
        self.input = input
        self.feedback = feedback
        self.steps = steps
        self.batch = batch
        if let lengths { countActiveRows(lengths, steps: steps, into: activeRows) } else {
            for t in 0..<steps { activeRows[t] = batch }
        }
        let rows = steps * batch, H = hiddenSize
        projectInput(hs.pointer, input: input, rows: rows)
        BLAS.sgemm(transB: true, m: rows, n: H, k: feedbackSize, a: feedback, lda: feedbackSize,
                   b: arena.parameters(weightYH), ldb: feedbackSize, beta: 1, c: hs.pointer, ldc: H)
        Activations.tanh(hs.pointer, hs.pointer, count: rows * H)
    }

    /// One free-running step on m rows: pre (m, H) holds the input part (`projectInput`) on entry
    /// and h = tanh(pre + previous·W_yhᵀ) on exit; previous (m, Y) is the fed-back prediction.
    public func step(_ pre: UnsafeMutablePointer<Float>, previous: UnsafePointer<Float>, rows m: Int) {
        guard m > 0 else { return }
        BLAS.sgemm(transB: true, m: m, n: hiddenSize, k: feedbackSize, a: previous, lda: feedbackSize,
                   b: arena.parameters(weightYH), ldb: feedbackSize, beta: 1, c: pre, ldc: hiddenSize)
        Activations.tanh(pre, pre, count: m * hiddenSize)
    }

    /// Backward of the last teacher-forced forward, accumulating (+=) parameter gradients: no
    /// recurrence, so dPre = dOutput ⊙ (1 − h²) at once for all rows (zero at padded positions),
    /// then the bias sums and three GEMMs over all T·B rows.
    /// - dOutput: (T, B, H) ∂L/∂h; dInput: receives (T, B, E) ∂L/∂input (overwritten), or nil.
    /// - gradientsReady: called once the gradients from an offset to the end of the layer are final.
    public func backward(dOutput: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>?,
                         gradientsReady: ((_ offset: Int) -> Void)?) {
        guard let input, let feedback else { preconditionFailure("backward before forward") }
        let rows = steps * batch, H = hiddenSize, E = inputSize, Y = feedbackSize
        let dp = dPre.pointer
        Activations.tanhBackward(dp, dy: dOutput, y: hs.pointer, count: rows * H)
        for t in 0..<steps where activeRows[t] < batch {
            (dp + (t * batch + activeRows[t]) * H).update(repeating: 0, count: (batch - activeRows[t]) * H)
        }
        RowKernels.accumulateColumnSums(arena.gradients(biasIH), dp, rows: rows, cols: H)
        RowKernels.accumulateColumnSums(arena.gradients(biasYH), dp, rows: rows, cols: H)
        BLAS.sgemm(transA: true, m: H, n: Y, k: rows, a: dp, lda: H, b: feedback, ldb: Y,
                   beta: 1, c: arena.gradients(weightYH), ldc: Y)
        gradientsReady?(weightYH.offset)
        BLAS.sgemm(transA: true, m: H, n: E, k: rows, a: dp, lda: H, b: input, ldb: E,
                   beta: 1, c: arena.gradients(weightIH), ldc: E)
        gradientsReady?(weightIH.offset)
        if let dInput {
            BLAS.sgemm(m: rows, n: E, k: H, a: dp, lda: H, b: arena.parameters(weightIH), ldb: E,
                       beta: 0, c: dInput, ldc: E)
        }
        self.input = nil
        self.feedback = nil
    }
}
