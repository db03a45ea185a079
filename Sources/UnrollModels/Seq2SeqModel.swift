// Sequence-to-sequence model (Deep Learning §10.4 encoder–decoder, §10.12 attention; Sutskever et
// al. 2014; Luong et al. 2015 global attention and input feeding; Bahdanau et al. 2015 additive
// scores): source embedding → L encoder layers (optionally bidirectional, packed by source length)
// → per-layer bridge → target embedding → L decoder layers of the same cell → attention → combine
// → output softmax. Configuration, parameter layout and the teacher-forced forward/backward; the
// attention is in Seq2SeqAttention.swift, decoding (greedy, beam, sampling) in Seq2SeqDecoding.swift.
//
// Letters: S source steps, T target steps, B batch, E embedding, H hidden, D = directions·H (encoder
// output width), A = H (additive attention width), V target vocabulary, I decoder layer-0 input width
// (E, or E + H with input feeding). Everything is time-major: row (t, b) is t·B + b.
import UnrollKernels
#if canImport(Glibc)
import Glibc
#endif

/// How the decoder scores encoder outputs (Luong et al. 2015 §3.1; Bahdanau et al. 2015).
public enum AttentionKind: String, Codable, CaseIterable, Sendable {
    /// No attention: the output layer reads the decoder's top state.
    case none
    /// score = h_tᵀ e_s (needs D = H).
    case dot
    /// score = h_tᵀ W_a e_s.
    case general
    /// score = vᵀ tanh(W_q h_t + W_k e_s).
    case additive
}

/// How the decoder's initial state is made from the encoder's final states.
public enum BridgeKind: String, Codable, CaseIterable, Sendable {
    /// Per layer k: h_0 = tanh(W_k [fwd final; bwd final] + b_k); for LSTM c_0 = 0.
    case tanh
    /// Zero initial states.
    case none
}

/// The architecture of a sequence-to-sequence model.
public struct Seq2SeqModelConfig: Codable, Equatable, Sendable {
    /// Cell of every encoder and decoder layer.
    public var cell: CellKind
    public var sourceVocabSize: Int
    public var targetVocabSize: Int
    /// Width of both embeddings.
    public var embeddingSize: Int
    public var hiddenSize: Int
    /// Layers of the encoder and of the decoder.
    public var layers: Int
    /// Encoder only: each layer runs forward and time-reversed, outputs concatenated (D = 2H).
    public var bidirectional: Bool
    public var bridge: BridgeKind
    public var attention: AttentionKind
    /// Luong input feeding: the decoder input at t is [emb(y_{t−1}); h̃_{t−1}] (h̃_0 = 0).
    public var inputFeeding: Bool
    public var initScheme: InitScheme
    /// LSTM only: forget-gate bias 1 in every encoder and decoder layer.
    public var forgetGateBias: Bool

    public init(cell: CellKind, sourceVocabSize: Int, targetVocabSize: Int, embeddingSize: Int, hiddenSize: Int,
                layers: Int = 1, bidirectional: Bool = false, bridge: BridgeKind = .tanh,
                attention: AttentionKind = .general, inputFeeding: Bool = false, initScheme: InitScheme = .pytorch,
                forgetGateBias: Bool = false) {
        self.cell = cell
        self.sourceVocabSize = sourceVocabSize
        self.targetVocabSize = targetVocabSize
        self.embeddingSize = embeddingSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.bidirectional = bidirectional
        self.bridge = bridge
        self.attention = attention
        self.inputFeeding = inputFeeding
        self.initScheme = initScheme
        self.forgetGateBias = forgetGateBias
    }

    /// 2 when the encoder is bidirectional, else 1.
    public var directions: Int { bidirectional ? 2 : 1 }
    /// D: width of an encoder output (and of a bridge input).
    public var encoderWidth: Int { directions * hiddenSize }
    /// Input width of encoder layer `k`.
    public func encoderInputSize(ofLayer k: Int) -> Int { k == 0 ? embeddingSize : encoderWidth }
    /// Input width of decoder layer `k` (layer 0 takes h̃_{t−1} too with input feeding).
    public func decoderInputSize(ofLayer k: Int) -> Int {
        k == 0 ? embeddingSize + (inputFeeding ? hiddenSize : 0) : hiddenSize
    }

    /// Checks sizes and combinations; returns a one-line description of the first problem (naming
    /// its command-line flag), or nil.
    public func problem() -> String? {
        if sourceVocabSize < 1 { return "source vocabulary size must be ≥ 1, got \(sourceVocabSize)" }
        if targetVocabSize < 1 { return "target vocabulary size must be ≥ 1, got \(targetVocabSize)" }
        if embeddingSize < 1 { return "--embedding must be ≥ 1, got \(embeddingSize)" }
        if hiddenSize < 1 { return "--hidden must be ≥ 1, got \(hiddenSize)" }
        if layers < 1 { return "--layers must be ≥ 1, got \(layers)" }
        if case .uniform(let a) = initScheme, !(a > 0) { return "--init-range must be > 0, got \(a)" }
        if attention == .dot && encoderWidth != hiddenSize {
            return "--attention dot needs encoder outputs as wide as the decoder state (\(encoderWidth) ≠ \(hiddenSize)): "
                + "use a unidirectional encoder or --attention general"
        }
        return nil
    }
}

extension ParameterLayout {
    /// The layout of a sequence-to-sequence model in PyTorch-style names, in the order backward
    /// finishes them last-to-first: `encoder.embedding.weight` (V_s, E); per encoder layer k
    /// `encoder.rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}` (and `_reverse`, as nn.GRU/LSTM);
    /// with the tanh bridge per layer k `bridge.weight_l{k}` (H, D) and `bridge.bias_l{k}` (H);
    /// `decoder.embedding.weight` (V, E); `decoder.rnn.*_l{k}`; then the attention: general
    /// `attention.weight` (H, D) = W_a, additive `attention.query.weight` (H, H) = W_q,
    /// `attention.key.weight` (H, D) = W_k, `attention.v.weight` (1, H); with any attention
    /// `combine.weight` (H, D + H) = W_c (no bias, Luong eq. 5); `output.weight` (V, H), `output.bias` (V).
    public static func seq2seqModel(_ c: Seq2SeqModelConfig) -> ParameterLayout {
        var layout = ParameterLayout()
        let G = c.cell.gateCount, H = c.hiddenSize, D = c.encoderWidth
        layout.append("encoder.embedding.weight", shape: [c.sourceVocabSize, c.embeddingSize])
        for k in 0..<c.layers {
            for suffix in c.bidirectional ? ["", "_reverse"] : [""] {
                layout.append("encoder.rnn.weight_ih_l\(k)\(suffix)", shape: [G * H, c.encoderInputSize(ofLayer: k)])
                layout.append("encoder.rnn.weight_hh_l\(k)\(suffix)", shape: [G * H, H])
                layout.append("encoder.rnn.bias_ih_l\(k)\(suffix)", shape: [G * H])
                layout.append("encoder.rnn.bias_hh_l\(k)\(suffix)", shape: [G * H])
            }
        }
        if c.bridge == .tanh {
            for k in 0..<c.layers {
                layout.append("bridge.weight_l\(k)", shape: [H, D])
                layout.append("bridge.bias_l\(k)", shape: [H])
            }
        }
        layout.append("decoder.embedding.weight", shape: [c.targetVocabSize, c.embeddingSize])
        for k in 0..<c.layers {
            layout.append("decoder.rnn.weight_ih_l\(k)", shape: [G * H, c.decoderInputSize(ofLayer: k)])
            layout.append("decoder.rnn.weight_hh_l\(k)", shape: [G * H, H])
            layout.append("decoder.rnn.bias_ih_l\(k)", shape: [G * H])
            layout.append("decoder.rnn.bias_hh_l\(k)", shape: [G * H])
        }
        switch c.attention {
        case .none, .dot: break
        case .general:
            layout.append("attention.weight", shape: [H, D])
        case .additive:
            layout.append("attention.query.weight", shape: [H, H])
            layout.append("attention.key.weight", shape: [H, D])
            layout.append("attention.v.weight", shape: [1, H])
        }
        if c.attention != .none { layout.append("combine.weight", shape: [H, D + H]) }
        layout.append("output.weight", shape: [c.targetVocabSize, H])
        layout.append("output.bias", shape: [c.targetVocabSize])
        return layout
    }
}

/// The encoder outputs attention reads: values (S, B, D), keys (S, B, K) (the values themselves for
/// dot, W_a e_s for general, W_k e_s for additive), and each row's source length (positions s ≥
/// length are masked).
struct AttentionMemory {
    var values: UnsafePointer<Float>
    var keys: UnsafePointer<Float>
    var keyWidth: Int
    var lengths: [Int]
    var steps: Int
    var batch: Int
}

/// Per-row workspace of the decoder head for up to `rows` rows: what attention, combine and the
/// output layer write, and what their backward needs.
final class DecoderHeadWorkspace {
    let rows: Int
    /// (rows, S) attention weights a_ts (0 at masked positions).
    let weights: FloatBuffer
    /// (rows, D + H) [c_t; h_t].
    let concat: FloatBuffer
    /// (rows, A) W_q h_t (additive only).
    let query: FloatBuffer
    /// (rows, H) h̃_t = tanh(W_c [c_t; h_t]) (attention only).
    let attentional: FloatBuffer
    /// (rows, V) logits; after the loss, their gradient.
    let logits: FloatBuffer

    init(config c: Seq2SeqModelConfig, rows: Int, sourceSteps S: Int) {
        self.rows = rows
        let H = c.hiddenSize, D = c.encoderWidth, hasAttention = c.attention != .none
        weights = FloatBuffer(count: hasAttention ? rows * S : 0)
        concat = FloatBuffer(count: hasAttention ? rows * (D + H) : 0)
        query = FloatBuffer(count: c.attention == .additive ? rows * H : 0)
        attentional = FloatBuffer(count: hasAttention ? rows * H : 0)
        logits = FloatBuffer(count: rows * c.targetVocabSize)
    }
}

/// Encoder, bridge, decoder, attention and output layer over one flat parameter arena. Workspaces
/// are allocated once for batches up to maxBatch, sources up to maxSourceSteps and targets up to
/// maxTargetSteps (the step-by-step path allocates its per-step layers the first time it runs).
public final class Seq2SeqModel {
    public let config: Seq2SeqModelConfig
    public let arena: ParameterArena
    public let maxSourceSteps: Int
    public let maxTargetSteps: Int
    public let maxBatch: Int

    /// encoderLayers[k][d]: encoder layer k, direction d (0 forward, 1 reverse).
    let encoderLayers: [[any RecurrentLayer]]
    /// decoderLayers[k]: the decoder's layers, run over all T steps at once (batched path).
    let decoderLayers: [any RecurrentLayer]
    /// stepLayers[t][k]: one-step copies of the decoder layers for the step-by-step path (input
    /// feeding, scheduled sampling), created on first use; each keeps its step for backward.
    var stepLayers: [[any RecurrentLayer]] = []

    let encoderEmbedding: ParameterView, decoderEmbedding: ParameterView
    let bridgeWeights: [ParameterView], bridgeBiases: [ParameterView]
    let attentionWeight: ParameterView?, queryWeight: ParameterView?, keyWeight: ParameterView?, vWeight: ParameterView?
    let combineWeight: ParameterView?
    let outputWeight: ParameterView, outputBias: ParameterView

    // Encoder workspace.
    /// (S, B, E) source embeddings, zero at padded positions.
    let sourceInputs: FloatBuffer
    /// (S, B, D) per layer: both directions concatenated (bidirectional only).
    let encoderConcat: [FloatBuffer]
    /// (B, H) final states per [layer][direction].
    let encoderFinalH: [[FloatBuffer]], encoderFinalC: [[FloatBuffer]]
    /// (B, H) zero state.
    let zeroH: FloatBuffer, zeroC: FloatBuffer?
    /// (S) active rows per source step.
    let sourceActive: AlignedBuffer<Int>
    /// (S, B, H) keys W_a e_s (general) or W_k e_s (additive).
    let keys: FloatBuffer
    /// (B, D) bridge input per layer; (B, H) decoder initial states per layer.
    let bridgeInputs: [FloatBuffer]
    let initialH: [FloatBuffer], initialC: [FloatBuffer]

    // Decoder workspace.
    /// (T, B, I) decoder layer-0 inputs.
    let targetInputs: FloatBuffer
    /// (S·B) source ids of the last forward, −1 at padded positions (for the embedding gradient).
    let sourceIds: AlignedBuffer<Int32>
    /// (T·B) the token fed at each position (−1 at padding: zero embedding).
    let fedTokens: AlignedBuffer<Int32>
    /// (T·B) targets with −1 at padding.
    let targets: AlignedBuffer<Int32>
    /// (T, B, H) top decoder outputs of the step-by-step path.
    let stepTop: FloatBuffer
    /// (T+1, B, H) per layer: states of the step-by-step path, slot 0 initial.
    let stepH: [FloatBuffer], stepC: [FloatBuffer]
    /// (B, H) final states of the batched path (unused).
    let scratchFinalH: FloatBuffer, scratchFinalC: FloatBuffer?
    let head: DecoderHeadWorkspace

    // Backward workspace.
    /// (T, B, H) ∂L/∂h̃ (or ∂L/∂h_top without attention); (T, B, D + H) ∂L/∂[c; h].
    let dAttentional: FloatBuffer, dConcat: FloatBuffer
    /// (T, B, S) ∂L/∂a, then ∂L/∂scores.
    let dWeights: FloatBuffer
    /// (T, B, H) ∂L/∂(top decoder output), (T, B, A) ∂L/∂(W_q h).
    let dTop: FloatBuffer, dQuery: FloatBuffer
    /// (T, B, max(I, H)) ping-pong gradients down the decoder stack.
    let dDecoderA: FloatBuffer, dDecoderB: FloatBuffer
    /// (S, B, D) ∂L/∂(encoder top outputs), room for (S, B, max(E, D)); (S, B, H) ∂L/∂keys.
    let dMemory: FloatBuffer, dKeys: FloatBuffer
    /// (S, B, max(E, D)) the other half of the encoder stack's ping-pong; (S, B, H) direction halves.
    let dEncoderA: FloatBuffer
    let dForwardHalf: FloatBuffer, dReverseHalf: FloatBuffer
    /// (B, H) ∂L/∂ decoder initial states per layer; (B, H) ∂L/∂ encoder final h per [layer][direction].
    let dInitialH: [FloatBuffer], dInitialC: [FloatBuffer]
    let dEncoderFinal: [[FloatBuffer]]
    /// (B, D) ∂L/∂(bridge input).
    let dBridgeInput: FloatBuffer
    /// (B, H) step-path carries per layer (two of each for ping-pong), and ∂L/∂h̃_{t−1} from input feeding.
    let dCarryH: [[FloatBuffer]], dCarryC: [[FloatBuffer]]
    let dFeed: FloatBuffer

    /// Inference workspace (Seq2SeqDecoding.swift), created on first use.
    var inference: InferenceWorkspace?

    // The last forward.
    var sourceSteps = 0, targetSteps = 0, batch = 0
    var sourceLengths: [Int] = []
    var targetLengths: [Int] = []
    var usedStepPath = false
    var forwardDone = false

    /// Builds the model over `arena` (whose layout must be `ParameterLayout.seq2seqModel(config)`).
    public init(config: Seq2SeqModelConfig, arena: ParameterArena, maxSourceSteps: Int, maxTargetSteps: Int,
                maxBatch: Int) {
        precondition(config.problem() == nil, config.problem() ?? "")
        precondition(arena.layout == ParameterLayout.seq2seqModel(config), "arena layout does not match the config")
        precondition(maxSourceSteps >= 1 && maxTargetSteps >= 1 && maxBatch >= 1, "empty workspace")
        self.config = config
        self.arena = arena
        self.maxSourceSteps = maxSourceSteps
        self.maxTargetSteps = maxTargetSteps
        self.maxBatch = maxBatch
        let H = config.hiddenSize, E = config.embeddingSize, D = config.encoderWidth, L = config.layers
        let I = config.decoderInputSize(ofLayer: 0), S = maxSourceSteps, T = maxTargetSteps, B = maxBatch
        let hasC = config.cell.hasCellState
        encoderLayers = (0..<L).map { k in
            (0..<config.directions).map { d in
                RecurrentLayers.make(cell: config.cell, index: k, inputSize: config.encoderInputSize(ofLayer: k),
                                     hiddenSize: H, direction: d == 0 ? .forward : .reverse, arena: arena,
                                     maxSteps: S, maxBatch: B, suffix: d == 0 ? "" : "_reverse", prefix: "encoder.")
            }
        }
        decoderLayers = (0..<L).map { k in
            RecurrentLayers.make(cell: config.cell, index: k, inputSize: config.decoderInputSize(ofLayer: k),
                                 hiddenSize: H, arena: arena, maxSteps: T, maxBatch: B, prefix: "decoder.")
        }
        encoderEmbedding = arena.view("encoder.embedding.weight")
        decoderEmbedding = arena.view("decoder.embedding.weight")
        let bridged = config.bridge == .tanh
        bridgeWeights = bridged ? (0..<L).map { arena.view("bridge.weight_l\($0)") } : []
        bridgeBiases = bridged ? (0..<L).map { arena.view("bridge.bias_l\($0)") } : []
        attentionWeight = config.attention == .general ? arena.view("attention.weight") : nil
        queryWeight = config.attention == .additive ? arena.view("attention.query.weight") : nil
        keyWeight = config.attention == .additive ? arena.view("attention.key.weight") : nil
        vWeight = config.attention == .additive ? arena.view("attention.v.weight") : nil
        combineWeight = config.attention != .none ? arena.view("combine.weight") : nil
        outputWeight = arena.view("output.weight")
        outputBias = arena.view("output.bias")

        sourceInputs = FloatBuffer(count: S * B * E)
        encoderConcat = config.bidirectional ? (0..<L).map { _ in FloatBuffer(count: S * B * D) } : []
        encoderFinalH = (0..<L).map { _ in (0..<config.directions).map { _ in FloatBuffer(count: B * H) } }
        encoderFinalC = (0..<L).map { _ in (0..<config.directions).map { _ in FloatBuffer(count: hasC ? B * H : 0) } }
        zeroH = FloatBuffer(count: B * H)
        zeroC = hasC ? FloatBuffer(count: B * H) : nil
        sourceActive = AlignedBuffer<Int>(count: S)
        let keyed = config.attention == .general || config.attention == .additive
        keys = FloatBuffer(count: keyed ? S * B * H : 0)
        bridgeInputs = (0..<L).map { _ in FloatBuffer(count: bridged ? B * D : 0) }
        initialH = (0..<L).map { _ in FloatBuffer(count: B * H) }
        initialC = (0..<L).map { _ in FloatBuffer(count: hasC ? B * H : 0) }

        targetInputs = FloatBuffer(count: T * B * I)
        fedTokens = AlignedBuffer<Int32>(count: T * B)
        sourceIds = AlignedBuffer<Int32>(count: S * B)
        targets = AlignedBuffer<Int32>(count: T * B)
        stepTop = FloatBuffer(count: T * B * H)
        stepH = (0..<L).map { _ in FloatBuffer(count: (T + 1) * B * H) }
        stepC = (0..<L).map { _ in FloatBuffer(count: hasC ? (T + 1) * B * H : 0) }
        scratchFinalH = FloatBuffer(count: B * H)
        scratchFinalC = hasC ? FloatBuffer(count: B * H) : nil
        head = DecoderHeadWorkspace(config: config, rows: T * B, sourceSteps: S)

        let hasAttention = config.attention != .none
        dAttentional = FloatBuffer(count: T * B * H)
        dConcat = FloatBuffer(count: hasAttention ? T * B * (D + H) : 0)
        dWeights = FloatBuffer(count: hasAttention ? T * B * S : 0)
        dTop = FloatBuffer(count: T * B * H)
        dQuery = FloatBuffer(count: config.attention == .additive ? T * B * H : 0)
        dDecoderA = FloatBuffer(count: T * B * max(I, H))
        dDecoderB = FloatBuffer(count: T * B * max(I, H))
        dMemory = FloatBuffer(count: S * B * max(E, D))
        dKeys = FloatBuffer(count: keyed ? S * B * H : 0)
        dEncoderA = FloatBuffer(count: S * B * max(E, D))
        dForwardHalf = FloatBuffer(count: config.bidirectional ? S * B * H : 0)
        dReverseHalf = FloatBuffer(count: config.bidirectional ? S * B * H : 0)
        dInitialH = (0..<L).map { _ in FloatBuffer(count: B * H) }
        dInitialC = (0..<L).map { _ in FloatBuffer(count: hasC ? B * H : 0) }
        dEncoderFinal = (0..<L).map { _ in (0..<config.directions).map { _ in FloatBuffer(count: B * H) } }
        dBridgeInput = FloatBuffer(count: B * D)
        dCarryH = (0..<L).map { _ in [FloatBuffer(count: B * H), FloatBuffer(count: B * H)] }
        dCarryC = (0..<L).map { _ in [FloatBuffer(count: hasC ? B * H : 0), FloatBuffer(count: hasC ? B * H : 0)] }
        dFeed = FloatBuffer(count: B * H)
    }

    /// A fresh arena laid out for `config` and initialised from `seed` (pytorch scheme: embeddings
    /// N(0, 1), everything else U(−1/√H, 1/√H); or uniform(a); forget-gate bias): identical for the
    /// same seed.
    public convenience init(config: Seq2SeqModelConfig, seed: UInt64, maxSourceSteps: Int, maxTargetSteps: Int,
                            maxBatch: Int) {
        precondition(config.problem() == nil, config.problem() ?? "")
        let arena = ParameterArena(layout: .seq2seqModel(config))
        Initializer.initialize(arena, cell: config.cell, hiddenSize: config.hiddenSize, scheme: config.initScheme,
                               forgetGateBias: config.forgetGateBias, seed: seed)
        self.init(config: config, arena: arena, maxSourceSteps: maxSourceSteps, maxTargetSteps: maxTargetSteps,
                  maxBatch: maxBatch)
    }

    // MARK: encoder

    /// The encoder's top outputs (S, B, D) of the last `encode`.
    var encoderOutputs: UnsafePointer<Float> {
        UnsafePointer(config.bidirectional ? encoderConcat[config.layers - 1].pointer
                                           : encoderLayers[config.layers - 1][0].output)
    }

    /// Runs the encoder over a batch sorted by length (non-increasing, each in 1...S), fills the
    /// decoder's initial states (bridge) and the attention keys; returns the attention memory.
    @discardableResult
    func encode(source: UnsafePointer<Int32>, lengths: [Int], steps S: Int, batch B: Int) -> AttentionMemory {
        precondition(S >= 1 && S <= maxSourceSteps, "source of \(S) steps outside 1...\(maxSourceSteps)")
        precondition(B >= 1 && B <= maxBatch, "batch of \(B) outside 1...\(maxBatch)")
        precondition(lengths.count == B, "\(lengths.count) source lengths for a batch of \(B)")
        for i in 0..<B {
            precondition(lengths[i] >= 1 && lengths[i] <= S, "source length \(lengths[i]) outside 1...\(S)")
            precondition(i == 0 || lengths[i] <= lengths[i - 1], "source lengths must be non-increasing")
        }
        let E = config.embeddingSize, H = config.hiddenSize, D = config.encoderWidth, L = config.layers
        countActiveRows(lengths, steps: S, into: sourceActive)
        let layerLengths: [Int]? = lengths[B - 1] < S ? lengths : nil
        // Source embeddings; padded positions are zeros and their ids are never read.
        let table = arena.parameters(encoderEmbedding)
        for t in 0..<S {
            let row = sourceInputs.pointer + t * B * E, bt = sourceActive[t]
            EmbeddingKernels.forward(row, table: table, tokens: source + t * B, count: bt,
                                     vocab: config.sourceVocabSize, width: E)
            (row + bt * E).update(repeating: 0, count: (B - bt) * E)
        }
        var x = UnsafePointer(sourceInputs.pointer)
        for k in 0..<L {
            for (d, layer) in encoderLayers[k].enumerated() {
                layer.forward(input: x, steps: S, batch: B, lengths: layerLengths,
                              initial: LayerState(h: zeroH.pointer, c: zeroC?.pointer),
                              final: LayerState(h: encoderFinalH[k][d].pointer,
                                                c: config.cell.hasCellState ? encoderFinalC[k][d].pointer : nil))
            }
            if config.bidirectional {
                let out = encoderConcat[k].pointer
                let f = encoderLayers[k][0].output, r = encoderLayers[k][1].output
                for row in 0..<(S * B) {
                    (out + row * D).update(from: f + row * H, count: H)
                    (out + row * D + H).update(from: r + row * H, count: H)
                }
                x = UnsafePointer(out)
            } else {
                x = UnsafePointer(encoderLayers[k][0].output)
            }
        }
        // Bridge: h_0 = tanh(W [fwd final; bwd final] + b) per layer, c_0 = 0; or zeros.
        for k in 0..<L {
            if config.cell.hasCellState { initialC[k].pointer.update(repeating: 0, count: B * H) }
            guard config.bridge == .tanh else {
                initialH[k].pointer.update(repeating: 0, count: B * H)
                continue
            }
            let input = bridgeInputs[k].pointer
            for i in 0..<B {
                for d in 0..<config.directions {
                    (input + i * D + d * H).update(from: encoderFinalH[k][d].pointer + i * H, count: H)
                }
            }
            let h = initialH[k].pointer
            RowKernels.broadcastRows(h, bias: arena.parameters(bridgeBiases[k]), rows: B, cols: H)
            BLAS.sgemm(transB: true, m: B, n: H, k: D, a: input, lda: D, b: arena.parameters(bridgeWeights[k]), ldb: D,
                       beta: 1, c: h, ldc: H)
            Activations.tanh(h, h, count: B * H)
        }
        // Keys for all S·B positions in one GEMM.
        let values = encoderOutputs
        var keyPointer = values, keyWidth = D
        if let w = attentionWeight ?? keyWeight {
            BLAS.sgemm(transB: true, m: S * B, n: H, k: D, a: values, lda: D, b: arena.parameters(w), ldb: D,
                       beta: 0, c: keys.pointer, ldc: H)
            keyPointer = UnsafePointer(keys.pointer)
            keyWidth = H
        }
        return AttentionMemory(values: values, keys: keyPointer, keyWidth: keyWidth, lengths: lengths, steps: S, batch: B)
    }

    // MARK: training forward

    /// Teacher-forced forward with the loss. Time-major: `source` (S, B) ids, rows sorted by
    /// `sourceLengths` non-increasing (each in 1...S; ids at padded positions are never read);
    /// `targetInput` (T, B) = <bos> y1 … y_{n−1}, `targetOutput` (T, B) = y1 … y_n <eos>;
    /// `targetLengths` (B, any order, each in 0...T): positions t ≥ length are padding (no loss, ids
    /// never read, nothing reaches a result).
    /// - feedPrediction: if non-nil, called for every valid position t ≥ 1 of every row; when it
    ///   returns true the decoder input at t is the argmax of the model's own output at t−1 instead
    ///   of `targetInput` (scheduled sampling; the choice is a constant for backward). nil = pure
    ///   teacher forcing.
    /// - Returns: the cross-entropy sum over valid target positions (Double), their count and the
    ///   number of positions whose argmax equals the target.
    /// Inputs are copied: the pointers need to be valid only during the call.
    /// Without input feeding and feedPrediction, each decoder layer runs over all T steps in one call
    /// and attention, combine and output run over all T·B rows at once; otherwise the decoder runs
    /// step by step (see Seq2Seq.md). Greedy, beam search and sampling invalidate the forward.
    public func forward(source: UnsafePointer<Int32>, sourceLengths: [Int], sourceSteps: Int,
                        targetInput: UnsafePointer<Int32>, targetOutput: UnsafePointer<Int32>,
                        targetLengths: [Int], targetSteps: Int, batch: Int,
                        feedPrediction: ((_ row: Int, _ t: Int) -> Bool)? = nil) -> (lossSum: Double, count: Int, correct: Int) {
        let T = targetSteps, B = batch, V = config.targetVocabSize
        precondition(T >= 1 && T <= maxTargetSteps, "target of \(T) steps outside 1...\(maxTargetSteps)")
        precondition(targetLengths.count == B, "\(targetLengths.count) target lengths for a batch of \(B)")
        for n in targetLengths { precondition(n >= 0 && n <= T, "target length \(n) outside 0...\(T)") }
        let memory = encode(source: source, lengths: sourceLengths, steps: sourceSteps, batch: B)
        self.sourceSteps = memory.steps
        self.targetSteps = T
        self.batch = B
        self.sourceLengths = sourceLengths
        self.targetLengths = targetLengths
        for t in 0..<memory.steps {
            for b in 0..<B { sourceIds[t * B + b] = t < sourceLengths[b] ? source[t * B + b] : -1 }
        }
        for t in 0..<T {
            for b in 0..<B {
                let valid = t < targetLengths[b]
                fedTokens[t * B + b] = valid ? targetInput[t * B + b] : -1
                let y = targetOutput[t * B + b]
                if valid { precondition(y >= 0 && Int(y) < V, "target id \(y) outside 0..<\(V)") }
                targets[t * B + b] = valid ? y : -1
            }
        }
        usedStepPath = config.inputFeeding || feedPrediction != nil
        if usedStepPath {
            forwardSteps(memory: memory, feedPrediction: feedPrediction)
        } else {
            forwardBatched(memory: memory)
        }
        // Correct argmax predictions, then the loss with its gradient (scale 1) in place.
        let logits = head.logits.pointer
        var correct = 0
        for r in 0..<(T * B) where targets[r] >= 0 {
            if argmax(logits + r * V, count: V) == Int(targets[r]) { correct += 1 }
        }
        let (lossSum, count) = SoftmaxCrossEntropy.forwardBackward(dLogits: logits, logits: logits,
                                                                   targets: targets.pointer, rows: T * B, vocab: V,
                                                                   gradScale: 1)
        forwardDone = true
        return (lossSum, count, correct)
    }

    /// Fills the embedding part (first E of `width` columns) of rows [0, n) of `x` from `tokens`
    /// (−1 = zero vector).
    func embedTargets(_ x: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>, count n: Int, width: Int) {
        let E = config.embeddingSize, V = config.targetVocabSize, table = arena.parameters(decoderEmbedding)
        for r in 0..<n {
            let id = Int(tokens[r]), row = x + r * width
            if id < 0 {
                row.update(repeating: 0, count: E)
            } else {
                precondition(id < V, "target input id \(id) outside 0..<\(V)")
                row.update(from: table + id * E, count: E)
            }
        }
    }

    /// Decoder over all T steps per layer, then the head over all T·B rows.
    private func forwardBatched(memory: AttentionMemory) {
        let T = targetSteps, B = batch, I = config.decoderInputSize(ofLayer: 0)
        embedTargets(targetInputs.pointer, tokens: fedTokens.pointer, count: T * B, width: I)
        var x = UnsafePointer(targetInputs.pointer)
        for (k, layer) in decoderLayers.enumerated() {
            layer.forward(input: x, steps: T, batch: B, lengths: nil,
                          initial: LayerState(h: initialH[k].pointer, c: config.cell.hasCellState ? initialC[k].pointer : nil),
                          final: LayerState(h: scratchFinalH.pointer, c: scratchFinalC?.pointer))
            x = UnsafePointer(layer.output)
        }
        headForward(head, rows: 0..<(T * B), top: x, memory: memory, logits: true)
    }

    /// The top decoder outputs (T, B, H) of the last forward.
    var decoderTop: UnsafeMutablePointer<Float> {
        usedStepPath ? stepTop.pointer : decoderLayers[config.layers - 1].output
    }

    /// Step-by-step decoder: input feeding and/or scheduled sampling.
    private func forwardSteps(memory: AttentionMemory, feedPrediction: ((_ row: Int, _ t: Int) -> Bool)?) {
        let T = targetSteps, B = batch, H = config.hiddenSize, E = config.embeddingSize, V = config.targetVocabSize
        let I = config.decoderInputSize(ofLayer: 0), L = config.layers, hasC = config.cell.hasCellState
        while stepLayers.count < T {
            stepLayers.append((0..<L).map { k in
                RecurrentLayers.make(cell: config.cell, index: k, inputSize: config.decoderInputSize(ofLayer: k),
                                     hiddenSize: H, arena: arena, maxSteps: 1, maxBatch: maxBatch, prefix: "decoder.")
            })
        }
        for k in 0..<L {
            stepH[k].pointer.update(from: initialH[k].pointer, count: B * H)
            if hasC { stepC[k].pointer.update(from: initialC[k].pointer, count: B * H) }
        }
        let logits = head.logits.pointer
        for t in 0..<T {
            // Scheduled sampling: the model's own argmax at t−1 replaces the teacher's token.
            if t >= 1, let feedPrediction {
                for b in 0..<B where t < targetLengths[b] && feedPrediction(b, t) {
                    fedTokens[t * B + b] = Int32(argmax(logits + ((t - 1) * B + b) * V, count: V))
                }
            }
            let x = targetInputs.pointer + t * B * I
            embedTargets(x, tokens: fedTokens.pointer + t * B, count: B, width: I)
            if config.inputFeeding {
                let previous = t == 0 ? nil : attentionalOutput(rows: (t - 1) * B)
                for b in 0..<B {
                    let dst = x + b * I + E
                    if let previous { dst.update(from: previous + b * H, count: H) } else { dst.update(repeating: 0, count: H) }
                }
            }
            var input = UnsafePointer(x)
            for k in 0..<L {
                let layer = stepLayers[t][k]
                layer.forward(input: input, steps: 1, batch: B, lengths: nil,
                              initial: LayerState(h: stepH[k].pointer + t * B * H, c: hasC ? stepC[k].pointer + t * B * H : nil),
                              final: LayerState(h: stepH[k].pointer + (t + 1) * B * H,
                                                c: hasC ? stepC[k].pointer + (t + 1) * B * H : nil))
                input = UnsafePointer(layer.output)
            }
            (stepTop.pointer + t * B * H).update(from: input, count: B * H)
            headForward(head, rows: (t * B)..<((t + 1) * B), top: stepTop.pointer, memory: memory,
                        logits: feedPrediction != nil)
        }
        if feedPrediction == nil {
            outputForward(head, rows: 0..<(T * B), top: stepTop.pointer)
        }
    }

    /// h̃ rows starting at `r0` of the training head (or the top outputs without attention).
    private func attentionalOutput(rows r0: Int) -> UnsafePointer<Float> {
        let H = config.hiddenSize
        return UnsafePointer(config.attention == .none ? stepTop.pointer + r0 * H : head.attentional.pointer + r0 * H)
    }

    /// Attention and combine over `rows` (a block of whole time steps: rows t·B ..< t'·B) of
    /// `top` (rows, H); then the output layer if `logits`.
    func headForward(_ ws: DecoderHeadWorkspace, rows: Range<Int>, top: UnsafePointer<Float>, memory: AttentionMemory,
                     logits: Bool) {
        if config.attention != .none {
            let B = memory.batch, H = config.hiddenSize, D = config.encoderWidth
            attentionForward(ws, firstStep: rows.lowerBound / B, steps: rows.count / B, query: top, memory: memory)
            // h̃ = tanh(W_c [c; h]) over the rows in one GEMM.
            let r0 = rows.lowerBound, n = rows.count
            let out = ws.attentional.pointer + r0 * H
            BLAS.sgemm(transB: true, m: n, n: H, k: D + H, a: ws.concat.pointer + r0 * (D + H), lda: D + H,
                       b: arena.parameters(combineWeight!), ldb: D + H, beta: 0, c: out, ldc: H)
            Activations.tanh(out, out, count: n * H)
        }
        if logits { outputForward(ws, rows: rows, top: top) }
    }

    /// logits (rows, V) = h̃ W_oᵀ + b_o over `rows` in one GEMM.
    func outputForward(_ ws: DecoderHeadWorkspace, rows: Range<Int>, top: UnsafePointer<Float>) {
        let H = config.hiddenSize, V = config.targetVocabSize, r0 = rows.lowerBound, n = rows.count
        let input = config.attention == .none ? top + r0 * H : UnsafePointer(ws.attentional.pointer + r0 * H)
        let out = ws.logits.pointer + r0 * V
        RowKernels.broadcastRows(out, bias: arena.parameters(outputBias), rows: n, cols: V)
        BLAS.sgemm(transB: true, m: n, n: V, k: H, a: input, lda: H, b: arena.parameters(outputWeight), ldb: H,
                   beta: 1, c: out, ldc: V)
    }

    // MARK: training backward

    /// Backward of the last forward: ADDS d(lossSum · scale)/dθ into `arena.gradients`.
    /// - gradientsReady: called with an arena offset once every gradient from it to the end of the
    ///   arena is final, in decreasing order (output layer first, the last call at offset 0).
    public func backward(scale: Float = 1, gradientsReady: ((_ offset: Int) -> Void)? = nil) {
        precondition(forwardDone, "backward before forward")
        forwardDone = false
        let T = targetSteps, B = batch, V = config.targetVocabSize, H = config.hiddenSize
        let rows = T * B, D = config.encoderWidth, S = sourceSteps
        let dLogits = head.logits.pointer
        if scale != 1 { RowKernels.scale(dLogits, by: scale, count: rows * V) }
        let top = UnsafePointer(decoderTop)
        // Output layer: db += Σ rows, dW_o += dLogitsᵀ·h̃, dh̃ = dLogits·W_o — GEMMs over all T·B rows.
        let readoutInput = config.attention == .none ? top : UnsafePointer(head.attentional.pointer)
        RowKernels.accumulateColumnSums(arena.gradients(outputBias), dLogits, rows: rows, cols: V)
        BLAS.sgemm(transA: true, m: V, n: H, k: rows, a: dLogits, lda: V, b: readoutInput, ldb: H, beta: 1,
                   c: arena.gradients(outputWeight), ldc: H)
        BLAS.sgemm(m: rows, n: H, k: V, a: dLogits, lda: V, b: arena.parameters(outputWeight), ldb: H, beta: 0,
                   c: dAttentional.pointer, ldc: H)
        gradientsReady?(outputWeight.offset)

        dMemory.pointer.update(repeating: 0, count: S * B * D)
        if config.attention == .general || config.attention == .additive {
            dKeys.pointer.update(repeating: 0, count: S * B * H)
        }
        let memory = currentMemory()
        if usedStepPath {
            backwardSteps(memory: memory)
        } else {
            backwardBatched(memory: memory, gradientsReady: gradientsReady)
        }
        if let combineWeight { gradientsReady?(combineWeight.offset) }
        finishAttentionBackward(memory: memory, top: top, rows: rows, dTopDone: usedStepPath)
        if let first = attentionWeight ?? queryWeight { gradientsReady?(first.offset) }

        if !usedStepPath {
            // Decoder stack, from the top: one backward per layer over all T steps.
            var dOut = dTop.pointer, dNext = dDecoderA.pointer
            for k in stride(from: config.layers - 1, through: 0, by: -1) {
                let layer = decoderLayers[k]
                layer.hooks = BackwardHooks(gradientsReady: gradientsReady)
                defer { layer.hooks = BackwardHooks() }
                layer.backward(dOutput: dOut, dFinal: nil, dInput: dNext,
                               dInitial: LayerState(h: dInitialH[k].pointer,
                                                    c: config.cell.hasCellState ? dInitialC[k].pointer : nil))
                gradientsReady?(layer.firstParameterOffset)
                dOut = dNext
                dNext = dNext == dDecoderA.pointer ? dDecoderB.pointer : dDecoderA.pointer
            }
            scatterTargetEmbedding(dOut, rows: 0..<rows, width: config.decoderInputSize(ofLayer: 0))
        } else {
            gradientsReady?(arena.view("decoder.rnn.weight_ih_l0").offset)
        }
        gradientsReady?(decoderEmbedding.offset)

        // Bridge: dpre = dh_0 ⊙ (1 − h_0²); dW += dpreᵀ·input; db += Σ rows; dInput = dpre·W (c_0 = 0 is constant).
        let bridged = config.bridge == .tanh
        if bridged {
            for k in stride(from: config.layers - 1, through: 0, by: -1) {
                let dh = dInitialH[k].pointer, h = initialH[k].pointer
                Activations.tanhBackward(dh, dy: dh, y: h, count: B * H)
                RowKernels.accumulateColumnSums(arena.gradients(bridgeBiases[k]), dh, rows: B, cols: H)
                BLAS.sgemm(transA: true, m: H, n: D, k: B, a: dh, lda: H, b: bridgeInputs[k].pointer, ldb: D, beta: 1,
                           c: arena.gradients(bridgeWeights[k]), ldc: D)
                BLAS.sgemm(m: B, n: D, k: H, a: dh, lda: H, b: arena.parameters(bridgeWeights[k]), ldb: D, beta: 0,
                           c: dBridgeInput.pointer, ldc: D)
                for i in 0..<B {
                    for d in 0..<config.directions {
                        (dEncoderFinal[k][d].pointer + i * H).update(from: dBridgeInput.pointer + i * D + d * H, count: H)
                    }
                }
            }
            gradientsReady?(bridgeWeights[0].offset)
        }
        if config.attention != .none || bridged {
            encoderBackward(bridged: bridged, gradientsReady: gradientsReady)
        }
        gradientsReady?(0)
    }

    /// The attention memory of the last forward's encoder pass.
    func currentMemory() -> AttentionMemory {
        let keyed = config.attention == .general || config.attention == .additive
        return AttentionMemory(values: encoderOutputs, keys: keyed ? UnsafePointer(keys.pointer) : encoderOutputs,
                               keyWidth: keyed ? config.hiddenSize : config.encoderWidth, lengths: sourceLengths,
                               steps: sourceSteps, batch: batch)
    }

    /// Combine backward over `rows` (whole steps): dW_c is left for later (it needs all rows);
    /// dConcat = (dh̃ ⊙ (1 − h̃²))·W_c; the pre-activation gradient stays in `dAttentional`.
    private func combineBackward(rows: Range<Int>) {
        let H = config.hiddenSize, D = config.encoderWidth, r0 = rows.lowerBound, n = rows.count
        let d = dAttentional.pointer + r0 * H
        Activations.tanhBackward(d, dy: d, y: head.attentional.pointer + r0 * H, count: n * H)
        BLAS.sgemm(m: n, n: D + H, k: H, a: d, lda: H, b: arena.parameters(combineWeight!), ldb: D + H, beta: 0,
                   c: dConcat.pointer + r0 * (D + H), ldc: D + H)
    }

    /// The batched decoder head backward: combine and attention over all rows into dTop.
    private func backwardBatched(memory: AttentionMemory, gradientsReady: ((_ offset: Int) -> Void)?) {
        let rows = targetSteps * batch, H = config.hiddenSize
        if config.attention == .none {
            dTop.pointer.update(from: dAttentional.pointer, count: rows * H)
            return
        }
        combineBackward(rows: 0..<rows)
        combineWeightGradient(rows: rows)
        attentionBackward(head, firstStep: 0, steps: targetSteps, query: UnsafePointer(decoderTop), memory: memory)
    }

    /// dW_c += dPreᵀ·[c; h] over all rows.
    private func combineWeightGradient(rows: Int) {
        guard let combineWeight else { return }
        let H = config.hiddenSize, D = config.encoderWidth
        BLAS.sgemm(transA: true, m: H, n: D + H, k: rows, a: dAttentional.pointer, lda: H, b: head.concat.pointer,
                   ldb: D + H, beta: 1, c: arena.gradients(combineWeight), ldc: D + H)
    }

    /// Step-by-step decoder backward (input feeding / scheduled sampling), from t = T−1 down to 0.
    private func backwardSteps(memory: AttentionMemory) {
        let T = targetSteps, B = batch, H = config.hiddenSize, E = config.embeddingSize, L = config.layers
        let I = config.decoderInputSize(ofLayer: 0), hasC = config.cell.hasCellState
        let BH = B * H
        for k in 0..<L {
            dCarryH[k][0].pointer.update(repeating: 0, count: BH)
            if hasC { dCarryC[k][0].pointer.update(repeating: 0, count: BH) }
        }
        var current = 0
        dFeed.pointer.update(repeating: 0, count: BH)
        for t in stride(from: T - 1, through: 0, by: -1) {
            let rows = (t * B)..<((t + 1) * B)
            let dh̃ = dAttentional.pointer + t * BH
            if config.inputFeeding { RowKernels.add(dh̃, dFeed.pointer, count: BH) }
            let dTopT = dTop.pointer + t * BH
            if config.attention == .none {
                dTopT.update(from: dh̃, count: BH)
            } else {
                combineBackward(rows: rows)
                attentionBackward(head, firstStep: t, steps: 1, query: UnsafePointer(stepTop.pointer), memory: memory)
                if config.attention == .additive {
                    // dh_t += dQ_t·W_q (W_q's own gradient is one GEMM over all rows later).
                    BLAS.sgemm(m: B, n: H, k: H, a: dQuery.pointer + t * BH, lda: H,
                               b: arena.parameters(queryWeight!), ldb: H, beta: 1, c: dTopT, ldc: H)
                }
            }
            var dOut = dTopT, dNext = dDecoderA.pointer
            let next = 1 - current
            for k in stride(from: L - 1, through: 0, by: -1) {
                let layer = stepLayers[t][k]
                layer.backward(dOutput: dOut, dFinal: LayerState(h: dCarryH[k][current].pointer,
                                                                 c: hasC ? dCarryC[k][current].pointer : nil),
                               dInput: dNext,
                               dInitial: LayerState(h: dCarryH[k][next].pointer, c: hasC ? dCarryC[k][next].pointer : nil))
                dOut = dNext
                dNext = dNext == dDecoderA.pointer ? dDecoderB.pointer : dDecoderA.pointer
            }
            current = next
            // dOut: (B, I) ∂L/∂x_t: embedding part, and ∂L/∂h̃_{t−1} from input feeding.
            scatterTargetEmbedding(dOut, rows: rows, width: I)
            if config.inputFeeding {
                for b in 0..<B { (dFeed.pointer + b * H).update(from: dOut + b * I + E, count: H) }
            }
        }
        for k in 0..<L {
            dInitialH[k].pointer.update(from: dCarryH[k][current].pointer, count: BH)
            if hasC { dInitialC[k].pointer.update(from: dCarryC[k][current].pointer, count: BH) }
        }
        combineWeightGradient(rows: T * B)
    }

    /// dTable[token] += dx[:, :E] for the valid positions of `rows`; dx (rows, width).
    private func scatterTargetEmbedding(_ dx: UnsafePointer<Float>, rows: Range<Int>, width: Int) {
        let E = config.embeddingSize, table = arena.gradients(decoderEmbedding)
        for (i, r) in rows.enumerated() {
            let id = Int(fedTokens[r])
            guard id >= 0 else { continue }
            let row = table + id * E, d = dx + i * width
            for j in 0..<E { row[j] += d[j] }
        }
    }

    /// Encoder backward from dMemory (S, B, D) and the bridge's final-state gradients.
    private func encoderBackward(bridged: Bool, gradientsReady: ((_ offset: Int) -> Void)?) {
        let S = sourceSteps, B = batch, H = config.hiddenSize, D = config.encoderWidth, E = config.embeddingSize
        let L = config.layers, rows = S * B
        countActiveRows(sourceLengths, steps: S, into: sourceActive)
        // dMemory and dEncoderA alternate as the output and input gradients of each layer.
        var dOut = dMemory.pointer, dNext = dEncoderA.pointer
        // Padded positions carry no gradient (masked attention gives exact zeros; keep it explicit).
        for t in 0..<S {
            let bt = sourceActive[t]
            (dOut + (t * B + bt) * D).update(repeating: 0, count: (B - bt) * D)
        }
        for k in stride(from: L - 1, through: 0, by: -1) {
            func run(_ d: Int, dOutput: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>) {
                let layer = encoderLayers[k][d]
                layer.hooks = BackwardHooks(gradientsReady: gradientsReady)
                defer { layer.hooks = BackwardHooks() }
                layer.backward(dOutput: dOutput, dFinal: bridged ? LayerState(h: dEncoderFinal[k][d].pointer, c: nil) : nil,
                               dInput: dInput, dInitial: nil)
                gradientsReady?(layer.firstParameterOffset)
            }
            if config.bidirectional {
                // (S, B, 2H) → two (S, B, H) halves; dOut is then free to take the forward half's dInput.
                let dF = dForwardHalf.pointer, dR = dReverseHalf.pointer
                for r in 0..<rows {
                    (dF + r * H).update(from: dOut + r * D, count: H)
                    (dR + r * H).update(from: dOut + r * D + H, count: H)
                }
                run(1, dOutput: dR, dInput: dNext)
                run(0, dOutput: dF, dInput: dOut)
                RowKernels.add(dNext, dOut, count: rows * config.encoderInputSize(ofLayer: k))
            } else {
                run(0, dOutput: dOut, dInput: dNext)
            }
            swap(&dOut, &dNext)
        }
        let table = arena.gradients(encoderEmbedding)
        for t in 0..<S {
            EmbeddingKernels.backward(dTable: table, dOut: dOut + t * B * E, tokens: sourceIds.pointer + t * B,
                                      count: sourceActive[t], width: E)
        }
    }
}

/// Index of the first maximum of x (count ≥ 1).
@inline(__always)
func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
    var best = 0, value = x[0]
    for j in 1..<max(count, 1) where x[j] > value {
        value = x[j]
        best = j
    }
    return best
}
