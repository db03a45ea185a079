// Everything that defines a training run. Codable: rank 0 prints it resolved at start, every rank
// checks it is identical across ranks, and every checkpoint stores it as JSON.
import UnrollModels

/// How gradients are clipped.
public enum ClipMode: String, Codable, CaseIterable, Sendable {
    /// Rescale the whole gradient when its global L2 norm exceeds the threshold (Pascanu et al. 2013).
    case norm
    /// Clamp every element to [−clip, clip] (Mikolov 2012).
    case value
}

/// What the gradient is the gradient of.
public enum LossNormalization: String, Codable, CaseIterable, Sendable {
    /// Mean loss per target token over the global batch (PyTorch's `word_language_model`).
    case token
    /// Loss summed over the window's time steps, averaged over the global streams (Zaremba et al.
    /// 2014's TensorFlow code: `cost = reduce_sum(loss) / batch_size`). Gradients are T times those
    /// of `token`, so their "lr 1, clip 5" equals lr T, clip 5/T per token.
    case stream
}

/// A complete training configuration.
public struct TrainingConfig: Codable, Equatable, Sendable {
    // Data
    /// Dataset file (format unroll.dataset v1).
    public var data: String
    /// Global number of streams B (split across ranks; must divide by the world size).
    public var batchSize: Int = 32
    /// Truncated-BPTT window T.
    public var bptt: Int = 35
    /// Streams of the evaluation layout (fixed, so the result does not depend on the world size).
    public var evalStreams: Int = 8

    // Model
    /// The recurrent stack (cell, sizes, dropout, initialisation). For a language model the
    /// vocabulary size is the dataset's; for a sequence task with float inputs it is 0.
    public var model: ModelConfig
    /// Sequence classification, regression or tagging (dataset layout `sequences`); nil for a
    /// language model (dataset layout `tokens`).
    public var sequence: SequenceTaskConfig?
    /// Encoder–decoder (dataset layout `pairs`); nil for other tasks.
    public var seq2seq: Seq2SeqTaskConfig?
    /// Recursive network over trees (dataset layout `trees`); nil for other tasks.
    public var trees: TreeTaskConfig?

    // Optimisation
    public var optimizer = OptimizerConfig()
    public var learningRate: Double = 1
    public var schedule: LRSchedule = .constant
    public var clip: Double = 5
    public var clipMode: ClipMode = .norm
    public var lossNormalization: LossNormalization = .token
    /// λ of the flow regulariser (`--flow-reg`; Pascanu, Mikolov & Bengio 2013 eq. 9, Deep Learning
    /// eq. 10.16): λ·Ω joins the summed loss, Ω = Σ over rows and steps of
    /// (‖(∂L/∂h_t) ∂h_t/∂h_{t−1}‖ / ‖∂L/∂h_t‖ − 1)², ∂L/∂h_t held constant. Sequence tasks with an
    /// Elman cell and one layer. Nil: off (and absent from older checkpoints).
    public var flowReg: Float?
    /// Stop with an error after this many consecutive steps whose gradient norm is NaN or Inf.
    public var maxConsecutiveSkips: Int = 10
    /// Epochs to train (used when `steps` is nil).
    public var epochs: Int = 1
    /// Total optimizer steps of the run counted from step 0 (a resumed run continues up to it).
    public var steps: Int?
    public var seed: UInt64 = 1

    // Bookkeeping
    /// Evaluate on the validation split every N steps (0: at the end of every epoch only).
    public var evalEvery: Int = 0
    /// Print a progress line every N steps.
    public var logEvery: Int = 20
    public var checkpointDir: String?
    /// Write a checkpoint every N steps (0: at epoch ends and at the end only).
    public var checkpointEvery: Int = 0
    /// Number of recent checkpoints kept (the best one is kept as well).
    public var keep: Int = 3
    /// JSON-lines metrics file (rank 0).
    public var metrics: String?
    /// Directory of TensorBoard event files (rank 0; created if needed).
    public var tensorboard: String?

    // Distributed
    /// Gradient allreduce bucket size in bytes.
    public var bucketBytes: Int = 4 << 20
    /// Streams per reduction group (`--reduction-group`): the gradient is summed per group of
    /// consecutive streams and the groups are added by a fixed halving tree, so every world size
    /// that gives each rank a whole subtree trains the same bits. 0: no groups (each rank sums its
    /// own streams; results then depend on the number of ranks). Nil: 0 — but `unroll train`
    /// gives a new run `auto` where it fits (`adoptDefaultReductionGroup`).
    /// Language models and sequence tasks (where a group is g consecutive sequences of a batch).
    public var reductionGroup: Int?
    /// Micro-batches per optimizer step (`--accumulate K`): each rank runs its share of the global
    /// batch in K contiguous parts, one after the other (less activation memory), accumulating the
    /// gradient, then one reduction and one update: the same step as K = 1 up to summation order —
    /// bit for bit with reduction groups (language models; K a power of two dividing each rank's
    /// groups, the parts added by the halving tree). Nil: 1 (and checkpoints written before it
    /// existed decode).
    public var accumulate: Int?

    /// The number of micro-batches per step in effect.
    public var accumulation: Int { accumulate ?? 1 }

    /// The group size `--reduction-group auto` picks: B / gcd(B, 8), i.e. up to 8 groups, as many as the largest power
    /// of two dividing B allows — so np = 1, 2, 4, 8 train identically whenever they divide B.
    /// One stream per group (B groups) would allow every power of two dividing B; its weight
    /// gradients cost about what 8 groups cost (GroupedGEMM), but the readout then runs one GEMM of
    /// T rows per stream. See Sources/UnrollTraining/TrainingStep.md.
    public static func defaultReductionGroup(batchSize: Int) -> Int {
        var a = batchSize, b = 8
        while b != 0 { (a, b) = (b, a % b) }
        return batchSize / max(a, 1)
    }

    /// The group size in effect (0: none). Nil (a configuration written before groups existed, or
    /// built in code) means none; `unroll train` gives a new run `auto` unless told otherwise
    /// (`adoptDefaultReductionGroup`).
    public var effectiveReductionGroup: Int { reductionGroup ?? 0 }

    /// A new run given no `--reduction-group`: takes `auto` (`defaultReductionGroup`) where groups
    /// apply and `worldSize` ranks can hold whole subtrees of them, else 0. Returns why groups are
    /// off when a gradient-trained language model or sequence task goes without them (so results
    /// depend on the number of ranks in the last bits), for a notice; nil otherwise. Encoder–decoders,
    /// tree models and echo state networks never take groups (the latter sum exactly anyway).
    public mutating func adoptDefaultReductionGroup(worldSize: Int) -> String? {
        guard reductionGroup == nil else { return nil }
        reductionGroup = 0
        guard batchSize >= 1, seq2seq == nil, trees == nil, model.cell != .esn else { return nil }
        let g = Self.defaultReductionGroup(batchSize: batchSize), groups = batchSize / g
        if accumulation > 1 && sequence != nil {
            return "reduction groups off: --accumulate \(accumulation) excludes them on sequence tasks, so results differ "
                + "in the last bits with the number of ranks (--reduction-group 0 silences this)"
        }
        guard Self.ranksHoldSubtrees(groups: groups, worldSize: worldSize) else {
            return "reduction groups off: \(worldSize) ranks cannot share --batch-size \(batchSize)'s \(groups) groups "
                + "as whole subtrees (a power of two dividing \(groups) can), so results differ in the last bits "
                + "from other world sizes (--reduction-group 0 silences this)"
        }
        if accumulation > 1, Self.accumulationSplitProblem(parts: accumulation, groups: groups / worldSize) != nil {
            return "reduction groups off: --accumulate \(accumulation) cannot cut each rank's \(groups / worldSize) group(s) "
                + "into whole subtrees (a power of two dividing \(groups / worldSize) can), so results differ in the last bits "
                + "from other splits (--reduction-group 0 silences this)"
        }
        reductionGroup = g
        return nil
    }

    /// Why `worldSize` ranks cannot train with this configuration's reduction groups, or nil.
    public func reductionGroupProblem(worldSize: Int) -> String? {
        let g = effectiveReductionGroup
        guard g > 0, seq2seq == nil, trees == nil else { return nil }
        let groups = batchSize / g
        guard Self.ranksHoldSubtrees(groups: groups, worldSize: worldSize) else {
            return "--reduction-group \(g) cuts --batch-size \(batchSize) into \(groups) groups, which \(worldSize) ranks "
                + "cannot share as whole subtrees: the number of ranks must be a power of two dividing \(groups) "
                + "(or set --reduction-group 0: results then depend on the number of ranks)"
        }
        if accumulation > 1, sequence == nil, let why = Self.accumulationSplitProblem(parts: accumulation, groups: groups / worldSize) {
            return "--accumulate \(accumulation) with --reduction-group \(g): \(why) of each of \(worldSize) rank(s) "
                + "(or set --reduction-group 0)"
        }
        return nil
    }

    /// Whether `worldSize` ranks each hold a whole subtree of the halving tree over `groups` groups.
    static func ranksHoldSubtrees(groups: Int, worldSize: Int) -> Bool {
        groups % worldSize == 0 && worldSize & (worldSize - 1) == 0
    }

    /// Why K micro-batches cannot each be a whole subtree of `groups` consecutive groups (the
    /// trainer adds their gradients by the halving tree): K must be a power of two dividing them.
    static func accumulationSplitProblem(parts: Int, groups: Int) -> String? {
        if parts & (parts - 1) == 0 && groups % parts == 0 { return nil }
        return "each micro-batch must be a whole subtree of the halving tree, so K must be a power of two dividing the \(groups) group(s)"
    }

    public init(data: String, model: ModelConfig) {
        self.data = data
        self.model = model
    }

    /// Checks every value against its stated range; returns a one-line description of the first
    /// problem naming the option, or nil. NaN and infinities are out of every range.
    public func problem() -> String? {
        let m = model
        func finite<T: BinaryFloatingPoint>(_ v: T) -> Bool { v.isFinite }
        if m.hiddenSize < 1 { return "--hidden must be ≥ 1, got \(m.hiddenSize)" }
        // Float features go straight into the first layer: no embedding.
        if m.embeddingSize < 1 && sequence?.tokens != false { return "--embedding must be ≥ 1, got \(m.embeddingSize)" }
        if m.layers < 1 { return "--layers must be ≥ 1, got \(m.layers)" }
        if !(m.dropout >= 0 && m.dropout < 1) { return "--dropout must be in [0, 1), got \(m.dropout)" }
        if case .uniform(let a) = m.initScheme, !(a > 0 && finite(a)) {
            return "--init-range must be a finite number ≥ 0 (0: PyTorch's initialisation), got \(a)"
        }
        if trees == nil && m.cell.isTree {
            return "--cell \(m.cell.cliName) applies to tree datasets (layout trees); \(data) is not one"
        }
        if let trees {
            if let p = trees.problem(model: m, lossNormalization: lossNormalization) { return p }
        } else if let sequence {
            if let p = sequence.modelConfig(m).problem() { return p }
        } else if let seq2seq {
            if let p = seq2seq.problem(model: m, lossNormalization: lossNormalization) { return p }
        } else if let p = m.problem() {
            return p
        } else if m.skipSteps != nil {
            return "--skip-steps applies to sequence tasks (layout sequences): a language model's TBPTT windows carry one state, not the last max(d)"
        } else if m.cell == .clockwork {
            return "--cell clockwork applies to sequence tasks (layout sequences), where every sequence starts its clock at step 0"
        } else if m.cell == .esn {
            return "--cell esn applies to sequence tasks (layout sequences); \(data) holds a token stream"
        }
        if m.cell == .esn, sequence != nil {
            if m.dropout > 0 { return "--dropout applies to trained cells; an echo state network's reservoir is fixed (--cell esn)" }
            if accumulation != 1 { return "--accumulate applies to gradient training; --cell esn solves its readout in one pass" }
            if effectiveReductionGroup != 0 { return "--reduction-group applies to gradient training; --cell esn sums exactly at any world size" }
        }
        if batchSize < 1 { return "--batch-size must be ≥ 1, got \(batchSize)" }
        if bptt < 1 { return "--bptt must be ≥ 1, got \(bptt)" }
        if evalStreams < 1 { return "--eval-streams must be ≥ 1, got \(evalStreams)" }
        if !(learningRate > 0 && finite(learningRate)) { return "--lr must be a finite number > 0, got \(learningRate)" }
        if !(clip > 0 && finite(clip)) { return "--clip must be a finite number > 0, got \(clip)" }
        if !(optimizer.momentum >= 0 && optimizer.momentum < 1) { return "--momentum must be in [0, 1), got \(optimizer.momentum)" }
        if !(optimizer.weightDecay >= 0 && finite(optimizer.weightDecay)) {
            return "--weight-decay must be a finite number ≥ 0, got \(optimizer.weightDecay)"
        }
        switch schedule {
        case .constant: break
        case .stepDecay(let after, let factor):
            if after < 0 { return "--decay-after must be ≥ 0, got \(after)" }
            if !(factor > 0 && factor <= 1) { return "--lr-decay must be in (0, 1], got \(factor)" }
        case .plateau(let factor, let patience, let threshold):
            if !(factor > 0 && factor <= 1) { return "--lr-decay must be in (0, 1], got \(factor)" }
            if patience < 0 || !(threshold >= 0 && finite(threshold)) {
                return "plateau schedule: patience and threshold must be ≥ 0, got \(patience), \(threshold)"
            }
        case .cosine(let warmup, let total, let minFactor):
            if warmup < 0 { return "--warmup must be ≥ 0, got \(warmup)" }
            if total < 0 || !(minFactor >= 0 && minFactor <= 1) {
                return "cosine schedule: total steps must be ≥ 0 and the minimum factor in [0, 1], got \(total), \(minFactor)"
            }
        }
        if epochs < 1 { return "--epochs must be ≥ 1, got \(epochs)" }
        if let steps, steps < 1 { return "--steps must be ≥ 1, got \(steps)" }
        if evalEvery < 0 { return "--eval-every must be ≥ 0 (0: at each epoch end), got \(evalEvery)" }
        if logEvery < 1 { return "--log-every must be ≥ 1, got \(logEvery)" }
        if checkpointEvery < 0 { return "--checkpoint-every must be ≥ 0 (0: at epoch ends and the end), got \(checkpointEvery)" }
        if keep < 1 { return "--keep must be ≥ 1, got \(keep)" }
        if bucketBytes < 64 { return "--bucket-bytes must be ≥ 64, got \(bucketBytes)" }
        if effectiveReductionGroup != 0, seq2seq != nil || trees != nil {
            return "--reduction-group applies to language models and sequence tasks; "
                + "\(seq2seq != nil ? "encoder–decoders" : "tree models") sum their gradients without groups (set --reduction-group 0)"
        }
        if let g = reductionGroup, g < 0 || (g > 0 && batchSize % g != 0) {
            return "--reduction-group must be 0 or divide --batch-size \(batchSize), got \(g)"
        }
        if let k = accumulate {
            if k < 1 { return "--accumulate must be ≥ 1, got \(k)" }
            let g = effectiveReductionGroup
            if k > 1 && g > 0 && trees == nil {
                if sequence != nil {
                    return "--accumulate \(k) and --reduction-group \(g) exclude each other on sequence tasks (set --reduction-group 0)"
                }
                if let why = Self.accumulationSplitProblem(parts: k, groups: batchSize / g) {
                    return "--accumulate \(k) with --reduction-group \(g): \(why) of --batch-size \(batchSize) (or set --reduction-group 0)"
                }
            }
        }
        if maxConsecutiveSkips < 1 { return "--max-skips must be ≥ 1, got \(maxConsecutiveSkips)" }
        if let p = flowRegProblem() { return p }
        if let p = sequence?.problem(bptt: bptt, lossNormalization: lossNormalization, model: m) { return p }
        return nil
    }
}

extension TrainingConfig {
    /// Why `--flow-reg` cannot apply to this configuration, in one line, or nil.
    func flowRegProblem() -> String? {
        guard let lambda = flowReg else { return nil }
        if !(lambda >= 0 && lambda.isFinite) { return "--flow-reg must be a finite number ≥ 0, got \(lambda)" }
        if sequence == nil {
            return "--flow-reg applies to sequence tasks (dataset layout sequences); \(data) is not one"
        }
        if !model.cell.isElman {
            return "--flow-reg applies to the Elman cells (--cell rnn or rnn-relu), whose ∂h_t/∂h_{t−1} it regularises; the cell is \(model.cell.rawValue)"
        }
        if model.layers != 1 {
            return "--flow-reg needs --layers 1 (a lower layer's ∂L/∂h would carry the upper layer's regulariser), got \(model.layers)"
        }
        if let skips = model.skipSteps, !skips.isEmpty, lambda > 0 {
            return "--flow-reg regularises the one-step Jacobian ∂h_t/∂h_{t−1}; it does not run with --skip-steps"
        }
        return nil
    }

    /// Every default of a new run, declared once: the property initialisers above and these
    /// values are what `unroll train` resolves options not given to, and its help text is
    /// generated from them.
    public enum Defaults {
        /// The recurrent stack (the vocabulary size comes from the dataset; the embedding size
        /// follows `--hidden` unless given).
        public static let model = ModelConfig(cell: .lstm, vocabSize: 1, embeddingSize: 200, hiddenSize: 200, layers: 2,
                                              dropout: 0, initScheme: .pytorch, forgetGateBias: false)
        /// A configuration with every default (and no data file).
        public static let config = TrainingConfig(data: "", model: model)
        /// Decay factor of the step and plateau schedules.
        public static let lrDecay = 0.5
        /// Step schedule: last epoch at the base rate.
        public static let decayAfter = 4
        /// Cosine schedule: warm-up steps.
        public static let warmup = 0
        /// Sequence tasks: read each sequence backwards too.
        public static let bidirectional = false
        /// Sequence tasks with one target per sequence: what the head reads.
        public static let pool = PoolKind.last
        /// Sequence tasks with float features: standardise them with the train split's statistics.
        public static let normalize = true
        /// Encoder–decoder tasks: attention over the encoder states.
        public static let attention = AttentionKind.general
        /// Encoder–decoder tasks: the decoder's initial state.
        public static let bridge = BridgeKind.tanh
        /// Encoder–decoder tasks: Luong's input feeding.
        public static let inputFeeding = false
    }
}
