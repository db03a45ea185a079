// `unroll train`: builds a TrainingConfig from --config FILE (JSON), command-line overrides and
// one test-hook environment variable (UNROLL_TEST_INJECT_NAN),
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
    case rnn, rnnRelu = "rnn-relu", lstm, gru
    var kind: CellKind {
        switch self {
        case .rnn: .rnnTanh
        case .rnnRelu: .rnnRelu
        case .lstm: .lstm
        case .gru: .gru
        }
    }
}

enum ScheduleOption: String, ExpressibleByArgument, CaseIterable { case constant, step, plateau, cosine }

extension OptimizerKind: ExpressibleByArgument {}
extension ClipMode: ExpressibleByArgument {}
extension LossNormalization: ExpressibleByArgument {}

struct DataOptions: ParsableArguments {
    @Option(help: "Dataset file made by `unroll prepare` (required unless in --config).")
    var data: String?
    @Option(help: "Global number of streams B, split across ranks (default 32).")
    var batchSize: Int?
    @Option(help: "TBPTT window T in steps (default 35).")
    var bptt: Int?
    @Option(help: "Streams of the evaluation layout, independent of the rank count (default 8).")
    var evalStreams: Int?
}

struct ModelOptions: ParsableArguments {
    @Option(help: "Cell: rnn (tanh), rnn-relu, lstm, gru (default lstm).")
    var cell: CellOption?
    @Option(help: "Recurrent layers (default 2).")
    var layers: Int?
    @Option(help: "Hidden size H (default 200).")
    var hidden: Int?
    @Option(help: "Embedding size E (default: the hidden size).")
    var embedding: Int?
    @Option(help: "Dropout on non-recurrent connections (default 0).")
    var dropout: Float?
    @Option(help: "Initialise every parameter U(-a, a); 0 = PyTorch's defaults (default 0).")
    var initRange: Float?
    @Flag(inversion: .prefixedNo, help: "LSTM: forget-gate bias starts at 1 (default off).")
    var forgetBias: Bool?
}

struct OptimisationOptions: ParsableArguments {
    @Option(help: "sgd, momentum, nesterov, adam, adamw, adagrad (default sgd).")
    var optimizer: OptimizerKind?
    @Option(help: "Base learning rate (default 1).")
    var lr: Double?
    @Option(help: "constant, step (×decay per epoch after --decay-after), plateau, cosine (default constant).")
    var lrSchedule: ScheduleOption?
    @Option(help: "Decay factor for step/plateau schedules (default 0.5).")
    var lrDecay: Double?
    @Option(help: "Step schedule: last epoch at the base rate (default 4).")
    var decayAfter: Int?
    @Option(help: "Cosine schedule: warm-up steps (default 0).")
    var warmup: Int?
    @Option(help: "Momentum for momentum/nesterov (default 0.9).")
    var momentum: Float?
    @Option(help: "Weight decay (AdamW: decoupled) (default 0).")
    var weightDecay: Float?
    @Option(help: "Clipping threshold (default 5).")
    var clip: Double?
    @Option(help: "norm (global L2 norm) or value (element-wise) (default norm).")
    var clipMode: ClipMode?
    @Option(help: "token: gradient of the mean loss per token; stream: of the loss summed over the window and averaged over streams, as Zaremba et al. (default token).")
    var lossNormalization: LossNormalization?
    @Option(help: "Epochs (default 1; ignored with --steps).")
    var epochs: Int?
    @Option(help: "Total optimizer steps of the run counted from step 0.")
    var steps: Int?
    @Option(help: "Seed of initialisation and dropout (default 1).")
    var seed: UInt64?
    @Option(help: "Stop after this many consecutive NaN/Inf gradient steps (default 10).")
    var maxSkips: Int?
}

struct BookkeepingOptions: ParsableArguments {
    @Option(help: "Validate every N steps; 0 = at each epoch end (default 0).")
    var evalEvery: Int?
    @Option(help: "Progress line every N steps (default 20).")
    var logEvery: Int?
    @Option(help: "Directory for checkpoints (none: no checkpoints).")
    var checkpointDir: String?
    @Option(help: "Checkpoint every N steps; 0 = at epoch ends and the end (default 0).")
    var checkpointEvery: Int?
    @Option(help: "Recent checkpoints kept besides the best (default 3).")
    var keep: Int?
    @Option(help: "JSON-lines metrics file (appended).")
    var metrics: String?
}

struct DistributedOptions: ParsableArguments {
    @Option(help: "Gradient allreduce bucket size in bytes (default 4194304).")
    var bucketBytes: Int?
    @OptionGroup var watchdog: WatchdogOptions
    @Option(help: "Seconds a rank may take after SIGTERM/SIGINT to finish the step and save before it is ended anyway (stuck in a collective or I/O); a second signal ends it at once (default 30).")
    var stopGrace: Double = StopSignals.defaultGrace

    func validate() throws {
        try WatchdogOptions.requirePositive(stopGrace, "--stop-grace")
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a recurrent language model (run under mpirun for several ranks).")

    @Option(help: "Configuration file, JSON or TOML, whose keys are these long options (e.g. cell = \"lstm\"); command-line options override it.")
    var config: String?
    @Option(help: "Resume from a checkpoint file, or 'latest' in --checkpoint-dir.")
    var resume: String?

    @OptionGroup(title: "Data") var dataOptions: DataOptions
    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Optimisation") var optimisation: OptimisationOptions
    @OptionGroup(title: "Bookkeeping") var bookkeeping: BookkeepingOptions
    @OptionGroup(title: "Distributed") var distributed: DistributedOptions

    /// With --config: this command re-parsed with the file's options before the command line's,
    /// so the command line wins.
    func mergingConfigFile() throws -> Train {
        guard let path = config else { return self }
        let fileArgs = try ConfigFile.arguments(fromFile: path)
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

    /// The resolved configuration: file, then overrides, then the dataset's vocabulary size.
    func resolve() throws -> TrainingConfig {
        guard let data = dataOptions.data else { throw ValidationError("--data is required (or in --config)") }
        var c = TrainingConfig(data: data, model: ModelConfig(cell: .lstm, vocabSize: 1, embeddingSize: 200,
                                                              hiddenSize: 200, layers: 2))
        c.model.embeddingSize = modelOptions.embedding ?? modelOptions.hidden ?? 200
        let d = dataOptions, m = modelOptions, o = optimisation, b = bookkeeping
        if let v = d.data { c.data = v }
        if let v = d.batchSize { c.batchSize = v }
        if let v = d.bptt { c.bptt = v }
        if let v = d.evalStreams { c.evalStreams = v }
        if let v = m.cell { c.model.cell = v.kind }
        if let v = m.layers { c.model.layers = v }
        if let v = m.hidden { c.model.hiddenSize = v }
        if let v = m.embedding { c.model.embeddingSize = v }
        if let v = m.dropout { c.model.dropout = v }
        if let v = m.initRange { c.model.initScheme = v > 0 ? .uniform(v) : .pytorch }
        if let v = m.forgetBias { c.model.forgetGateBias = v }
        if let v = o.optimizer { c.optimizer.kind = v }
        if let v = o.lr { c.learningRate = v }
        if let v = o.momentum { c.optimizer.momentum = v }
        if let v = o.weightDecay { c.optimizer.weightDecay = v }
        if let v = o.clip { c.clip = v }
        if let v = o.clipMode { c.clipMode = v }
        if let v = o.lossNormalization { c.lossNormalization = v }
        if let v = o.epochs { c.epochs = v }
        if let v = o.steps { c.steps = v }
        if let v = o.seed { c.seed = v }
        if let v = o.maxSkips { c.maxConsecutiveSkips = v }
        if let s = o.lrSchedule {
            let decay = o.lrDecay ?? 0.5
            switch s {
            case .constant: c.schedule = .constant
            case .step: c.schedule = .stepDecay(afterEpoch: o.decayAfter ?? 4, factor: decay)
            case .plateau: c.schedule = .plateau(factor: decay, patience: 0, threshold: 0)
            case .cosine: c.schedule = .cosine(warmupSteps: o.warmup ?? 0, totalSteps: 0, minFactor: 0)
            }
        }
        if let v = b.evalEvery { c.evalEvery = v }
        if let v = b.logEvery { c.logEvery = max(1, v) }
        if let v = b.checkpointDir { c.checkpointDir = v }
        if let v = b.checkpointEvery { c.checkpointEvery = v }
        if let v = b.keep { c.keep = v }
        if let v = b.metrics { c.metrics = v }
        if let v = distributed.bucketBytes { c.bucketBytes = v }
        if let spec = ProcessInfoLite.environment(Self.nanInjectionVariable) {
            c.faultInjection = try Self.parseFaultInjection(spec)
        }
        return c
    }

    /// Test hook, deliberately not a command-line option: `UNROLL_TEST_INJECT_NAN=RANK:STEP` makes
    /// the gradient NaN on rank RANK at the 0-based step STEP, so tests can check that every rank
    /// skips that update together (launch/test-train). Set it for every rank (`mpirun -x`): it is
    /// part of the configuration that the ranks compare.
    static let nanInjectionVariable = "UNROLL_TEST_INJECT_NAN"

    static func parseFaultInjection(_ spec: String) throws -> FaultInjection {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let rank = Int(parts[0]), let step = Int(parts[1]), rank >= 0, step >= 0 else {
            throw ValidationError("\(nanInjectionVariable): expected RANK:STEP (two integers ≥ 0), found '\(spec)'")
        }
        return FaultInjection(rank: rank, step: step)
    }

    func run() throws {
        let comm = try makeCommunicator()
        try runReportingErrors(communicator: comm) {
            try mergingConfigFile().distributed.watchdog.apply(to: comm)
            var c = try mergingConfigFile().resolve()
            // The vocabulary size comes from the dataset.
            let dataset = try TokenDataset(path: c.data)
            c.model.vocabSize = dataset.vocabSize
            if let dir = c.checkpointDir, comm.rank == 0 {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            }
            try TrainingRun.installSignalHandlers(stopGrace: try mergingConfigFile().distributed.stopGrace)
            if comm.rank == 0 {
                print(BLASEnvironment.summary)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print("configuration:\n" + String(decoding: try encoder.encode(c), as: UTF8.self))
            }
            let run = try TrainingRun(config: c, communicator: comm, resume: resume) { line in print(line); fflush(nil) }
            _ = try run.run()
        }
    }
}
