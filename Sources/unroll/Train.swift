// `unroll train`: builds a TrainingConfig from --config FILE (JSON or TOML) and command-line
// options (or, resuming, from the checkpoint with the options allowed there), installs one test
// hook from the environment (UNROLL_TEST_INJECT_NAN),
// prints it resolved (rank 0), and runs it on the ranks it was launched with.
import ArgumentParser
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels
import UnrollTraining

/// Cell names on the command line.
enum CellOption: String, ExpressibleByArgument, CaseIterable {
    case rnn, rnnRelu = "rnn-relu", lstm, gru, leaky, clockwork, jordan, esn, treeRNN = "tree-rnn", treeLSTM = "tree-lstm"
    var kind: CellKind {
        switch self {
        case .clockwork: .clockwork
        case .rnn: .rnnTanh
        case .rnnRelu: .rnnRelu
        case .lstm: .lstm
        case .gru: .gru
        case .leaky: .leaky
        case .jordan: .jordan
        case .esn: .esn
        case .treeRNN: .treeRNN
        case .treeLSTM: .treeLSTM
        }
    }
}

/// `--init` names (uniform takes its range from --init-range).
enum InitOption: String, ExpressibleByArgument, CaseIterable {
    case pytorch, uniform, identity, orthogonal
}

enum ScheduleOption: String, ExpressibleByArgument, CaseIterable { case constant, step, plateau, cosine }

extension OptimizerKind: ExpressibleByArgument {}
extension ClipMode: ExpressibleByArgument {}
extension LossNormalization: ExpressibleByArgument {}

/// The defaults every help text below names and `defaults()` resolves to (declared once, in
/// `TrainingConfig` and `TrainingConfig.Defaults`).
private typealias Defaults = TrainingConfig.Defaults
private let D = Defaults.config
private let M = Defaults.model

/// A default number as help shows it: 1, 0.5, 1e-08.
private func shown<F: BinaryFloatingPoint>(_ x: F) -> String { String(format: "%g", Double(x)) }

private func onOff(_ on: Bool) -> String { on ? "on" : "off" }

struct DataOptions: ParsableArguments {
    @Option(help: "Dataset file made by `unroll prepare` (required unless in --config).")
    var data: String?
    @Option(parsing: .unconditional, help: "Global number of streams B (sequence datasets: sequences per step), split across ranks (default \(D.batchSize)).")
    var batchSize: Int?
    @Option(parsing: .unconditional, help: "Micro-batches per optimizer step: each rank runs its share of the batch in K contiguous parts in turn (activation memory of one part), accumulating gradients, then one reduction and one update — the step of K = 1 up to summation order. Must divide each rank's streams (sequence datasets: at most each rank's sequences per batch). With reduction groups (language models) K must be a power of two dividing each rank's groups, and the micro-batches' gradients are added by the groups' halving tree: the same bits as K = 1 at any world size; sequence tasks do not combine it with groups (default 1).")
    var accumulate: Int?
    @Option(parsing: .unconditional, help: "TBPTT window T in steps (default \(D.bptt); sequence datasets: the longest sequence, so sequences run whole — shorter runs truncated BPTT within them).")
    var bptt: Int?
    @Option(parsing: .unconditional, help: "Streams of the evaluation layout, independent of the rank count (default \(D.evalStreams)).")
    var evalStreams: Int?
}

struct ModelOptions: ParsableArguments {
    @Option(help: "Cell: rnn (tanh), rnn-relu, lstm, gru, leaky (leaky integration, h = (1-α)h + α tanh(…), α per unit; see --leak), clockwork (Koutník et al. 2014: modules with periods 1, 2, 4, …; sequence tasks; see --clock-modules), jordan (output recurrence, h_t = tanh(W x_t + U y_{t-1} + b): one layer fed the previous target in training, its own previous prediction free-running; per-step targets only), or esn (echo state network: a fixed random reservoir, only the readout trained, in closed form in one pass; sequence datasets; see --radius, --density, --input-scale, --ridge); on tree datasets tree-rnn (h = tanh(W x + U [h_L; h_R] + b), Socher et al. 2011) or tree-lstm (binary Tree-LSTM, Tai et al. 2015) (default \(CellOption.name(of: M.cell)); tree datasets: tree-lstm).")
    var cell: CellOption?
    @Option(parsing: .unconditional, help: "ESN: spectral radius of the reservoir's W_hh, estimated by power iteration (default \(shown(EchoStateConfig.defaultRadius))).")
    var radius: Double?
    @Option(parsing: .unconditional, help: "ESN: share of W_hh's entries that are nonzero, in (0, 1] (default \(shown(EchoStateConfig.defaultDensity))).")
    var density: Double?
    @Option(parsing: .unconditional, help: "ESN: W_ih and b_ih drawn from U(-s, s) (default \(shown(EchoStateConfig.defaultInputScale))).")
    var inputScale: Double?
    @Option(parsing: .unconditional, help: "ESN: ridge penalty λ ≥ 0 of the readout solve (HᵀH + λI) W = HᵀY; 0 = least squares (default \(shown(EchoStateConfig.defaultRidge))).")
    var ridge: Double?
    @Option(help: "Leaky cell and ESN: leak rates α per unit — a rate in (0, 1] (0.1), a range LO:HI with 0 < LO < HI ≤ 1 log-spaced across units (several time scales), or learned[:LO:HI] (α = σ(a), a a parameter starting log-spaced over LO..HI, default \(LeakRate.defaultLearned)) (default \(LeakRate.default)).")
    var leak: String?
    @Option(help: "rnn/rnn-relu on sequence tasks: skip connections through time from h_{t-d} for each listed d ≥ 2, each with its own H×H weights rnn.weight_hh_skip{d}_l{k} (Deep Learning §10.7.2), e.g. 2,4 (default: none).")
    var skipSteps: String?
    @Option(parsing: .unconditional, help: "Clockwork cell: number of equal modules M, periods 1, 2, 4, …, 2^(M-1) (default: the largest M ≤ 8 dividing --hidden).")
    var clockModules: Int?
    @Option(help: "Clockwork cell: explicit module periods, strictly increasing, e.g. 1,2,4,8 (one module each; default: powers of two, see --clock-modules).")
    var clockPeriods: String?
    @Option(parsing: .unconditional, help: "Recurrent layers (default \(M.layers)).")
    var layers: Int?
    @Option(parsing: .unconditional, help: "Hidden size H (default \(M.hiddenSize)).")
    var hidden: Int?
    @Option(parsing: .unconditional, help: "Embedding size E (default: the hidden size).")
    var embedding: Int?
    @Option(parsing: .unconditional, help: "Dropout on non-recurrent connections (default \(shown(M.dropout))).")
    var dropout: Float?
    @Option(parsing: .unconditional, help: "Initialise every parameter U(-a, a); 0 = PyTorch's defaults (default 0).")
    var initRange: Float?
    @Option(help: "Initialisation: pytorch (U(±1/√H), embedding N(0,1)), uniform (U(±--init-range)), identity (IRNN, Le et al. 2015: W_hh = I, recurrent biases 0, W_ih N(0, 0.001²); for rnn-relu), orthogonal (each H×H block of W_hh a seeded orthogonal matrix, recurrent biases 0) (default pytorch, or uniform when --init-range > 0).")
    var `init`: InitOption?
    @Flag(inversion: .prefixedNo, help: "LSTM: forget-gate bias starts at 1 (default \(onOff(M.forgetGateBias))).")
    var forgetBias: Bool?

    /// A bad --leak, --skip-steps or clock value, or contradicting --init/--init-range, in one
    /// line; nil when fine.
    func problem() -> String? {
        if let leak {
            do { _ = try LeakRate(parsing: leak) } catch { return "--leak: \(error)" }
        }
        if let skipSteps {
            do { _ = try SkipSteps.parse(skipSteps) } catch { return "\(error)" }
        }
        if let clockModules, !(1...64).contains(clockModules) {
            return "--clock-modules must be in 1...64, got \(clockModules)"
        }
        if let clockPeriods {
            guard let list = Self.periodList(clockPeriods) else {
                return "--clock-periods: expected a comma-separated list of periods ≥ 1 (1,2,4,8), got '\(clockPeriods)'"
            }
            if let clockModules, clockModules != list.count {
                return "--clock-modules \(clockModules) and --clock-periods \(clockPeriods) (\(list.count) modules) disagree; give one of them"
            }
        }
        switch (`init`, initRange) {
        case (.uniform?, nil), (.uniform?, 0?):
            return "--init uniform needs --init-range a > 0"
        case (let scheme?, let a?) where scheme != .uniform && a != 0:
            return "--init \(scheme.rawValue) and --init-range \(a) exclude each other (--init-range is the uniform scheme's)"
        default: return nil
        }
    }

    /// The leak rates of --leak (validated).
    var leakRate: LeakRate? { leak.flatMap { try? LeakRate(parsing: $0) } }

    /// The skip steps of --skip-steps (validated), sorted.
    var skipStepList: [Int]? { skipSteps.flatMap { try? SkipSteps.parse($0) } }

    /// The module periods of --clock-periods, or powers of two over --clock-modules; nil if neither.
    var clockPeriodList: [Int]? {
        if let clockPeriods { return Self.periodList(clockPeriods) }
        return clockModules.map { ClockPeriods.powersOfTwo(modules: $0) }
    }

    /// `1,2,4` as integers (range checked later, with the hidden size); nil if not a list of integers.
    static func periodList(_ text: String) -> [Int]? {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int(String($0.filter { !$0.isWhitespace })) }
        return values.contains(nil) ? nil : values.compactMap { $0 }
    }
}

extension PoolKind: ExpressibleByArgument {}

struct SequenceOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: "Sequence datasets: each layer also reads the sequence backwards and concatenates, as torch.nn.LSTM(bidirectional=True) (default \(onOff(Defaults.bidirectional))).")
    var bidirectional: Bool?
    @Option(help: "Sequence datasets with one target per sequence: what the head reads — last (the final state of each direction, PyTorch's h_n), mean or max over the steps (default \(Defaults.pool.rawValue)).")
    var pool: PoolKind?
    @Flag(inversion: .prefixedNo, help: "Sequence datasets with float features: standardise each feature with the train split's mean and std (default \(onOff(Defaults.normalize))).")
    var normalize: Bool?
}

extension TreeLossKind: ExpressibleByArgument {}

struct TreeOptions: ParsableArguments {
    @Option(help: "Tree datasets: which nodes the loss counts — root (each tree's label) or nodes (every labelled node: each subtree's label too) (default root).")
    var treeLoss: TreeLossKind?
}

extension AttentionKind: ExpressibleByArgument {}
extension BridgeKind: ExpressibleByArgument {}

struct Seq2SeqOptions: ParsableArguments {
    @Option(help: "Pairs datasets: attention over the encoder states — none, dot, general (Luong et al. 2015) or additive (Bahdanau et al. 2015) (default \(Defaults.attention.rawValue)).")
    var attention: AttentionKind?
    @Option(help: "Pairs datasets: the decoder's initial state — tanh (a learned map of the encoder's final states) or none (zeros) (default \(Defaults.bridge.rawValue)).")
    var bridge: BridgeKind?
    @Flag(inversion: .prefixedNo, help: "Pairs datasets: Luong's input feeding — the previous attentional state joins the decoder's input (default \(onOff(Defaults.inputFeeding))).")
    var inputFeeding: Bool?
    @Option(help: ArgumentHelp("Pairs datasets: scheduled sampling (Bengio et al. 2015), KIND[:K]: linear[:N] (ε = 1 − step/N), exponential[:K] (ε = K^step), inverse-sigmoid[:K] (ε = K/(K + exp(step/K))); the decoder reads its own previous prediction with probability 1 − ε (default: off, teacher forcing).", valueName: "kind[:k]"),
            transform: { text in
                guard let s = SamplingSchedule.parse(text) else {
                    throw ValidationError("--scheduled-sampling: expected linear[:N], exponential[:K] or inverse-sigmoid[:K], got '\(text)'")
                }
                return s
            })
    var scheduledSampling: SamplingSchedule?
}

struct OptimisationOptions: ParsableArguments {
    @Option(help: "sgd, momentum, nesterov, adam, adamw, adagrad (default \(D.optimizer.kind.rawValue)).")
    var optimizer: OptimizerKind?
    @Option(parsing: .unconditional, help: "Base learning rate (default \(shown(D.learningRate))).")
    var lr: Double?
    @Option(help: "constant, step (×decay per epoch after --decay-after), plateau, cosine (default \(ScheduleOption.name(of: D.schedule))).")
    var lrSchedule: ScheduleOption?
    @Option(parsing: .unconditional, help: "Decay factor for step/plateau schedules (default \(shown(Defaults.lrDecay))).")
    var lrDecay: Double?
    @Option(parsing: .unconditional, help: "Step schedule: last epoch at the base rate (default \(Defaults.decayAfter)).")
    var decayAfter: Int?
    @Option(parsing: .unconditional, help: "Cosine schedule: warm-up steps (default \(Defaults.warmup)).")
    var warmup: Int?
    @Option(parsing: .unconditional, help: "Momentum for momentum/nesterov (default \(shown(D.optimizer.momentum))).")
    var momentum: Float?
    @Option(parsing: .unconditional, help: "Weight decay (AdamW: decoupled) (default \(shown(D.optimizer.weightDecay))).")
    var weightDecay: Float?
    @Option(parsing: .unconditional, help: "Flow regulariser λ (Pascanu et al. 2013 eq. 9): adds λ·Σ_t (‖(∂L/∂h_t)·∂h_t/∂h_{t-1}‖/‖∂L/∂h_t‖ − 1)² to the loss, ∂L/∂h_t held constant; sequence tasks, --cell rnn or rnn-relu, --layers 1 (default: off).")
    var flowReg: Float?
    @Option(parsing: .unconditional, help: "Clipping threshold (default \(shown(D.clip))).")
    var clip: Double?
    @Option(help: "norm (global L2 norm) or value (element-wise) (default \(D.clipMode.rawValue)).")
    var clipMode: ClipMode?
    @Option(help: "token: gradient of the mean loss per token; stream: of the loss summed over the window and averaged over streams, as Zaremba et al. (default \(D.lossNormalization.rawValue)).")
    var lossNormalization: LossNormalization?
    @Option(parsing: .unconditional, help: "Epochs (default \(D.epochs); ignored with --steps).")
    var epochs: Int?
    @Option(parsing: .unconditional, help: "Total optimizer steps of the run counted from step 0.")
    var steps: Int?
    @Option(parsing: .unconditional, help: "Seed of initialisation and dropout (default \(D.seed)).")
    var seed: UInt64?
    @Option(parsing: .unconditional, help: "Stop after this many consecutive NaN/Inf gradient steps (default \(D.maxConsecutiveSkips)).")
    var maxSkips: Int?
}

struct BookkeepingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Validate every N steps; 0 = at each epoch end (default \(D.evalEvery)).")
    var evalEvery: Int?
    @Option(parsing: .unconditional, help: "Progress line every N steps (default \(D.logEvery)).")
    var logEvery: Int?
    @Option(help: "Directory for checkpoints (none: no checkpoints).")
    var checkpointDir: String?
    @Option(parsing: .unconditional, help: "Checkpoint every N steps; 0 = at epoch ends and the end (default \(D.checkpointEvery)).")
    var checkpointEvery: Int?
    @Option(parsing: .unconditional, help: "Recent checkpoints kept besides the best (default \(D.keep)).")
    var keep: Int?
    @Option(help: "JSON-lines metrics file (appended).")
    var metrics: String?
    @Option(help: "Directory for TensorBoard event files, written by rank 0: train loss, perplexity/bits per char, gradient norm before clipping, learning rate, throughput, compute/communication/I/O seconds, skipped steps, every validation metric (none: no events).")
    var tensorboard: String?
}

/// `--reduction-group`: a number of streams, or `auto`.
enum ReductionGroupOption: ExpressibleByArgument, CustomStringConvertible {
    case auto
    case streams(Int)

    init?(argument: String) {
        if argument == "auto" { self = .auto } else if let g = Int(argument) { self = .streams(g) } else { return nil }
    }

    var description: String {
        switch self {
        case .auto: "auto"
        case .streams(let g): "\(g)"
        }
    }
}

struct DistributedOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Gradient allreduce bucket size in bytes (default \(D.bucketBytes)).")
    var bucketBytes: Int?
    @Option(help: "Streams (sequence datasets: sequences) per reduction group, or auto (B / gcd(B, 8): up to 8 groups): gradients and losses are summed per group of consecutive streams or sequences and the groups added by a fixed halving tree, so np = 1, 2, 4, … train byte-identically whenever the number of ranks is a power of two dividing the number of groups. 0: no groups (each rank sums its streams; results differ in the last bits with the number of ranks). Default for a new run: auto where the number of ranks (and --accumulate) fits it, else 0 with a notice (a resumed run keeps its own); encoder–decoders and tree models never group. Groups cost at most 4.3 % of step time on configs A–E on a Zen 1 EPYC; on a Zen 3 EPYC 5–9 % on B (launch/bench-groups, launch/PERFORMANCE.md).")
    var reductionGroup: ReductionGroupOption?
    @OptionGroup var watchdog: WatchdogOptions
    @Option(help: "Seconds a rank may take after SIGTERM/SIGINT to finish the step and save before it is ended anyway (stuck in a collective or I/O); a second signal ends it at once.")
    var stopGrace: Double = StopSignals.defaultGrace

    func validate() throws {
        try WatchdogOptions.requirePositive(stopGrace, "--stop-grace")
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a recurrent language model (run under mpirun for several ranks).",
        discussion: examples(
            "unroll train --data shakespeare.h5 --hidden 512 --steps 5000 \\\n      --checkpoint-dir runs/a",
            "mpirun -np 4 unroll train --config ptb.toml --checkpoint-dir runs/b \\\n      --metrics runs/b/metrics.jsonl",
            "unroll train --checkpoint-dir runs/a --resume latest --steps 10000",
            "unroll train --data parity.h5 --cell gru --bidirectional \\\n      --optimizer adam --lr 0.01 --epochs 10"))

    @Option(help: "Configuration file, JSON or TOML, whose keys are these long options (e.g. cell = \"lstm\"); command-line options override it.")
    var config: String?
    @Option(help: "Continue a run from a checkpoint file, or from the newest good one in --checkpoint-dir with 'latest'. The configuration comes from the checkpoint: give only --steps/--epochs, cadences, --keep, --metrics, --max-skips (and --lr, schedule parameters, --clip to override, with a notice).")
    var resume: String?
    @Option(help: "Start a new run (step 0, fresh optimizer) from the weights of this checkpoint (shapes must match), or of a .safetensors file under PyTorch state-dict names (shapes from the command line; every name and shape checked).")
    var initFrom: String?

    @OptionGroup(title: "Data") var dataOptions: DataOptions
    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Sequence tasks") var sequenceOptions: SequenceOptions
    @OptionGroup(title: "Encoder–decoder tasks") var seq2seqOptions: Seq2SeqOptions
    @OptionGroup(title: "Tree tasks") var treeOptions: TreeOptions
    @OptionGroup(title: "Optimisation") var optimisation: OptimisationOptions
    @OptionGroup(title: "Bookkeeping") var bookkeeping: BookkeepingOptions
    @OptionGroup(title: "Distributed") var distributed: DistributedOptions
    @OptionGroup(title: "Logging") var logging: LoggingOptions

    /// With --config: this command re-parsed with the file's options before the command line's,
    /// so the command line wins.
    func mergingConfigFile() throws -> Train {
        guard let path = config else { return self }
        let entries = try ConfigFile.entries(fromFile: path)
        // Each key on its own first, so an unknown key or a bad value is named with the file.
        for entry in entries {
            if entry.option == "config" { throw TrainingError.config("\(path): \(entry.path): a configuration file cannot name another") }
            do { _ = try Train.parse(entry.arguments) } catch {
                let message = Train.message(for: error)
                if message.contains("Unknown option") {
                    throw TrainingError.config("\(path): unknown key '\(entry.path)' (unroll train has no option --\(entry.option))")
                }
                throw TrainingError.config("\(path): \(entry.path): \(message)")
            }
        }
        let fileArgs = entries.flatMap(\.arguments)
        var cli = Array(CommandLine.arguments.dropFirst())
        if let i = cli.firstIndex(of: "train") { cli.removeFirst(i + 1) }
        var rest: [String] = []
        var i = 0
        while i < cli.count {
            if cli[i] == "--config" { i += 2; continue }
            if cli[i].hasPrefix("--config=") { i += 1; continue }
            rest.append(cli[i])
            i += 1
        }
        do {
            return try Train.parse(fileArgs + rest)
        } catch {
            throw TrainingError.config("--config \(path): \(Train.message(for: error))")
        }
    }

    /// The configuration of a new run before the dataset is read: defaults, then every given
    /// option (file, then command line); the embedding size follows --hidden unless given.
    func defaults(model: ModelConfig? = nil) throws -> TrainingConfig {
        guard let data = dataOptions.data else { throw ValidationError("--data is required (or in --config)") }
        var base = model ?? M
        base.dropout = M.dropout
        base.initScheme = M.initScheme
        base.forgetGateBias = M.forgetGateBias
        if model == nil || modelOptions.hidden != nil {
            base.embeddingSize = modelOptions.embedding ?? modelOptions.hidden ?? base.hiddenSize
        }
        var config = TrainingConfig(data: data, model: base)
        try describeData(&config)
        return config
    }

    /// Fills in what the dataset decides: the task (from the file's layout), the vocabulary size
    /// and, for sequence sets, the inputs, targets and the window (whole sequences by default).
    func describeData(_ config: inout TrainingConfig) throws {
        let kind = try datasetKind(config.data)
        config.seq2seq = nil
        config.trees = nil
        if kind == "trees" {
            let set = try TreeSet(path: config.data)
            config.sequence = nil
            config.trees = TreeTask.taskConfig(for: set, loss: treeOptions.treeLoss ?? .root)
            config.model.vocabSize = set.vocabulary.count
            // One recursive layer, Tree-LSTM unless --cell (or --init-from's checkpoint) says
            // otherwise; the window is unused (trees run whole) and records the greatest height.
            if modelOptions.cell == nil && !config.model.cell.isTree { config.model.cell = .treeLSTM }
            if modelOptions.layers == nil { config.model.layers = 1 }
            config.bptt = set.greatestHeight + 1
        } else if kind == "pairs" {
            let set = try PairSet(path: config.data)
            let p = seq2seqOptions
            let task = try Seq2SeqTask.taskConfig(for: set, bidirectional: sequenceOptions.bidirectional ?? Defaults.bidirectional,
                                                  bridge: p.bridge ?? Defaults.bridge, attention: p.attention ?? Defaults.attention,
                                                  inputFeeding: p.inputFeeding ?? Defaults.inputFeeding,
                                                  scheduledSampling: p.scheduledSampling)
            config.sequence = nil
            config.seq2seq = task
            config.model.vocabSize = task.targetVocabSize
            config.bptt = task.longestTarget + 1
        } else if kind == "sequences" {
            let set = try SequenceSet(path: config.data)
            let s = sequenceOptions
            let task = try SequenceTask.taskConfig(for: set, bidirectional: s.bidirectional ?? Defaults.bidirectional,
                                                   pool: s.pool ?? Defaults.pool, normalize: s.normalize ?? Defaults.normalize)
            config.sequence = task
            config.model.vocabSize = task.tokens ? set.vocabulary.count : 0
            config.bptt = task.longest
        } else {
            config.sequence = nil
            config.model.vocabSize = try TokenDataset(path: config.data).vocabSize
        }
    }

    /// An option given that the configuration does not use (a schedule parameter for another
    /// schedule, momentum for an optimizer without it), or nil.
    func unusedOptionProblem(_ c: TrainingConfig) -> String? {
        let o = optimisation, q = sequenceOptions, p = seq2seqOptions
        if c.trees == nil, treeOptions.treeLoss != nil { return "--tree-loss applies to tree datasets (layout trees); \(c.data) is not one" }
        if c.trees != nil {
            for (flag, given) in [("--bidirectional", q.bidirectional != nil), ("--pool", q.pool != nil), ("--normalize", q.normalize != nil),
                                  ("--attention", p.attention != nil), ("--bridge", p.bridge != nil),
                                  ("--input-feeding", p.inputFeeding != nil), ("--scheduled-sampling", p.scheduledSampling != nil),
                                  ("--leak", modelOptions.leak != nil), ("--eval-streams", dataOptions.evalStreams != nil),
                                  ("--bptt", dataOptions.bptt != nil)]
            where given {
                return "\(flag) does not apply to tree datasets (layout trees): \(c.data) holds trees, run whole by a recursive network"
            }
        } else if c.seq2seq == nil {
            for (flag, given) in [("--attention", p.attention != nil), ("--bridge", p.bridge != nil),
                                  ("--input-feeding", p.inputFeeding != nil), ("--scheduled-sampling", p.scheduledSampling != nil)]
            where given {
                return "\(flag) applies to pairs datasets (layout pairs); \(c.data) is not one"
            }
        } else {
            for (flag, given) in [("--pool", q.pool != nil), ("--normalize", q.normalize != nil)] where given {
                return "\(flag) applies to sequence datasets (layout sequences); \(c.data) holds pairs"
            }
            if dataOptions.evalStreams != nil { return "--eval-streams applies to language models; encoder–decoder tasks evaluate in batches of --batch-size" }
            if dataOptions.bptt != nil { return "--bptt applies to language models and sequence tasks; encoder–decoder tasks run whole pairs" }
        }
        if c.sequence == nil && c.seq2seq == nil && c.trees == nil {
            for (flag, given) in [("--bidirectional", q.bidirectional != nil), ("--pool", q.pool != nil), ("--normalize", q.normalize != nil)]
            where given {
                return "\(flag) applies to sequence datasets (layout sequences); \(c.data) holds a token stream"
            }
        }
        if let s = c.sequence {
            if q.pool != nil && s.perStep { return "--pool applies to one target per sequence; \(c.data) has a target per step" }
            if q.normalize != nil && s.tokens { return "--normalize applies to float features; \(c.data) holds token ids" }
            if dataOptions.evalStreams != nil { return "--eval-streams applies to language models; sequence tasks evaluate in batches of --batch-size" }
        }
        let schedule = ScheduleOption.name(of: c.schedule)
        if o.lrDecay != nil, schedule != "step", schedule != "plateau" {
            return "--lr-decay applies to --lr-schedule step or plateau; the schedule is \(schedule)"
        }
        if o.decayAfter != nil, schedule != "step" { return "--decay-after applies to --lr-schedule step; the schedule is \(schedule)" }
        if o.warmup != nil, schedule != "cosine" { return "--warmup applies to --lr-schedule cosine; the schedule is \(schedule)" }
        if o.momentum != nil, c.optimizer.kind != .momentum, c.optimizer.kind != .nesterov {
            return "--momentum applies to --optimizer momentum or nesterov; the optimizer is \(c.optimizer.kind.rawValue)"
        }
        return nil
    }

    /// `--cell esn` with an option that only gradient training uses, or resumed, or started from
    /// a checkpoint's weights: one line; nil otherwise. An ESN has no optimizer, schedule, epochs
    /// or initialisation choices: its reservoir is drawn from --seed and its readout solved once.
    func echoStateProblem(_ c: TrainingConfig, resuming: Bool) -> String? {
        guard c.model.cell == .esn else { return nil }
        if resuming { return "--resume: an echo state network (--cell esn) trains in one pass; there is nothing to resume — evaluate its checkpoint with unroll eval" }
        if initFrom != nil { return "--init-from: an echo state network (--cell esn) draws its reservoir from --seed and solves its readout; it starts from no checkpoint" }
        let o = optimisation, m = modelOptions
        let ignored: [(String, Bool)] = [
            ("--optimizer", o.optimizer != nil), ("--lr", o.lr != nil), ("--lr-schedule", o.lrSchedule != nil),
            ("--lr-decay", o.lrDecay != nil), ("--decay-after", o.decayAfter != nil), ("--warmup", o.warmup != nil),
            ("--momentum", o.momentum != nil), ("--weight-decay", o.weightDecay != nil), ("--clip", o.clip != nil),
            ("--clip-mode", o.clipMode != nil), ("--epochs", o.epochs != nil), ("--steps", o.steps != nil),
            ("--max-skips", o.maxSkips != nil), ("--init", m.`init` != nil), ("--init-range", m.initRange != nil),
            ("--forget-bias", m.forgetBias != nil),
        ]
        if let (flag, _) = ignored.first(where: { $0.1 }) {
            return "\(flag) applies to gradient training; --cell esn solves its readout in closed form in one pass (see --ridge)"
        }
        return nil
    }

    /// Every option the user gave (in --config or on the command line), each able to apply
    /// itself to a configuration and classified for resuming (see `ConfigMerge`).
    func givenOptions() -> [GivenOption] {
        var list: [GivenOption] = []
        func add<V>(_ flag: String, _ kind: GivenOption.Kind, _ value: V?, text: (V) -> String = { "\($0)" },
                    current: @escaping (TrainingConfig) -> String, _ apply: @escaping (inout TrainingConfig, V) -> Void) {
            guard let value else { return }
            list.append(GivenOption(flag, kind, given: text(value), apply: { apply(&$0, value) }, current: current))
        }
        let d = dataOptions, m = modelOptions, o = optimisation, b = bookkeeping
        add("--data", .fixed, d.data, current: { $0.data }) { $0.data = $1 }
        add("--batch-size", .fixed, d.batchSize, current: { "\($0.batchSize)" }) { $0.batchSize = $1 }
        add("--accumulate", .free, d.accumulate, current: { "\($0.accumulation)" }) { $0.accumulate = $1 }
        add("--bptt", .fixed, d.bptt, current: { "\($0.bptt)" }) { $0.bptt = $1 }
        add("--eval-streams", .fixed, d.evalStreams, current: { "\($0.evalStreams)" }) { $0.evalStreams = $1 }
        add("--cell", .fixed, m.cell, text: { $0.rawValue }, current: { CellOption.name(of: $0.model.cell) }) { $0.model.cell = $1.kind }
        add("--layers", .fixed, m.layers, current: { "\($0.model.layers)" }) { $0.model.layers = $1 }
        add("--hidden", .fixed, m.hidden, current: { "\($0.model.hiddenSize)" }) { $0.model.hiddenSize = $1 }
        add("--embedding", .fixed, m.embedding, current: { "\($0.model.embeddingSize)" }) { $0.model.embeddingSize = $1 }
        add("--dropout", .fixed, m.dropout, current: { "\($0.model.dropout)" }) { $0.model.dropout = $1 }
        add("--init-range", .fixed, m.initRange, current: { c in
            if case .uniform(let a) = c.model.initScheme { return "\(a)" } else { return "0.0" }
        }) { $0.model.initScheme = $1 > 0 ? .uniform($1) : .pytorch }
        add("--init", .fixed, m.`init`, text: { $0.rawValue }, current: { $0.model.initScheme.name }) { c, scheme in
            switch scheme {
            case .pytorch: c.model.initScheme = .pytorch
            case .identity: c.model.initScheme = .identity
            case .orthogonal: c.model.initScheme = .orthogonal
            case .uniform: break  // the range comes from --init-range (validate() requires it)
            }
        }
        func echo(_ c: inout TrainingConfig, _ change: (inout EchoStateConfig) -> Void) {
            var e = c.model.echoState ?? .default
            change(&e)
            c.model.echoState = e
        }
        let echoCurrent: (TrainingConfig) -> String = { c in c.model.echoState.map { "\($0)" } ?? "none" }
        add("--radius", .fixed, m.radius, current: echoCurrent) { c, v in echo(&c) { $0.radius = v } }
        add("--density", .fixed, m.density, current: echoCurrent) { c, v in echo(&c) { $0.density = v } }
        add("--input-scale", .fixed, m.inputScale, current: echoCurrent) { c, v in echo(&c) { $0.inputScale = v } }
        add("--ridge", .fixed, m.ridge, current: echoCurrent) { c, v in echo(&c) { $0.ridge = v } }
        add("--leak", .fixed, m.leakRate, text: { $0.description }, current: { $0.model.effectiveLeak?.description ?? "none" }) {
            $0.model.leak = $1
        }
        add("--skip-steps", .fixed, m.skipStepList, text: { $0.map(String.init).joined(separator: ",") },
            current: { $0.model.skipSteps?.map(String.init).joined(separator: ",") ?? "none" }) { $0.model.skipSteps = $1 }
        add(m.clockPeriods != nil ? "--clock-periods" : "--clock-modules", .fixed, m.clockPeriodList,
            text: { $0.map(String.init).joined(separator: ",") },
            current: { $0.model.effectiveClockPeriods?.map(String.init).joined(separator: ",") ?? "none" }) {
            $0.model.clockPeriods = $1
        }
        let q = sequenceOptions
        add("--bidirectional", .fixed, q.bidirectional, text: { $0 ? "on" : "off" },
            current: { ($0.sequence?.bidirectional ?? $0.seq2seq?.bidirectional ?? false) ? "on" : "off" }) {
            $0.sequence?.bidirectional = $1
            $0.seq2seq?.bidirectional = $1
        }
        let p = seq2seqOptions
        add("--attention", .fixed, p.attention, text: { $0.rawValue }, current: { $0.seq2seq?.attention.rawValue ?? "none" }) {
            $0.seq2seq?.attention = $1
        }
        add("--bridge", .fixed, p.bridge, text: { $0.rawValue }, current: { $0.seq2seq?.bridge.rawValue ?? "none" }) { $0.seq2seq?.bridge = $1 }
        add("--input-feeding", .fixed, p.inputFeeding, text: { $0 ? "on" : "off" },
            current: { ($0.seq2seq?.inputFeeding ?? false) ? "on" : "off" }) { $0.seq2seq?.inputFeeding = $1 }
        add("--scheduled-sampling", .fixed, p.scheduledSampling, text: { $0.text },
            current: { $0.seq2seq?.scheduledSampling?.text ?? "off" }) { $0.seq2seq?.scheduledSampling = $1 }
        add("--tree-loss", .fixed, treeOptions.treeLoss, text: { $0.rawValue }, current: { $0.trees?.loss.rawValue ?? "none" }) {
            $0.trees?.loss = $1
        }
        add("--pool", .fixed, q.pool, text: { $0.rawValue }, current: { $0.sequence?.pool.rawValue ?? "none" }) { $0.sequence?.pool = $1 }
        add("--normalize", .fixed, q.normalize, text: { $0 ? "on" : "off" },
            current: { ($0.sequence?.normalize ?? false) ? "on" : "off" }) { $0.sequence?.normalize = $1 }
        add("--forget-bias", .fixed, m.forgetBias, text: { $0 ? "on" : "off" }, current: { $0.model.forgetGateBias ? "on" : "off" }) {
            $0.model.forgetGateBias = $1
        }
        add("--optimizer", .fixed, o.optimizer, text: { $0.rawValue }, current: { $0.optimizer.kind.rawValue }) { $0.optimizer.kind = $1 }
        add("--momentum", .fixed, o.momentum, current: { "\($0.optimizer.momentum)" }) { $0.optimizer.momentum = $1 }
        add("--weight-decay", .fixed, o.weightDecay, current: { "\($0.optimizer.weightDecay)" }) { $0.optimizer.weightDecay = $1 }
        add("--clip-mode", .fixed, o.clipMode, text: { $0.rawValue }, current: { $0.clipMode.rawValue }) { $0.clipMode = $1 }
        add("--loss-normalization", .fixed, o.lossNormalization, text: { $0.rawValue }, current: { $0.lossNormalization.rawValue }) {
            $0.lossNormalization = $1
        }
        add("--seed", .fixed, o.seed, current: { "\($0.seed)" }) { $0.seed = $1 }
        add("--flow-reg", .fixed, o.flowReg, current: { $0.flowReg.map { "\($0)" } ?? "off" }) { $0.flowReg = $1 }
        // The schedule's kind defines the run; its parameters may be overridden (below).
        add("--lr-schedule", .fixed, o.lrSchedule, text: { $0.rawValue }, current: { ScheduleOption.name(of: $0.schedule) }) { [o] c, s in
            guard ScheduleOption.name(of: c.schedule) != s.rawValue else { return }
            let decay = o.lrDecay ?? Defaults.lrDecay
            switch s {
            case .constant: c.schedule = .constant
            case .step: c.schedule = .stepDecay(afterEpoch: o.decayAfter ?? Defaults.decayAfter, factor: decay)
            case .plateau: c.schedule = .plateau(factor: decay, patience: 0, threshold: 0)
            case .cosine: c.schedule = .cosine(warmupSteps: o.warmup ?? Defaults.warmup, totalSteps: 0, minFactor: 0)
            }
        }
        add("--lr", .overridable, o.lr, current: { "\($0.learningRate)" }) { $0.learningRate = $1 }
        add("--lr-decay", .overridable, o.lrDecay, current: { "\($0.schedule)" }) { c, v in
            switch c.schedule {
            case .stepDecay(let after, _): c.schedule = .stepDecay(afterEpoch: after, factor: v)
            case .plateau(_, let patience, let threshold): c.schedule = .plateau(factor: v, patience: patience, threshold: threshold)
            case .constant, .cosine: break
            }
        }
        add("--decay-after", .overridable, o.decayAfter, current: { "\($0.schedule)" }) { c, v in
            if case .stepDecay(_, let factor) = c.schedule { c.schedule = .stepDecay(afterEpoch: v, factor: factor) }
        }
        add("--warmup", .overridable, o.warmup, current: { "\($0.schedule)" }) { c, v in
            if case .cosine(_, let total, let minFactor) = c.schedule {
                c.schedule = .cosine(warmupSteps: v, totalSteps: total, minFactor: minFactor)
            }
        }
        add("--clip", .overridable, o.clip, current: { "\($0.clip)" }) { $0.clip = $1 }
        // Bookkeeping: how long, how often, where.
        add("--epochs", .free, o.epochs, current: { "\($0.epochs)" }) { c, v in
            c.epochs = v
            c.steps = nil  // --epochs given again replaces a step budget (a later --steps wins)
        }
        add("--steps", .free, o.steps, current: { $0.steps.map { "\($0)" } ?? "none" }) { $0.steps = $1 }
        add("--max-skips", .free, o.maxSkips, current: { "\($0.maxConsecutiveSkips)" }) { $0.maxConsecutiveSkips = $1 }
        add("--eval-every", .free, b.evalEvery, current: { "\($0.evalEvery)" }) { $0.evalEvery = $1 }
        add("--log-every", .free, b.logEvery, current: { "\($0.logEvery)" }) { $0.logEvery = $1 }
        add("--checkpoint-dir", .free, b.checkpointDir, current: { $0.checkpointDir ?? "none" }) { $0.checkpointDir = $1 }
        add("--checkpoint-every", .free, b.checkpointEvery, current: { "\($0.checkpointEvery)" }) { $0.checkpointEvery = $1 }
        add("--keep", .free, b.keep, current: { "\($0.keep)" }) { $0.keep = $1 }
        add("--metrics", .free, b.metrics, current: { $0.metrics ?? "none" }) { $0.metrics = $1 }
        add("--tensorboard", .free, b.tensorboard, current: { $0.tensorboard ?? "none" }) { $0.tensorboard = $1 }
        add("--bucket-bytes", .free, distributed.bucketBytes, current: { "\($0.bucketBytes)" }) { $0.bucketBytes = $1 }
        add("--reduction-group", .free, distributed.reductionGroup, text: { $0.description },
            current: { "\($0.effectiveReductionGroup)" }) { c, option in
            switch option {
            case .auto: c.reductionGroup = TrainingConfig.defaultReductionGroup(batchSize: c.batchSize)
            case .streams(let g): c.reductionGroup = g
            }
        }
        return list
    }

    /// Test hook, deliberately not a command-line option nor part of the configuration:
    /// `UNROLL_TEST_INJECT_NAN=RANK:STEP` makes the gradient NaN on rank RANK at the 0-based step
    /// STEP, so tests can check that every rank skips that update together (launch/test-train).
    static let nanInjectionVariable = "UNROLL_TEST_INJECT_NAN"

    /// The fault hook `UNROLL_TEST_INJECT_NAN` asks for on `rank`, if any.
    static func faultHook(rank: Int) throws -> ((Int) -> Bool)? {
        guard let spec = ProcessInfoLite.environment(nanInjectionVariable) else { return nil }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let target = Int(parts[0]), let step = Int(parts[1]), target >= 0, step >= 0 else {
            throw ValidationError("\(nanInjectionVariable): expected RANK:STEP (two integers ≥ 0), found '\(spec)'")
        }
        return { target == rank && $0 == step }
    }

    /// Test hook, like `UNROLL_TEST_INJECT_NAN`: `UNROLL_TEST_SLOW_CHECKPOINT=SECONDS` makes every
    /// checkpoint write pause that long once its content is written (before fsync and rename), so
    /// tests can kill the job while a background save is in flight (launch/test-train).
    static let slowCheckpointVariable = "UNROLL_TEST_SLOW_CHECKPOINT"

    /// The failure hook `UNROLL_TEST_SLOW_CHECKPOINT` asks for, if any.
    static func slowCheckpointHook() throws -> AtomicFile.FailureHook? {
        guard let spec = ProcessInfoLite.environment(slowCheckpointVariable) else { return nil }
        guard let seconds = Double(spec), seconds >= 0, seconds.isFinite else {
            throw ValidationError("\(slowCheckpointVariable): expected a number of seconds ≥ 0, found '\(spec)'")
        }
        return { stage in if stage == .contentWritten { usleep(useconds_t(seconds * 1e6)) } }
    }

    /// The checkpoint's configuration with its data file located: a relative stored path is
    /// looked for from here, then beside and above the checkpoint; a `--data` at another path is
    /// taken when its content (SHA-256) is the checkpoint's data (moved or copied), and otherwise
    /// left for `ConfigMerge` to refuse. Collective.
    func resolvedData(_ saved: SavedRun, checkpoint: String, _ comm: any Communicator, _ log: LogSink) throws -> TrainingConfig {
        var config = saved.config
        let stored = config.data
        if let data = dataOptions.data {
            guard data != stored, try rootDecides(comm, { (try? fileSHA256(data)) == saved.dataSHA256 }) else { return config }
            config.data = data
            if comm.rank == 0 { log("notice: --data \(data) has the SHA-256 of the checkpoint's \(stored): using it") }
        } else {
            config.data = try rootDecides(comm) { try CheckpointDataPath.resolve(stored: stored, checkpoint: checkpoint) }
            if config.data != stored, comm.rank == 0 { log("notice: the checkpoint's data file \(stored) is \(config.data) from here") }
        }
        return config
    }

    func run() throws {
        let comm = try makeCommunicator()
        try runReportingErrors(communicator: comm) {
            let options = try mergingConfigFile()
            options.logging.install(rank: comm.rank, worldSize: comm.size)
            options.distributed.watchdog.apply(to: comm)
            try TrainingRun.installSignalHandlers(stopGrace: options.distributed.stopGrace)
            if let problem = options.modelOptions.problem() { throw TrainingError.config(problem) }
            let given = options.givenOptions()
            let log: LogSink = { line in print(line); fflush(nil) }
            let notice: LogSink = { UnrollLog.training.notice("\($0)") }
            var directory: RunDirectory?
            var config: TrainingConfig
            var overrides: [ConfigOverride] = []
            var resumePath: String?
            if let resume {
                if options.initFrom != nil { throw ValidationError("--resume and --init-from exclude each other") }
                // Rank 0 verifies the checkpoint once and keeps what `train` needs from it.
                var verified: SavedRun?
                let path: String
                if resume == "latest" {
                    guard let dir = options.bookkeeping.checkpointDir else {
                        throw ValidationError("--resume latest needs --checkpoint-dir (the directory to resume from)")
                    }
                    let owned = try RunDirectory(path: dir, runId: "(resuming)", communicator: comm, log: notice)
                    directory = owned
                    path = try owned.selectResume("latest") { verified = try SavedRun($0) }
                } else {
                    path = resume
                }
                resumePath = path
                let saved = try rootDecides(comm) { try verified ?? SavedRun(path) }
                (config, overrides) = try ConfigMerge.resume(try resolvedData(saved, checkpoint: path, comm, notice), file: path,
                                                             step: saved.step, given)
            } else if let initFrom = options.initFrom, SafeTensors.isSafeTensors(initFrom), !H5File.isHDF5(initFrom) {
                // Weights trained elsewhere carry no configuration: the shapes are the command line's.
                config = ConfigMerge.fresh(try options.defaults(), given)
            } else if let initFrom = options.initFrom {
                let saved = try rootDecides(comm) { try SavedRun(initFrom) }
                var shape = saved.config.model
                shape.dropout = 0
                config = ConfigMerge.fresh(try options.defaults(model: shape), given)
                func kind(_ c: TrainingConfig) -> String {
                    c.trees != nil ? "tree model" : c.seq2seq != nil ? "encoder–decoder" : c.sequence != nil ? "sequence model" : "language model"
                }
                if kind(saved.config) != kind(config) {
                    throw TrainingError.config("--init-from \(initFrom): a \(kind(saved.config)) cannot start a run on \(config.data)")
                }
            } else {
                config = ConfigMerge.fresh(try options.defaults(), given)
            }
            // A new leaky model records its rates, default included, in the configuration.
            if resumePath == nil, config.model.cell == .leaky, config.model.leak == nil { config.model.leak = .default }
            // … and a new clockwork model its periods.
            if resumePath == nil, config.model.cell == .clockwork, config.model.clockPeriods == nil {
                config.model.clockPeriods = config.model.effectiveClockPeriods
            }
            // So does an echo state network its reservoir settings and rate (α = 1 by default).
            if resumePath == nil, config.model.cell == .esn {
                // One reservoir unless --layers asks for a deep (stacked) one.
                if options.modelOptions.layers == nil { config.model.layers = 1 }
                if config.model.echoState == nil { config.model.echoState = .default }
                if config.model.leak == nil { config.model.leak = EchoStateConfig.defaultLeak }
            }
            // A new run sums by reduction groups unless told otherwise (byte-identical at np = 1, 2, 4, 8
            // where they divide the groups); a resumed one keeps what it recorded (nil: none, as before groups).
            var groupsOff: String?
            if resumePath == nil, config.problem() == nil { groupsOff = config.adoptDefaultReductionGroup(worldSize: comm.size) }
            if let problem = config.problem() ?? options.unusedOptionProblem(config) ?? options.echoStateProblem(config, resuming: resumePath != nil)
                ?? MemoryEstimate.trainingProblem(config, worldSize: comm.size) {
                throw TrainingError.config(problem)
            }
            if let groupsOff, comm.rank == 0 { notice("notice: \(groupsOff)") }
            if comm.rank == 0 {
                print(BLASEnvironment.summary)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print("configuration:\n" + String(decoding: try encoder.encode(config), as: UTF8.self))
            }
            if let dir = directory, config.checkpointDir != dir.path {
                dir.lock?.release()
                directory = nil
            }
            let run = try TrainingRun(config: config, communicator: comm, resume: resumePath, initFrom: options.initFrom,
                                      directory: directory, overrides: overrides, log: log)
            run.trainer.faultHook = try Self.faultHook(rank: comm.rank)
            run.checkpointFailureHook = try Self.slowCheckpointHook()
            _ = try run.run()
        }
    }
}

/// What `train` needs from a checkpoint before the run is built (read and verified on rank 0).
struct SavedRun: Codable {
    var config: TrainingConfig
    var step: Int
    var dataSHA256: String

    init(_ path: String) throws {
        let content = try Checkpoint.load(path)
        config = content.config
        step = content.progress.step
        dataSHA256 = content.dataSHA256
    }
}

extension CellOption {
    /// The command-line name of a cell kind.
    static func name(of kind: CellKind) -> String {
        allCases.first { $0.kind == kind }?.rawValue ?? kind.rawValue
    }
}

extension ScheduleOption {
    /// The command-line name of a schedule's kind.
    static func name(of schedule: LRSchedule) -> String {
        switch schedule {
        case .constant: "constant"
        case .stepDecay: "step"
        case .plateau: "plateau"
        case .cosine: "cosine"
        }
    }
}
