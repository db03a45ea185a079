// Sequence models (Deep Learning §10.2 fig. 10.5, §10.3): token embedding or float features →
// L recurrent layers, each optionally bidirectional (forward and time-reversed halves concatenated,
// as torch.nn.LSTM(bidirectional=True)) → a linear head, either on one pooled vector per sequence
// (classification / regression) or at every step (tagging). Rows have their own lengths with
// packed-sequence semantics (see RecurrentLayer.swift); padded positions never affect a result.
// A Jordan model (§10.2 fig. 10.4, `--cell jordan`) replaces the stack by one JordanLayer fed the
// previous step's targets (teacher forcing, `forward`) or its own predictions (`forwardFreeRunning`).
//
// Letters: B batch (rows, sorted by length, non-increasing), T steps, I input width (embedding or
// features), H hidden, D = directions·H, O head outputs.
import UnrollKernels

/// How a sequence head reduces the top layer's outputs to one vector per row.
public enum PoolKind: String, Codable, CaseIterable, Sendable {
    /// PyTorch's h_n of the top layer (both directions concatenated): the forward half after each
    /// row's last valid step, the reverse half after t = 0.
    case last
    /// Mean over the row's valid steps (zero for an empty row).
    case mean
    /// Elementwise maximum over the row's valid steps (zero for an empty row).
    case max
}

/// What the head predicts.
public enum SequenceOutputKind: String, Codable, Sendable {
    /// `targetDim` labels, each a softmax over `numClasses` logits.
    case classes = "class"
    /// `targetDim` real values (squared error).
    case values = "value"
}

/// The architecture of a sequence model.
public struct SequenceModelConfig: Codable, Equatable, Sendable {
    public var cell: CellKind
    /// > 0: token inputs through `embedding.weight` (vocabSize, inputSize); 0: float features of
    /// width `inputSize` fed straight into layer 0.
    public var vocabSize: Int
    /// Embedding width (tokens) or feature width (features).
    public var inputSize: Int
    public var hiddenSize: Int
    public var layers: Int
    /// Each layer runs forward and time-reversed and concatenates its outputs to (T, B, 2H).
    public var bidirectional: Bool
    /// Dropout on non-recurrent connections: after the embedding (tokens), between layers and
    /// before the head. 0 disables it.
    public var dropout: Float
    /// Reduction of a sequence head; ignored when `perStep`.
    public var pool: PoolKind
    /// true: tagging head at every step, outputs (T, B, O).
    public var perStep: Bool
    public var outputKind: SequenceOutputKind
    /// Labels (classes) or values per target.
    public var targetDim: Int
    /// Classes per label (classes only; 0 for values).
    public var numClasses: Int
    public var initScheme: InitScheme
    /// LSTM only: initialise the forget-gate bias to 1 (both directions).
    public var forgetGateBias: Bool
    /// `leaky` only: the leak rates (nil = `LeakRate.default`).
    public var leak: LeakRate?
    /// `rnn`/`rnn-relu` only: skip connections from h_{t−d} for each d (nil = none).
    public var skipSteps: [Int]?
    /// `clockwork` only: the module periods (nil = `ClockPeriods.resolved`'s default).
    public var clockPeriods: [Int]?

    /// The skip steps a layer uses (empty: none).
    public var effectiveSkipSteps: [Int] { skipSteps ?? [] }

    /// The clock periods a layer uses: nil unless the cell is `clockwork`.
    public var effectiveClockPeriods: [Int]? {
        cell == .clockwork ? ClockPeriods.resolved(clockPeriods, hidden: hiddenSize) : nil
    }
    /// `esn` only: reservoir and ridge settings (nil = `EchoStateConfig.default`).
    public var echoState: EchoStateConfig?

    /// The leak rates a layer uses: nil unless the cell is `leaky` or `esn`.
    public var effectiveLeak: LeakRate? { cellLeak(cell, leak) }

    /// The reservoir settings of an `esn` model (nil for other cells).
    public var effectiveEchoState: EchoStateConfig? { cell == .esn ? (echoState ?? .default) : nil }

    public init(cell: CellKind, vocabSize: Int, inputSize: Int, hiddenSize: Int, layers: Int, bidirectional: Bool,
                dropout: Float = 0, pool: PoolKind = .last, perStep: Bool = false, outputKind: SequenceOutputKind,
                targetDim: Int, numClasses: Int, initScheme: InitScheme = .pytorch, forgetGateBias: Bool = false,
                leak: LeakRate? = nil, skipSteps: [Int]? = nil, clockPeriods: [Int]? = nil,
                echoState: EchoStateConfig? = nil) {
        self.leak = leak
        self.skipSteps = skipSteps
        self.clockPeriods = clockPeriods
        self.echoState = echoState
        self.cell = cell
        self.vocabSize = vocabSize
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.pool = pool
        self.perStep = perStep
        self.outputKind = outputKind
        self.targetDim = targetDim
        self.numClasses = numClasses
        self.initScheme = initScheme
        self.forgetGateBias = forgetGateBias
    }

    /// Width of the head's output per row (per step for `perStep`).
    public var outputSize: Int { outputKind == .classes ? targetDim * numClasses : targetDim }

    /// 2 when bidirectional, else 1.
    public var directions: Int { bidirectional ? 2 : 1 }

    /// Input width of layer `k`.
    public func inputSize(ofLayer k: Int) -> Int { k == 0 ? inputSize : directions * hiddenSize }

    /// Checks sizes; returns a one-line description of the first invalid value (naming its
    /// command-line flag where it has one), or nil.
    public func problem() -> String? {
        if vocabSize < 0 { return "vocabulary size must be ≥ 0 (0 = feature inputs), got \(vocabSize)" }
        if inputSize < 1 {
            return vocabSize > 0 ? "--embedding must be ≥ 1, got \(inputSize)"
                                 : "feature width must be ≥ 1 (from the dataset), got \(inputSize)"
        }
        if hiddenSize < 1 { return "--hidden must be ≥ 1, got \(hiddenSize)" }
        if layers < 1 { return "--layers must be ≥ 1, got \(layers)" }
        if !(dropout >= 0 && dropout < 1) { return "--dropout must be in [0, 1), got \(dropout)" }
        if case .uniform(let a) = initScheme, !(a > 0) { return "--init-range must be > 0, got \(a)" }
        if let p = leakProblem(cell: cell, leak: leak) { return p }
        if let p = recurrenceProblem(cell: cell, hidden: hiddenSize, skipSteps: skipSteps, clockPeriods: clockPeriods) {
            return p
        }
        if cell == .clockwork && bidirectional {
            return "--cell clockwork runs forward in time only (each row's clock starts at its first step); --bidirectional is not supported with it"
        }
        if cell == .jordan {
            if !perStep {
                return "--cell jordan needs per-step targets (it feeds back the previous step's target); this dataset has one target per sequence"
            }
            if layers != 1 { return "--cell jordan has one hidden layer (Deep Learning fig. 10.4): --layers must be 1, got \(layers)" }
            if bidirectional { return "--cell jordan feeds back its previous output, so it runs forward in time only: leave out --bidirectional" }
            if initScheme == .identity || initScheme == .orthogonal {
                return "--init \(initScheme.name) sets W_hh, which --cell jordan does not have (use pytorch or uniform)"
            }
        }
        if let p = echoStateProblem(cell: cell, echoState: echoState) { return p }
        if targetDim < 1 { return "target dimension must be ≥ 1 (from the dataset), got \(targetDim)" }
        switch outputKind {
        case .classes where numClasses < 2:
            return "number of classes must be ≥ 2 (from the dataset), got \(numClasses)"
        case .values where numClasses != 0:
            return "value targets take no number of classes, got \(numClasses)"
        default: return nil
        }
    }

    /// Multiply–adds ×2 per (row, time step) of one training step (forward + backward ≈ 3 × forward
    /// GEMM work), counted on the GEMMs only. A sequence head runs once per row, not per step, and
    /// is left out; a per-step head is counted.
    public var trainingFlopsPerStep: Double {
        let G = Double(cell.gateCount), H = Double(hiddenSize)
        var forward = 0.0
        if cell == .jordan {
            forward += 2 * H * (Double(inputSize) + Double(outputSize))
        } else {
            for k in 0..<layers { forward += Double(directions) * 2 * G * H * (Double(inputSize(ofLayer: k)) + H) }
        }
        if perStep { forward += 2 * Double(directions) * H * Double(outputSize) }
        return 3 * forward
    }
}

extension ParameterLayout {
    /// The layout of a sequence model, in PyTorch state-dict names: `embedding.weight` (tokens
    /// only), then per layer k `rnn.weight_ih_l{k}`, `rnn.weight_hh_l{k}`, `rnn.bias_ih_l{k}`,
    /// `rnn.bias_hh_l{k}` (then `rnn.leak_logit_l{k}` or `rnn.weight_hh_skip{d}_l{k}` where the cell
    /// has them) and, when bidirectional, the same with suffix `_reverse`; then
    /// `head.weight` (O, D) and `head.bias` (O). A Jordan model has one layer, `rnn.weight_ih_l0`
    /// (H, I), `rnn.weight_yh_l0` (H, O), `rnn.bias_ih_l0`, `rnn.bias_yh_l0` (H), then the head.
    public static func sequenceModel(_ c: SequenceModelConfig) -> ParameterLayout {
        var layout = ParameterLayout()
        let G = c.cell.gateCount, H = c.hiddenSize
        if c.vocabSize > 0 { layout.append("embedding.weight", shape: [c.vocabSize, c.inputSize]) }
        if c.cell == .jordan {
            JordanLayer.appendLayout(&layout, index: 0, inputSize: c.inputSize, hiddenSize: H, feedbackSize: c.outputSize)
        }
        for k in 0..<(c.cell == .jordan ? 0 : c.layers) {
            for suffix in c.bidirectional ? ["", "_reverse"] : [""] {
                layout.append("rnn.weight_ih_l\(k)\(suffix)", shape: [G * H, c.inputSize(ofLayer: k)])
                layout.append("rnn.weight_hh_l\(k)\(suffix)", shape: [G * H, H])
                layout.append("rnn.bias_ih_l\(k)\(suffix)", shape: [G * H])
                layout.append("rnn.bias_hh_l\(k)\(suffix)", shape: [G * H])
                if c.effectiveLeak?.isLearned == true { layout.append("rnn.leak_logit_l\(k)\(suffix)", shape: [H]) }
                for d in c.effectiveSkipSteps { layout.append(skipWeightName(d: d, layer: k, suffix: suffix), shape: [H, H]) }
            }
        }
        layout.append("head.weight", shape: [c.outputSize, c.directions * H])
        layout.append("head.bias", shape: [c.outputSize])
        return layout
    }
}

extension RecurrentState {
    /// A zero carried state for a unidirectional sequence model and `batch` rows.
    public convenience init(config: SequenceModelConfig, batch: Int) {
        self.init(layers: config.layers, batch: batch, hiddenSize: config.hiddenSize,
                  hasCell: config.cell.hasCellState)
    }
}

/// What selects the dropout masks of one forward. A mask element depends only on (seed, step,
/// site, rowId, time, unit), never on how the global batch is split over ranks or sorted.
public struct SequenceDropout: Sendable {
    public var seed: UInt64
    /// The optimizer step (< 2³²); each step draws fresh masks.
    public var step: UInt64
    /// A global, world-size-independent id (0..<2³²) per row of this batch, in the batch's order.
    public var rowIds: [Int]

    public init(seed: UInt64, step: UInt64, rowIds: [Int]) {
        self.seed = seed
        self.step = step
        self.rowIds = rowIds
    }
}

/// Embedding or features, a (bidirectional) recurrent stack and a pooled or per-step head over
/// one flat parameter arena. Workspaces are allocated once, for windows up to maxSteps × maxBatch.
public final class SequenceModel {
    public let config: SequenceModelConfig
    public let arena: ParameterArena
    public let maxSteps: Int
    public let maxBatch: Int
    /// layers[k][d]: layer k, direction d (0 forward, 1 reverse); empty for a Jordan model.
    public let layers: [[any RecurrentLayer]]
    /// The output-recurrence layer of a Jordan model (`--cell jordan`), else nil.
    public let jordan: JordanLayer?
    /// λ of the flow regulariser (Pascanu et al. 2013) added to the loss in every backward of the
    /// Elman layers; 0 = off.
    public var flowRegularizer: Float = 0 {
        didSet { for layer in layers.joined() { (layer as? ElmanLayer)?.flowRegularizer = flowRegularizer } }
    }
    /// Ω of the last backward summed over layers, rows and steps (0 without the regulariser).
    public var flowSum: Double { layers.joined().reduce(0) { $0 + (($1 as? ElmanLayer)?.flowSum ?? 0) } }

    /// `embedding.weight` (token models only).
    public let embeddingView: ParameterView?
    let headWeight: ParameterView, headBias: ParameterView

    /// (T, B, I) embedded tokens, or features with padded rows zeroed; dropout applied in place.
    let inputs: FloatBuffer
    /// (T, B, D) per layer: both directions concatenated (bidirectional only; empty for the top
    /// layer under a `last` head, which reads h_n only).
    let concatenated: [FloatBuffer]
    /// (T, B, D) per layer k: dropped-out output feeding layer k+1 (or a per-step head).
    let dropped: [FloatBuffer]
    /// Dropout masks per site: 0 = embedding output (T, B, I); k in 1..<L = output of layer k−1
    /// (T, B, D); L = head input, (T, B, D) per-step or (B, D) pooled.
    let masks: [FloatBuffer]
    /// (B, D) pooled head input; (B, D) argmax time of max pooling (−1 for an empty row).
    let pooled: FloatBuffer
    let argmax: AlignedBuffer<Int32>
    /// (B, O) or (T, B, O) head outputs.
    let headOutputs: FloatBuffer
    /// (B, D) ∂L/∂(pooled head input).
    let dPooled: FloatBuffer
    /// (T, B, max(I, D)) ping-pong gradients flowing down the stack.
    let dUpper: FloatBuffer, dLower: FloatBuffer
    /// (T, B, H) the two halves of a bidirectional layer's output gradient.
    let dForwardHalf: FloatBuffer, dReverseHalf: FloatBuffer
    /// (B, H) zero initial state (h, c) and ∂L/∂h_n per direction for `last` pooling.
    let zeroH: FloatBuffer, zeroC: FloatBuffer?
    let dLast: [FloatBuffer]
    /// Final states per [layer][direction], (B, H) each.
    let finalH: [[FloatBuffer]], finalC: [[FloatBuffer]]
    /// (T) active rows b_t of the last forward.
    let activeRows: AlignedBuffer<Int>

    private var steps = 0, batch = 0
    private var lengths: [Int] = []
    private var tokens: UnsafePointer<Int32>?
    private var headInput: UnsafePointer<Float>?
    private var dropoutActive = false

    /// Builds the model over `arena` (whose layout must be `ParameterLayout.sequenceModel(config)`).
    public init(config: SequenceModelConfig, arena: ParameterArena, maxSteps: Int, maxBatch: Int) {
        precondition(config.problem() == nil, config.problem() ?? "")
        precondition(arena.layout == ParameterLayout.sequenceModel(config), "arena layout does not match the config")
        precondition(maxSteps >= 1 && maxBatch >= 1, "empty workspace")
        self.config = config
        self.arena = arena
        self.maxSteps = maxSteps
        self.maxBatch = maxBatch
        let H = config.hiddenSize, I = config.inputSize, D = config.directions * H, L = config.layers
        let O = config.outputSize, rows = maxSteps * maxBatch, BH = maxBatch * H
        layers = config.cell == .jordan ? [] : (0..<L).map { k in
            (0..<config.directions).map { d in
                RecurrentLayers.make(cell: config.cell, index: k, inputSize: config.inputSize(ofLayer: k), hiddenSize: H,
                                     direction: d == 0 ? .forward : .reverse, arena: arena,
                                     maxSteps: maxSteps, maxBatch: maxBatch, suffix: d == 0 ? "" : "_reverse",
                                     leak: config.effectiveLeak, skipSteps: config.effectiveSkipSteps,
                                     clockPeriods: config.effectiveClockPeriods)
            }
        }
        jordan = config.cell == .jordan
            ? JordanLayer(index: 0, inputSize: I, hiddenSize: H, feedbackSize: O, arena: arena, maxSteps: maxSteps,
                          maxBatch: maxBatch)
            : nil
        embeddingView = config.vocabSize > 0 ? arena.view("embedding.weight") : nil
        headWeight = arena.view("head.weight")
        headBias = arena.view("head.bias")
        inputs = FloatBuffer(count: rows * I)
        let topConcatenated = config.perStep || config.pool != .last
        concatenated = config.bidirectional
            ? (0..<L).map { FloatBuffer(count: $0 < L - 1 || topConcatenated ? rows * D : 0) } : []
        let withDropout = config.dropout > 0
        dropped = withDropout ? (0..<L).map { FloatBuffer(count: $0 < L - 1 || config.perStep ? rows * D : 0) } : []
        masks = withDropout ? (0...L).map { site in
            if site == 0 { return FloatBuffer(count: config.vocabSize > 0 ? rows * I : 0) }
            return FloatBuffer(count: site < L || config.perStep ? rows * D : maxBatch * D)
        } : []
        pooled = FloatBuffer(count: maxBatch * D)
        argmax = AlignedBuffer<Int32>(count: config.pool == .max ? maxBatch * D : 0)
        headOutputs = FloatBuffer(count: (config.perStep ? rows : maxBatch) * O)
        dPooled = FloatBuffer(count: maxBatch * D)
        let width = max(I, D)
        dUpper = FloatBuffer(count: rows * width)
        dLower = FloatBuffer(count: rows * width)
        dForwardHalf = FloatBuffer(count: config.bidirectional ? rows * H : 0)
        dReverseHalf = FloatBuffer(count: config.bidirectional ? rows * H : 0)
        zeroH = FloatBuffer(count: BH)
        zeroC = config.cell.hasCellState ? FloatBuffer(count: BH) : nil
        dLast = (0..<config.directions).map { _ in FloatBuffer(count: BH) }
        finalH = (0..<L).map { _ in (0..<config.directions).map { _ in FloatBuffer(count: BH) } }
        finalC = (0..<L).map { _ in
            (0..<config.directions).map { _ in FloatBuffer(count: config.cell.hasCellState ? BH : 0) }
        }
        activeRows = AlignedBuffer<Int>(count: maxSteps)
    }

    /// A fresh arena laid out for `config`, initialised like `RecurrentLanguageModel` (pytorch
    /// scheme: recurrent and head U(−1/√H, 1/√H), embedding N(0, 1); or uniform(a); forget-gate
    /// bias) from `seed`: identical for the same seed.
    public convenience init(config: SequenceModelConfig, seed: UInt64, maxSteps: Int, maxBatch: Int) {
        precondition(config.problem() == nil, config.problem() ?? "")
        let arena = ParameterArena(layout: .sequenceModel(config))
        if let echoState = config.effectiveEchoState {
            EchoState.initialize(arena, hiddenSize: config.hiddenSize, config: echoState, seed: seed)
        } else {
            Initializer.initialize(arena, cell: config.cell, hiddenSize: config.hiddenSize, scheme: config.initScheme,
                                   forgetGateBias: config.forgetGateBias, leak: config.effectiveLeak,
                                   clockPeriods: config.effectiveClockPeriods, seed: seed)
        }
        self.init(config: config, arena: arena, maxSteps: maxSteps, maxBatch: maxBatch)
    }

    /// The head's input of the last forward: (B, D) pooled vectors for a sequence head, (T, B, D)
    /// top-layer outputs for a per-step head (dropout applied when it was active); nil after a
    /// backward. Read by closed-form readouts (echo state networks).
    public var headInputs: UnsafePointer<Float>? { headInput }

    /// Head outputs of the last forward: (B, O) for sequence heads, (T, B, O) for per-step heads
    /// (logits for classes, predictions for values). Values at padded steps are unspecified.
    public var outputs: UnsafeMutablePointer<Float> { headOutputs.pointer }

    private var bidirectional: Bool { config.bidirectional }

    /// A sequence head with `last` pooling reads the top layer's final states only: its (T, B, D)
    /// outputs need no concatenation, and their gradient is zero.
    private var topOutputsUnused: Bool { !config.perStep && config.pool == .last }

    /// Runs one window forward, time-major.
    /// - tokens: (T, B) ids, or nil; features: (T, B, I), or nil. Exactly one is non-nil; it must
    ///   stay valid until `backward`. Padded positions (t ≥ length) may hold anything.
    /// - lengths: B valid steps in this window, non-increasing, each in 0...steps.
    /// - state: nil = zero initial state; otherwise the initial state on entry and each row's state
    ///   after its last valid step on exit (unidirectional models only).
    /// - dropout: masks to use, or nil for none (evaluation, or a model without dropout).
    /// - feedback: Jordan models only (required there), (T, B, O) the previous step's targets
    ///   encoded (teacher forcing: one-hot per label, or the values; zero before the first step).
    public func forward(tokens: UnsafePointer<Int32>?, features: UnsafePointer<Float>?, steps: Int, batch: Int,
                        lengths: [Int], state: RecurrentState?, dropout: SequenceDropout?,
                        feedback: UnsafePointer<Float>? = nil) {
        precondition((feedback != nil) == (jordan != nil), "a Jordan model, and only it, takes the fed-back targets")
        precondition(jordan == nil || state == nil, "a Jordan model carries no hidden state")
        precondition((tokens == nil) != (features == nil), "exactly one of tokens and features")
        precondition(tokens == nil || config.vocabSize > 0, "token inputs to a feature model")
        precondition(features == nil || config.vocabSize == 0, "feature inputs to a token model")
        precondition(steps >= 1 && steps <= maxSteps && batch >= 1 && batch <= maxBatch, "window exceeds the workspace")
        precondition(lengths.count == batch, "\(lengths.count) lengths for a batch of \(batch)")
        if let state {
            precondition(!bidirectional, "a carried state needs a unidirectional model")
            precondition(state.batch == batch && state.layers == config.layers && state.hiddenSize == config.hiddenSize
                         && (state.c != nil) == config.cell.hasCellState, "state shape does not match the batch")
        }
        if let dropout { precondition(dropout.rowIds.count == batch, "one dropout row id per row") }
        self.steps = steps
        self.batch = batch
        self.lengths = lengths
        self.tokens = tokens
        dropoutActive = dropout != nil && config.dropout > 0
        countActiveRows(lengths, steps: steps, into: activeRows)
        let padded = lengths[batch - 1] < steps
        let layerLengths: [Int]? = padded ? lengths : nil
        let H = config.hiddenSize, D = config.directions * H, L = config.layers
        let O = config.outputSize, rows = steps * batch

        // 1. Inputs (T, B, I): padded positions become zeros, so nothing there can reach a result.
        var x = prepareInputs(tokens: tokens, features: features, padded: padded, dropout: dropout)

        // 2. The recurrent stack (or the Jordan layer, reading the fed-back targets).
        var top = UnsafePointer(inputs.pointer)
        if let jordan, let feedback {
            jordan.forward(input: x, feedback: feedback, steps: steps, batch: batch, lengths: layerLengths)
            top = UnsafePointer(jordan.output)
        }
        for k in 0..<(jordan == nil ? L : 0) {
            for (d, layer) in layers[k].enumerated() {
                let initial = state?.layer(k) ?? LayerState(h: zeroH.pointer, c: zeroC?.pointer)
                layer.forward(input: x, steps: steps, batch: batch, lengths: layerLengths, initial: initial,
                              final: finalState(k, d))
            }
            var out = layers[k][0].output
            if bidirectional && (k < L - 1 || !topOutputsUnused) {
                // (T, B, H) ⊕ (T, B, H) → (T, B, 2H); a `last` head reads only h_n, not the top outputs.
                out = concatenated[k].pointer
                let forwardOut = layers[k][0].output, reverseOut = layers[k][1].output
                for r in 0..<rows {
                    (out + r * D).update(from: forwardOut + r * H, count: H)
                    (out + r * D + H).update(from: reverseOut + r * H, count: H)
                }
            }
            if k < L - 1, dropoutActive, let dropout {
                applyDropout(site: k + 1, out, into: dropped[k].pointer, width: D, context: dropout)
                x = UnsafePointer(dropped[k].pointer)
            } else {
                x = UnsafePointer(out)
            }
            top = UnsafePointer(out)
        }
        if let state {
            for k in 0..<L {
                state.layer(k).h.update(from: finalH[k][0].pointer, count: batch * H)
                if let c = state.layer(k).c { c.update(from: finalC[k][0].pointer, count: batch * H) }
            }
        }

        // 3. The head.
        let headRows: Int
        if config.perStep {
            headRows = rows
            if dropoutActive, let dropout {
                applyDropout(site: L, top, into: dropped[L - 1].pointer, width: D, context: dropout)
                headInput = UnsafePointer(dropped[L - 1].pointer)
            } else {
                headInput = top
            }
        } else {
            headRows = batch
            pool(top)
            if dropoutActive, let dropout {
                let mask = masks[L].pointer
                for i in 0..<batch {
                    DropoutKernels.makeMask(mask + i * D, count: D, probability: config.dropout, seed: dropout.seed,
                                            step: maskStep(dropout, row: i), site: UInt32(L), startIndex: 0)
                }
                DropoutKernels.apply(pooled.pointer, pooled.pointer, mask: mask, count: batch * D)
            }
            headInput = UnsafePointer(pooled.pointer)
        }
        guard let headInput else { return }
        RowKernels.broadcastRows(headOutputs.pointer, bias: arena.parameters(headBias), rows: headRows, cols: O)
        BLAS.sgemm(transB: true, m: headRows, n: O, k: D, a: headInput, lda: D, b: arena.parameters(headWeight),
                   ldb: D, beta: 1, c: headOutputs.pointer, ldc: O)
    }

    /// Backpropagates ∂L/∂outputs of the last forward, accumulating (+=) into `arena.gradients`.
    /// - dOutputs: same shape as `outputs`; the caller zeroes the rows (and padded steps) that do
    ///   not count. Gradients arriving at padded steps of a per-step head are ignored.
    /// - gradientsReady: called once every gradient from arena offset `offset` to the end is final:
    ///   the head first, then the layers from the top (a bidirectional layer's reverse direction
    ///   before its forward one, as it comes later in the arena; within a layer after `weight_hh`
    ///   and `weight_ih`, see `BackwardHooks`; an offset may be reported more than once), the last
    ///   call at offset 0 (the embedding, or layer 0's `weight_ih` for feature models).
    /// - progress: called after every time step of every layer's backward.
    public func backward(dOutputs: UnsafePointer<Float>, gradientsReady: ((_ offset: Int) -> Void)?,
                         progress: (() -> Void)?) {
        guard let headInput else { preconditionFailure("backward before forward") }
        let I = config.inputSize, H = config.hiddenSize, D = config.directions * H, L = config.layers
        let O = config.outputSize, rows = steps * batch
        let headRows = config.perStep ? rows : batch

        // Head: dW += dOutᵀ·input, db += Σ rows dOut, dInput = dOut·W.
        RowKernels.accumulateColumnSums(arena.gradients(headBias), dOutputs, rows: headRows, cols: O)
        BLAS.sgemm(transA: true, m: O, n: D, k: headRows, a: dOutputs, lda: O, b: headInput, ldb: D,
                   beta: 1, c: arena.gradients(headWeight), ldc: D)
        var dOut = dUpper.pointer, dNext = dLower.pointer
        let dHead = config.perStep ? dOut : dPooled.pointer
        BLAS.sgemm(m: headRows, n: D, k: O, a: dOutputs, lda: O, b: arena.parameters(headWeight), ldb: D,
                   beta: 0, c: dHead, ldc: D)
        gradientsReady?(headWeight.offset)
        if dropoutActive { DropoutKernels.apply(dHead, dHead, mask: masks[L].pointer, count: headRows * D) }

        // Into (T, B, D) top-layer output gradients (and h_n gradients for `last`).
        var dFinalTop = false
        if config.perStep {
            for t in 0..<steps {
                let bt = activeRows[t]
                (dOut + (t * batch + bt) * D).update(repeating: 0, count: (batch - bt) * D)
            }
        } else if topOutputsUnused {
            // Only h_n gets a gradient; the top outputs' gradients are zero (zeroed per direction
            // below when bidirectional, where each direction reads its own (T, B, H) half).
            unpool(dOut)
            if !bidirectional { dOut.update(repeating: 0, count: rows * D) }
            dFinalTop = true
        } else {
            dOut.update(repeating: 0, count: rows * D)
            unpool(dOut)
        }

        // The stack, from the top.
        let needsInputGradient = embeddingView != nil
        if let jordan {
            jordan.backward(dOutput: dOut, dInput: needsInputGradient ? dNext : nil, gradientsReady: gradientsReady)
            gradientsReady?(jordan.firstParameterOffset)
            swap(&dOut, &dNext)
        }
        for k in stride(from: jordan == nil ? L - 1 : -1, through: 0, by: -1) {
            let wantInput = k > 0 || needsInputGradient
            func dFinal(_ d: Int) -> LayerState? {
                k == L - 1 && dFinalTop ? LayerState(h: dLast[d].pointer, c: nil) : nil
            }
            func run(_ d: Int, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>?) {
                let layer = layers[k][d]
                layer.hooks = BackwardHooks(gradientsReady: gradientsReady, timeStep: progress)
                defer { layer.hooks = BackwardHooks() }
                layer.backward(dOutput: dOutput, dFinal: dFinal(d), dInput: dInput, dInitial: nil)
                gradientsReady?(layer.firstParameterOffset)
            }
            if bidirectional {
                // (T, B, 2H) → (T, B, H), (T, B, H)
                let dF = dForwardHalf.pointer, dR = dReverseHalf.pointer
                if k == L - 1 && topOutputsUnused {
                    dF.update(repeating: 0, count: rows * H)
                    dR.update(repeating: 0, count: rows * H)
                } else {
                    for r in 0..<rows {
                        (dF + r * H).update(from: dOut + r * D, count: H)
                        (dR + r * H).update(from: dOut + r * D + H, count: H)
                    }
                }
                run(1, dOutput: dR, dInput: wantInput ? dNext : nil)
                run(0, dOutput: dF, dInput: wantInput ? dOut : nil)
                if wantInput { RowKernels.add(dNext, dOut, count: rows * config.inputSize(ofLayer: k)) }
            } else {
                run(0, dOutput: dOut, dInput: wantInput ? dNext : nil)
            }
            swap(&dOut, &dNext)
            if k > 0 && dropoutActive {
                DropoutKernels.apply(dOut, dOut, mask: masks[k].pointer, count: rows * D)
            }
        }
        if let tokens, let embeddingView {
            if dropoutActive { DropoutKernels.apply(dOut, dOut, mask: masks[0].pointer, count: rows * I) }
            for t in 0..<steps {
                EmbeddingKernels.backward(dTable: arena.gradients(embeddingView), dOut: dOut + t * batch * I,
                                          tokens: tokens + t * batch, count: activeRows[t], width: I)
            }
            gradientsReady?(0)
        }
        self.tokens = nil
        self.headInput = nil
    }

    // MARK: free-running decoding (Jordan models)

    /// Free-running decoding of a Jordan model (evaluation and prediction): `forward` without
    /// dropout, except that step t is fed the model's own prediction at t − 1 — per label the
    /// one-hot of the argmax class, or the predicted values — so the steps run one after another
    /// (the input projection is still one GEMM over all T·B rows). Outputs as `forward`'s, in
    /// `outputs` (T, B, O); there is no backward.
    /// - previous: (B, O) what step 0 of each row is fed (zero at a sequence's start; the next
    ///   window of a longer sequence passes on what this one leaves); on exit, each row's
    ///   prediction at its last valid step.
    public func forwardFreeRunning(tokens: UnsafePointer<Int32>?, features: UnsafePointer<Float>?, steps: Int,
                                   batch: Int, lengths: [Int], previous: UnsafeMutablePointer<Float>) {
        guard let jordan else { preconditionFailure("free-running decoding needs a Jordan model") }
        precondition((tokens == nil) != (features == nil), "exactly one of tokens and features")
        precondition(steps >= 1 && steps <= maxSteps && batch >= 1 && batch <= maxBatch, "window exceeds the workspace")
        precondition(lengths.count == batch, "\(lengths.count) lengths for a batch of \(batch)")
        self.steps = steps
        self.batch = batch
        self.lengths = lengths
        self.tokens = nil
        self.headInput = nil
        dropoutActive = false
        countActiveRows(lengths, steps: steps, into: activeRows)
        let x = prepareInputs(tokens: tokens, features: features, padded: lengths[batch - 1] < steps, dropout: nil)
        let H = config.hiddenSize, O = config.outputSize, C = config.numClasses, d = config.targetDim
        let pre = jordan.output   // (T, B, H) input parts, then hidden states
        jordan.projectInput(pre, input: x, rows: steps * batch)
        let weight = arena.parameters(headWeight), bias = arena.parameters(headBias)
        for t in 0..<steps {
            let b = activeRows[t]
            guard b > 0 else { break }
            let h = pre + t * batch * H, o = headOutputs.pointer + t * batch * O
            jordan.step(h, previous: previous, rows: b)
            RowKernels.broadcastRows(o, bias: bias, rows: b, cols: O)
            BLAS.sgemm(transB: true, m: b, n: O, k: H, a: h, lda: H, b: weight, ldb: H, beta: 1, c: o, ldc: O)
            // y_t fed to step t + 1: one-hot argmax per label, or the values.
            switch config.outputKind {
            case .classes:
                for r in 0..<b {
                    for k in 0..<d {
                        let logits = o + r * O + k * C, y = previous + r * O + k * C
                        var best = 0
                        for c in 1..<C where logits[c] > logits[best] { best = c }
                        y.update(repeating: 0, count: C)
                        y[best] = 1
                    }
                }
            case .values:
                previous.update(from: o, count: b * O)
            }
        }
    }

    // MARK: pieces

    /// Step 1 of a forward: the (T, B, I) layer-0 input of the window set up by the caller —
    /// embedded tokens (with dropout) or features, padded positions zero.
    private func prepareInputs(tokens: UnsafePointer<Int32>?, features: UnsafePointer<Float>?, padded: Bool,
                               dropout: SequenceDropout?) -> UnsafePointer<Float> {
        let I = config.inputSize
        let x: UnsafePointer<Float>
        if let tokens, let embeddingView {
            let table = arena.parameters(embeddingView)
            for t in 0..<steps {
                let row = inputs.pointer + t * batch * I, bt = activeRows[t]
                EmbeddingKernels.forward(row, table: table, tokens: tokens + t * batch, count: bt,
                                         vocab: config.vocabSize, width: I)
                (row + bt * I).update(repeating: 0, count: (batch - bt) * I)
            }
            if dropoutActive, let dropout {
                applyDropout(site: 0, inputs.pointer, into: inputs.pointer, width: I, context: dropout)
            }
            x = UnsafePointer(inputs.pointer)
        } else if let features, padded {
            for t in 0..<steps {
                let offset = t * batch * I, bt = activeRows[t]
                (inputs.pointer + offset).update(from: features + offset, count: bt * I)
                (inputs.pointer + offset + bt * I).update(repeating: 0, count: (batch - bt) * I)
            }
            x = UnsafePointer(inputs.pointer)
        } else if let features {
            x = features
        } else {
            preconditionFailure("no inputs")
        }
        return x
    }

    private func finalState(_ k: Int, _ d: Int) -> LayerState {
        LayerState(h: finalH[k][d].pointer, c: config.cell.hasCellState ? finalC[k][d].pointer : nil)
    }

    /// The Philox step word of a row: (step, rowId) packed so that masks never depend on where a
    /// row sits in this batch.
    private func maskStep(_ context: SequenceDropout, row i: Int) -> UInt64 {
        let id = context.rowIds[i]
        precondition(id >= 0 && id < 1 << 32 && context.step < 1 << 32, "dropout row id or step outside 0..<2³²")
        return context.step << 32 | UInt64(id)
    }

    /// y (T, B, width) = x ⊙ mask of `site`; the mask of (row, t) is element t·width… of the row's
    /// stream, and zero at padded positions.
    private func applyDropout(site: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, width: Int,
                              context: SequenceDropout) {
        let mask = masks[site].pointer
        for t in 0..<steps {
            for i in 0..<batch {
                let m = mask + (t * batch + i) * width
                if t < lengths[i] {
                    DropoutKernels.makeMask(m, count: width, probability: config.dropout, seed: context.seed,
                                            step: maskStep(context, row: i), site: UInt32(site), startIndex: t * width)
                } else {
                    m.update(repeating: 0, count: width)
                }
            }
        }
        DropoutKernels.apply(y, x, mask: mask, count: steps * batch * width)
    }

    /// pooled (B, D) from the top layer's outputs (T, B, D).
    private func pool(_ top: UnsafePointer<Float>) {
        let H = config.hiddenSize, D = config.directions * H, L = config.layers
        let p = pooled.pointer
        switch config.pool {
        case .last:
            // h_n: each direction's final slot already holds the state after the row's last step.
            for (d, f) in finalH[L - 1].enumerated() {
                for i in 0..<batch { (p + i * D + d * H).update(from: f.pointer + i * H, count: H) }
            }
        case .mean:
            p.update(repeating: 0, count: batch * D)
            for i in 0..<batch where lengths[i] > 0 {
                let row = p + i * D
                for t in 0..<lengths[i] { RowKernels.add(row, top + (t * batch + i) * D, count: D) }
                RowKernels.scale(row, by: 1 / Float(lengths[i]), count: D)
            }
        case .max:
            let a = argmax.pointer
            for i in 0..<batch {
                let row = p + i * D, at = a + i * D
                guard lengths[i] > 0 else {
                    row.update(repeating: 0, count: D)
                    at.update(repeating: -1, count: D)
                    continue
                }
                row.update(from: top + i * D, count: D)
                at.update(repeating: 0, count: D)
                for t in 1..<max(lengths[i], 1) {
                    let x = top + (t * batch + i) * D
                    for j in 0..<D where x[j] > row[j] {
                        row[j] = x[j]
                        at[j] = Int32(t)
                    }
                }
            }
        }
    }

    /// Scatters dPooled (B, D) into dTop (T, B, D) (zeroed by the caller) or, for `last`, into the
    /// h_n gradients of the top layer's directions.
    private func unpool(_ dTop: UnsafeMutablePointer<Float>) {
        let H = config.hiddenSize, D = config.directions * H
        let dp = dPooled.pointer
        switch config.pool {
        case .last:
            for (d, g) in dLast.enumerated() {
                for i in 0..<batch { (g.pointer + i * H).update(from: dp + i * D + d * H, count: H) }
            }
        case .mean:
            for i in 0..<batch where lengths[i] > 0 {
                let scale = 1 / Float(lengths[i])
                for t in 0..<lengths[i] {
                    let row = dTop + (t * batch + i) * D
                    for j in 0..<D { row[j] = dp[i * D + j] * scale }
                }
            }
        case .max:
            let a = argmax.pointer
            for i in 0..<batch {
                for j in 0..<D where a[i * D + j] >= 0 {
                    dTop[(Int(a[i * D + j]) * batch + i) * D + j] += dp[i * D + j]
                }
            }
        }
    }
}
