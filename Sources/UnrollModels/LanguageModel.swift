// The recurrent language model: embedding → dropout → L recurrent layers (dropout between them) →
// dropout → linear readout → softmax cross-entropy; forward and backward over one TBPTT window
// of T steps for B streams, from a carried state that it updates to the window's final state.
// Dropout only touches non-recurrent connections (Zaremba et al. 2014).
import UnrollKernels

/// The carried state of every layer for a batch of streams: h (L, B, H) and, for LSTM, c (L, B, H),
/// in PyTorch's (num_layers, batch, hidden) layout.
public final class RecurrentState: @unchecked Sendable {
    public let layers: Int
    public let batch: Int
    public let hiddenSize: Int
    public let h: FloatBuffer
    public let c: FloatBuffer?

    public init(layers: Int, batch: Int, hiddenSize: Int, hasCell: Bool) {
        self.layers = layers
        self.batch = batch
        self.hiddenSize = hiddenSize
        h = FloatBuffer(count: layers * batch * hiddenSize)
        c = hasCell ? FloatBuffer(count: layers * batch * hiddenSize) : nil
    }

    /// A zero state shaped for `config` and `batch` streams.
    public convenience init(config: ModelConfig, batch: Int) {
        self.init(layers: config.layers, batch: batch, hiddenSize: config.hiddenSize,
                  hasCell: config.cell.hasCellState)
    }

    /// Pointers to layer `k`'s part.
    public func layer(_ k: Int) -> LayerState {
        let offset = k * batch * hiddenSize
        return LayerState(h: h.pointer + offset, c: c.map { $0.pointer + offset })
    }

    /// Resets to zero (start of an epoch).
    public func zero() {
        h.zero()
        c?.zero()
    }

    /// Copies another state of the same shape.
    public func copy(from other: RecurrentState) {
        precondition(other.h.count == h.count && (other.c == nil) == (c == nil), "state shape mismatch")
        h.pointer.update(from: other.h.pointer, count: h.count)
        if let c, let oc = other.c { c.pointer.update(from: oc.pointer, count: c.count) }
    }
}

/// What selects a dropout mask: masks are defined over the global batch, so a rank owning streams
/// [firstStream, firstStream + B) of `globalBatch` draws exactly its part and every world size
/// trains with the same masks.
public struct DropoutContext: Sendable {
    public var seed: UInt64
    /// The optimizer step; each step draws fresh masks.
    public var step: UInt64
    public var firstStream: Int
    public var globalBatch: Int

    public init(seed: UInt64, step: UInt64, firstStream: Int = 0, globalBatch: Int) {
        self.seed = seed
        self.step = step
        self.firstStream = firstStream
        self.globalBatch = globalBatch
    }
}

/// Embedding, recurrent stack and readout over one flat parameter arena.
public final class RecurrentLanguageModel {
    public let config: ModelConfig
    public let arena: ParameterArena
    public let layers: [any RecurrentLayer]
    public let maxSteps: Int
    public let maxBatch: Int

    let embeddingView: ParameterView, decoderWeight: ParameterView, decoderBias: ParameterView
    /// (T, B, E) embedded (and dropped-out) inputs; reused as ∂L/∂embedded in backward.
    let embedded: FloatBuffer
    let dEmbedded: FloatBuffer
    /// Dropout masks per site: site 0 = embedding output (T, B, E), site k ≥ 1 = output of layer k−1 (T, B, H).
    let masks: [FloatBuffer]
    /// (T, B, H) dropped-out outputs of layer k (input of layer k+1 or of the readout); only with dropout.
    let dropped: [FloatBuffer]
    /// (T, B, V) logits; overwritten by ∂L/∂logits in backward.
    let logits: FloatBuffer
    /// (T, B, H) ping-pong gradients flowing down the stack.
    let dUpper: FloatBuffer, dLower: FloatBuffer
    /// (V) workspace of the loss-only softmax (evaluation). Its own buffer: borrowing a (T, B, E)
    /// one overran it whenever V > T·B·E (a small model on a word vocabulary).
    let lossScratch: FloatBuffer

    /// Loss sum and token count of the last backward, set before its first `gradientsReady` call.
    public private(set) var lastLoss: (lossSum: Double, count: Int) = (0, 0)

    /// Fixed reduction groups (see `useReductionGroups`), or nil.
    public private(set) var groups: ReductionGroups?
    /// decoder.weight packed as Wᵀ (H × V) for the M-stable logits; with `groups` and a narrow
    /// readout (a wide one packs as it goes, `BLAS.gemmRows`).
    private var packedDecoderForward: FloatBuffer?
    /// decoder.weight packed as W (V × H) for the M-stable ∂L/∂x of a time-major grouped readout.
    private var packedDecoderBackward: FloatBuffer?
    /// (K, T, g, H) the readout input gathered group by group by a training forward; with `groups`
    /// and a wide readout (`groupMajorReadoutMinimum`) only: its presence is what makes a grouped
    /// training batch run its readout on gathered rows (group-major logits and ∂L/∂x, so that
    /// decoder.weight's GroupedGEMM reads each group's rows contiguously) rather than on the
    /// time-major rows in place (no gathers).
    private var groupedReadoutInput: FloatBuffer?
    /// Whether the last forward was a grouped training forward (`wholeGroups` with groups set).
    private var groupedTrainingForward = false
    /// (T·g) one group's targets, gathered; with `groups`.
    private var groupTargets: [Int32] = []
    /// Whether the last forward ran the readout group by group (a training batch of whole groups):
    /// `logits` then holds (K, T, g, V), group-major, until backward.
    private var groupMajorLogits = false
    /// (V) compact index of each embedding row touched by the window (−1: untouched); with `groups`.
    private var embeddingSlot: [Int32] = []

    private var steps = 0, batch = 0
    private var dropoutActive = false
    private var tokens: UnsafePointer<Int32>?
    private var readoutInput: UnsafePointer<Float>?

    /// Builds the model over `arena` (whose layout must be `ParameterLayout.languageModel(config)`),
    /// with workspaces for windows of up to `maxSteps` × `maxBatch`.
    public init(config: ModelConfig, arena: ParameterArena, maxSteps: Int, maxBatch: Int) {
        precondition(config.problem() == nil, config.problem() ?? "")
        precondition(arena.layout == ParameterLayout.languageModel(config), "arena layout does not match the config")
        self.config = config
        self.arena = arena
        self.maxSteps = maxSteps
        self.maxBatch = maxBatch
        let H = config.hiddenSize, E = config.embeddingSize, rows = maxSteps * maxBatch
        layers = (0..<config.layers).map { k in
            RecurrentLayers.make(cell: config.cell, index: k, inputSize: config.inputSize(ofLayer: k), hiddenSize: H,
                                arena: arena, maxSteps: maxSteps, maxBatch: maxBatch, leak: config.effectiveLeak,
                                skipSteps: config.effectiveSkipSteps, clockPeriods: config.effectiveClockPeriods)
        }
        embeddingView = arena.view("embedding.weight")
        decoderWeight = arena.view("decoder.weight")
        decoderBias = arena.view("decoder.bias")
        embedded = FloatBuffer(count: rows * E)
        dEmbedded = FloatBuffer(count: rows * E)
        let withDropout = config.dropout > 0
        masks = withDropout ? (0...config.layers).map { FloatBuffer(count: rows * ($0 == 0 ? E : H)) } : []
        dropped = withDropout ? (0..<config.layers).map { _ in FloatBuffer(count: rows * H) } : []
        logits = FloatBuffer(count: rows * config.vocabSize)
        dUpper = FloatBuffer(count: rows * H)
        dLower = FloatBuffer(count: rows * H)
        lossScratch = FloatBuffer(count: config.vocabSize)
    }

    /// Convenience: a fresh arena laid out for `config`, initialised with `seed`.
    public convenience init(config: ModelConfig, seed: UInt64, maxSteps: Int, maxBatch: Int) {
        let arena = ParameterArena(layout: .languageModel(config))
        Initializer.initialize(arena, config: config, seed: seed)
        self.init(config: config, arena: arena, maxSteps: maxSteps, maxBatch: maxBatch)
    }

    /// From now on, sums every row gradient of a training batch per group of `size` consecutive
    /// streams, groups added by the halving tree (see ReductionGroups), and computes every row
    /// product with the M-stable packed kernel: the gradient, loss and outputs of a stream then do
    /// not depend on which other streams share the batch, and a batch's gradient is the same bits
    /// however its groups are split into batches (given subtrees, see ReductionGroups).
    public func useReductionGroups(size: Int) {
        let groups = ReductionGroups(size: size)
        self.groups = groups
        for layer in layers { layer.useReductionGroups(groups) }
        let H = config.hiddenSize, V = config.vocabSize
        if V * H >= Self.groupMajorReadoutMinimum {
            groupedReadoutInput = FloatBuffer(count: maxSteps * maxBatch * H)
            groupTargets = [Int32](repeating: -1, count: maxSteps * size)
        } else {
            packedDecoderForward = FloatBuffer(count: BLAS.packedCount(k: H, n: V))
            packedDecoderBackward = FloatBuffer(count: BLAS.packedCount(k: V, n: H))
        }
        embeddingSlot = [Int32](repeating: -1, count: V)
    }

    /// Runs the model forward over a window and leaves the logits in `lastLogits`.
    /// - tokens: (T, B) input ids; must stay valid until `backward`.
    /// - state: initial state on entry, the window's final state on exit.
    /// - dropout: masks to use, or nil for none (evaluation, or a model without dropout).
    /// - wholeGroups: the batch is a training batch of whole reduction groups, to be followed by
    ///   `backward`. With groups set and a wide readout (`groupMajorReadoutMinimum`), the readout
    ///   then runs on the readout input gathered group by group (group-major logits, which
    ///   backward's decoder.weight gradient reads a group at a time), and `lastLogits` is
    ///   unavailable until the next forward.
    public func forward(tokens: UnsafePointer<Int32>, steps: Int, batch: Int, state: RecurrentState,
                        dropout: DropoutContext?, wholeGroups: Bool = false) {
        precondition(state.batch == batch && state.layers == config.layers, "state shape does not match the batch")
        precondition(steps >= 1 && steps <= maxSteps && batch >= 1 && batch <= maxBatch, "window exceeds the workspace")
        self.steps = steps
        self.batch = batch
        self.tokens = tokens
        dropoutActive = dropout != nil && config.dropout > 0
        let E = config.embeddingSize, H = config.hiddenSize, V = config.vocabSize, rows = steps * batch
        EmbeddingKernels.forward(embedded.pointer, table: arena.parameters(embeddingView), tokens: tokens,
                                 count: rows, vocab: V, width: E)
        if dropoutActive, let dropout {
            applyDropout(site: 0, x: embedded.pointer, into: embedded.pointer, width: E, context: dropout)
        }
        var x = UnsafePointer(embedded.pointer)
        for (k, layer) in layers.enumerated() {
            layer.forward(input: x, steps: steps, batch: batch, initial: state.layer(k), final: state.layer(k))
            if dropoutActive, let dropout {
                applyDropout(site: k + 1, x: layer.output, into: dropped[k].pointer, width: H, context: dropout)
                x = UnsafePointer(dropped[k].pointer)
            } else {
                x = UnsafePointer(layer.output)
            }
        }
        readoutInput = x
        RowKernels.broadcastRows(logits.pointer, bias: arena.parameters(decoderBias), rows: rows, cols: V)
        groupMajorLogits = false
        groupedTrainingForward = wholeGroups && groups != nil
        if let groups, let gathered = groupedReadoutInput, wholeGroups {
            // (T, B, H) → (K, T, g, H); logits (K, T, g, V) = bias + x_q · Wᵀ, all groups in one
            // call of the M-stable kernel, packing Wᵀ strip by strip into L1 as it goes (B's
            // logits: 0.92–1.08× the time of the ungrouped `sgemm`; Wᵀ packed whole first,
            // 0.99–1.07×; one `sgemm` of T·g rows per group, 1.16×).
            for q in 0..<groups.groups(inBatch: batch) {
                groups.gather(into: gathered.pointer + q * steps * groups.size * H, from: x, steps: steps, batch: batch,
                              width: H, group: q)
            }
            BLAS.gemmRows(m: rows, n: V, k: H, a: gathered.pointer, lda: H, b: arena.parameters(decoderWeight), ldb: H,
                          transB: true, beta: 1, c: logits.pointer, ldc: V)
            groupMajorLogits = true
            return
        }
        if let packed = packedDecoderForward {
            BLAS.pack(packed.pointer, b: arena.parameters(decoderWeight), k: H, n: V, ldb: H, transB: true)
            BLAS.gemmPackedRows(m: rows, n: V, k: H, a: x, lda: H, packed: packed.pointer, beta: 1, c: logits.pointer,
                                ldc: V)
            return
        }
        if groups != nil {
            // A wide readout's rows that are not a training batch of whole groups (evaluation).
            BLAS.gemmRows(m: rows, n: V, k: H, a: x, lda: H, b: arena.parameters(decoderWeight), ldb: H, transB: true,
                          beta: 1, c: logits.pointer, ldc: V)
            return
        }
        BLAS.sgemm(transB: true, m: rows, n: V, k: H, a: x, lda: H, b: arena.parameters(decoderWeight), ldb: H,
                   beta: 1, c: logits.pointer, ldc: V)
    }

    /// The (T, B, V) logits of the last forward (invalid after `backward`).
    public var lastLogits: UnsafePointer<Float> {
        precondition(!groupMajorLogits, "lastLogits after a grouped training forward")
        return UnsafePointer(logits.pointer)
    }

    /// Cross-entropy of the last forward's logits against `targets` (T, B) (−1 = ignored), without
    /// gradients.
    public func loss(targets: UnsafePointer<Int32>) -> (lossSum: Double, count: Int) {
        precondition(!groupMajorLogits, "loss(targets:) after a grouped training forward")
        return SoftmaxCrossEntropy.loss(logits: logits.pointer, targets: targets, rows: steps * batch,
                                 vocab: config.vocabSize, scratch: lossScratch.pointer)
    }

    /// Adds each row's cross-entropy (no gradients) to its stream's entry: perStream[b] += loss of
    /// (t, b) for t in time order, and counts[b] += 1 per non-ignored target. Row by row, so each
    /// stream's sum does not depend on which streams share the batch.
    public func lossPerStream(targets: UnsafePointer<Int32>, perStream: UnsafeMutablePointer<Double>,
                              counts: UnsafeMutablePointer<Double>) {
        precondition(!groupMajorLogits, "lossPerStream after a grouped training forward")
        let V = config.vocabSize
        for t in 0..<steps {
            for b in 0..<batch {
                let row = t * batch + b
                let (s, c) = SoftmaxCrossEntropy.loss(logits: logits.pointer + row * V, targets: targets + row, rows: 1,
                                                      vocab: V, scratch: lossScratch.pointer)
                perStream[b] += s
                counts[b] += Double(c)
            }
        }
    }

    /// Backpropagates the summed cross-entropy of the last forward through the window, accumulating
    /// (+=) into `arena.gradients`.
    /// - targets: (T, B), −1 = ignored.
    /// - gradScale: multiplies every gradient (e.g. 1 to get gradients of the SUM of token losses).
    /// - dFinalState: extra ∂L/∂(final state), or nil (the TBPTT case: the state is detached).
    /// - dInitialState: receives ∂L/∂(initial state) if given.
    /// - gradientsReady: called as soon as every gradient from arena offset `offset` to the end is
    ///   final (readout first, then each layer from the top, then the embedding at offset 0), so the
    ///   caller can start reducing those buckets while backward goes on. `lastLoss` is already set
    ///   at the first call. Within a layer it is also called after that layer's `weight_hh` and
    ///   `weight_ih` gradients (see `BackwardHooks`).
    /// - progress: called after every time step of every layer's backward, e.g. to let started
    ///   reductions progress (MPI moves data only inside MPI calls).
    /// - Returns: the summed loss (Double) and the number of non-ignored targets.
    @discardableResult
    public func backward(targets: UnsafePointer<Int32>, gradScale: Float = 1, dFinalState: RecurrentState? = nil,
                         dInitialState: RecurrentState? = nil,
                         gradientsReady: ((_ offset: Int) -> Void)? = nil,
                         progress: (() -> Void)? = nil) -> (lossSum: Double, count: Int) {
        guard let tokens, let readoutInput else { preconditionFailure("backward before forward") }
        let E = config.embeddingSize, H = config.hiddenSize, V = config.vocabSize, rows = steps * batch
        var dOut = dUpper.pointer, dNext = dLower.pointer
        let result: (lossSum: Double, count: Int)
        if let groups {
            precondition(groupedTrainingForward, "backward with reduction groups needs forward(wholeGroups: true)")
            result = groupMajorLogits
                ? readoutBackwardGroupMajor(groups, targets: targets, gradScale: gradScale, dReadoutInput: dOut)
                : readoutBackwardTimeMajor(groups, targets: targets, gradScale: gradScale, readoutInput: readoutInput,
                                           dReadoutInput: dOut)
            groupMajorLogits = false
            groupedTrainingForward = false
        } else {
            result = SoftmaxCrossEntropy.forwardBackward(dLogits: logits.pointer, logits: logits.pointer,
                                                         targets: targets, rows: rows, vocab: V, gradScale: gradScale,
                                                         dBias: arena.gradients(decoderBias))
            lastLoss = result
            BLAS.sgemm(transA: true, m: V, n: H, k: rows, a: logits.pointer, lda: V, b: readoutInput, ldb: H,
                       beta: 1, c: arena.gradients(decoderWeight), ldc: H)
            BLAS.sgemm(m: rows, n: H, k: V, a: logits.pointer, lda: V, b: arena.parameters(decoderWeight), ldb: H,
                       beta: 0, c: dOut, ldc: H)
        }
        gradientsReady?(decoderWeight.offset)
        for k in stride(from: layers.count - 1, through: 0, by: -1) {
            if dropoutActive { DropoutKernels.apply(dOut, dOut, mask: masks[k + 1].pointer, count: rows * H) }
            layers[k].hooks = BackwardHooks(gradientsReady: gradientsReady, timeStep: progress)
            defer { layers[k].hooks = BackwardHooks() }
            layers[k].backward(dOutput: dOut, dFinal: dFinalState?.layer(k),
                               dInput: k > 0 ? dNext : dEmbedded.pointer, dInitial: dInitialState?.layer(k))
            swap(&dOut, &dNext)
            gradientsReady?(layers[k].firstParameterOffset)
        }
        if dropoutActive { DropoutKernels.apply(dEmbedded.pointer, dEmbedded.pointer, mask: masks[0].pointer, count: rows * E) }
        if let groups {
            embeddingBackwardGrouped(groups, tokens: tokens)
        } else {
            EmbeddingKernels.backward(dTable: arena.gradients(embeddingView), dOut: dEmbedded.pointer, tokens: tokens,
                                      count: rows, width: E)
        }
        gradientsReady?(0)
        self.tokens = nil
        self.readoutInput = nil
        return result
    }

    /// The smallest V·H at which a grouped training batch gathers its readout rows group by group
    /// and packs decoder.weight as it goes (`BLAS.gemmRows`) rather than whole, once per product.
    /// Below it (A, C, D, E: V·H ≤ 66,560) the readout runs on the time-major rows in place, with
    /// no gathers or scatters; B's is 2,000,000.
    static let groupMajorReadoutMinimum = 1 << 20

    /// The readout's loss and gradients with reduction groups, from the time-major logits of
    /// forward: per group, the softmax over its g rows of each step in step order (∂L/∂logits in
    /// place), the decoder bias and weight gradients and the loss, each added over the groups by
    /// the halving tree (decoder.weight's by GroupedGEMM, reading the rows in place); ∂L/∂x of the
    /// readout input (T, B, H) on the M-stable packed kernel.
    private func readoutBackwardTimeMajor(_ groups: ReductionGroups, targets: UnsafePointer<Int32>, gradScale: Float,
                                          readoutInput: UnsafePointer<Float>,
                                          dReadoutInput: UnsafeMutablePointer<Float>) -> (lossSum: Double, count: Int) {
        guard let packed = packedDecoderBackward else { preconditionFailure("time-major readout without its workspace") }
        let T = steps, B = batch, g = groups.size, H = config.hiddenSize, V = config.vocabSize
        let K = groups.groups(inBatch: B)
        var losses = [Double](repeating: 0, count: K), count = 0
        let logits = self.logits.pointer
        groups.sum(groups: K, into: arena.gradients(decoderBias), count: V) { q, out in
            out.update(repeating: 0, count: V)
            var lossSum = 0.0
            for t in 0..<T {
                let row = t * B + q * g
                let part = SoftmaxCrossEntropy.forwardBackward(dLogits: logits + row * V, logits: logits + row * V,
                                                               targets: targets + row, rows: g, vocab: V,
                                                               gradScale: gradScale, dBias: out)
                lossSum += part.lossSum
                count += part.count
            }
            losses[q] = lossSum
        }
        let result = (lossSum: ReductionGroups.treeSum(losses), count: count)
        lastLoss = result
        groups.accumulateProducts(m: V, n: H, steps: T, groups: K, layout: .timeMajor(batch: B, groupSize: g),
                                  a: logits, lda: V, b: readoutInput, ldb: H, c: arena.gradients(decoderWeight), ldc: H)
        BLAS.pack(packed.pointer, b: arena.parameters(decoderWeight), k: V, n: H, ldb: H, transB: false)
        BLAS.gemmPackedRows(m: T * B, n: H, k: V, a: logits, lda: V, packed: packed.pointer, beta: 0, c: dReadoutInput,
                            ldc: H)
        return result
    }

    /// The readout's loss and gradients with reduction groups, from the group-major logits of
    /// forward: per group, the softmax over its T·g contiguous rows (∂L/∂logits in place), the
    /// decoder bias and weight gradients and the loss, each added over the groups by the
    /// halving tree (decoder.weight's by GroupedGEMM); ∂L/∂x of the readout input one GEMM per
    /// group, scattered back to (T, B, H).
    private func readoutBackwardGroupMajor(_ groups: ReductionGroups, targets: UnsafePointer<Int32>, gradScale: Float,
                                        dReadoutInput: UnsafeMutablePointer<Float>) -> (lossSum: Double, count: Int) {
        guard let gathered = groupedReadoutInput else { preconditionFailure("grouped readout without its workspace") }
        let T = steps, B = batch, g = groups.size, H = config.hiddenSize, V = config.vocabSize
        let K = groups.groups(inBatch: B), block = T * g
        var losses = [Double](repeating: 0, count: K), count = 0
        let logits = self.logits.pointer
        groups.sum(groups: K, into: arena.gradients(decoderBias), count: V) { q, out in
            out.update(repeating: 0, count: V)
            for t in 0..<T {
                for j in 0..<g { groupTargets[t * g + j] = targets[t * B + q * g + j] }
            }
            let part = groupTargets.withUnsafeBufferPointer { groupTargets in
                SoftmaxCrossEntropy.forwardBackward(dLogits: logits + q * block * V, logits: logits + q * block * V,
                                                    targets: groupTargets.baseAddress!, rows: block, vocab: V,
                                                    gradScale: gradScale, dBias: out)
            }
            losses[q] = part.lossSum
            count += part.count
        }
        let result = (lossSum: ReductionGroups.treeSum(losses), count: count)
        lastLoss = result
        // decoder.weight's gradient (V, H): the groups' logits and readout inputs are group-major.
        groups.accumulateProducts(m: V, n: H, steps: T, groups: K,
                                  layout: .groupMajor(steps: T, groupSize: g), a: logits, lda: V,
                                  b: gathered.pointer, ldb: H, c: arena.gradients(decoderWeight), ldc: H)
        // ∂L/∂x (K, T, g, H) = ∂L/∂logits · W for all groups in one M-stable call, W packed a
        // k-block at a time into L2 (one `sgemm` per group repacked W every time: 1.10×, the
        // packed kernel on W packed whole 1.12–1.15× the ungrouped `sgemm`'s time; this 1.02–1.10×).
        let dX = groups.scratch(0, count: K * block * H)
        BLAS.gemmRows(m: K * block, n: H, k: V, a: logits, lda: V, b: arena.parameters(decoderWeight), ldb: H,
                      transB: false, beta: 0, c: dX, ldc: H)
        for q in 0..<K {
            groups.scatter(dX + q * block * H, into: dReadoutInput, steps: T, batch: B, width: H, group: q)
        }
        return result
    }

    /// The embedding gradient with reduction groups: the rows the window touched get compact
    /// slots; each group scatters its rows into a zeroed compact block, the blocks are added by the
    /// halving tree and the result is added to the table's rows.
    private func embeddingBackwardGrouped(_ groups: ReductionGroups, tokens: UnsafePointer<Int32>) {
        let T = steps, B = batch, g = groups.size, E = config.embeddingSize
        var touched: [Int32] = []
        for n in 0..<(T * B) where embeddingSlot[Int(tokens[n])] < 0 {
            embeddingSlot[Int(tokens[n])] = Int32(touched.count)
            touched.append(tokens[n])
        }
        let R = touched.count, dEmbedded = UnsafePointer(self.dEmbedded.pointer)
        let compact = groups.scratch(2, count: R * E)
        compact.update(repeating: 0, count: R * E)
        groups.sum(groups: groups.groups(inBatch: B), into: compact, count: R * E) { q, out in
            out.update(repeating: 0, count: R * E)
            for t in 0..<T {
                for i in 0..<g {
                    let n = t * B + q * g + i
                    RowKernels.add(out + Int(embeddingSlot[Int(tokens[n])]) * E, dEmbedded + n * E, count: E)
                }
            }
        }
        let table = arena.gradients(embeddingView)
        for (slot, row) in touched.enumerated() {
            RowKernels.add(table + Int(row) * E, compact + slot * E, count: E)
            embeddingSlot[Int(row)] = -1
        }
    }

    /// Draws the mask of `site` for this window (part of the global-batch mask) and applies it.
    private func applyDropout(site: Int, x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, width: Int,
                              context: DropoutContext) {
        let mask = masks[site].pointer, perStep = batch * width
        for t in 0..<steps {
            DropoutKernels.makeMask(mask + t * perStep, count: perStep, probability: config.dropout,
                                    seed: context.seed, step: context.step, site: UInt32(site),
                                    startIndex: (t * context.globalBatch + context.firstStream) * width)
        }
        DropoutKernels.apply(y, x, mask: mask, count: steps * perStep)
    }
}
