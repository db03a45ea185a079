// The distributed TBPTT training step. Each rank runs forward/backward over its own streams'
// window from the carried state; one allreduce (in buckets, started as backward finishes them)
// carries the gradient SUM together with the loss SUM, the token COUNT and a stop flag; gradients
// are divided by the global token count, the global norm is computed once on the reduced gradient
// (identical on every rank), clipped, and every rank applies the same update — or every rank skips
// it when the norm is not finite. The window's final state is carried, detached, into the next.
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels

/// Errors that end a run.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case config(String)
    case tooManySkips(Int)
    case data(String)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .config(let m): "configuration: \(m)"
        case .tooManySkips(let n):
            "training stopped: the gradient norm was NaN or Inf on \(n) consecutive steps (lower --lr or --clip)"
        case .data(let m): m
        case .checkpoint(let m): m
        }
    }
}

/// Where the run is: saved in checkpoints, identical on every rank.
public struct TrainingProgress: Codable, Equatable, Sendable {
    /// Optimizer steps taken (including skipped ones).
    public var step = 0
    /// Current epoch, 1-based.
    public var epoch = 1
    /// Next window of the epoch (the data cursor of every stream: all streams advance together).
    public var window = 0
    public var bestValidLoss: Double = .infinity
    public var scheduleState = LRScheduleState()
    public var consecutiveSkips = 0
    public var skippedSteps = 0
    /// Configuration values changed when the run was resumed (nil until the first override; an
    /// optional so that checkpoints written before it existed still decode).
    public var overrides: [ConfigOverride]?
    public init() {}
}

/// What one step did.
public struct StepReport: Sendable {
    public var step: Int
    public var epoch: Int
    /// Mean loss per token over the global batch.
    public var loss: Double
    public var tokens: Int
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    public var clipped: Bool
    public var skipped: Bool
    public var learningRate: Double
    public var computeSeconds: Double
    public var communicationSeconds: Double
    public var ioSeconds: Double
    public var stepSeconds: Double
    /// Some rank asked to stop (signal): every rank sees it at the same step.
    public var stopRequested: Bool
    /// This step finished an epoch.
    public var endedEpoch: Bool
}

/// The per-rank training state and step.
public final class Trainer {
    public let config: TrainingConfig
    public let communicator: any Communicator
    public let model: RecurrentLanguageModel
    public let optimizer: Optimizer
    /// Carried hidden state of this rank's streams, (L, B_local, H).
    public let state: RecurrentState
    public let reader: TrainStreamReader
    public let dataset: TokenDataset
    /// The dataset's vocabulary, read once (every checkpoint stores a copy).
    public let vocabulary: [String]
    public var progress = TrainingProgress()
    /// Moves the gradient and the step's totals between ranks.
    public let sync: GradientSync
    private var prefetcher: WindowPrefetcher?
    /// Set from a signal handler; reduced with the gradients so all ranks stop together.
    public var stopRequested = false
    /// Test hook: returns true for a step (0-based) at which this rank's gradient is to be made
    /// NaN, to check that every rank skips that update together. Installed by the CLI or a test;
    /// not part of the configuration.
    public var faultHook: ((_ step: Int) -> Bool)?

    /// Opens the data, builds the model (initialised from `config.seed`, identical on every rank)
    /// and the optimizer. `config.model.vocabSize` must equal the dataset's.
    public init(config: TrainingConfig, communicator: any Communicator) throws {
        if let p = config.problem() { throw TrainingError.config(p) }
        if let p = MemoryEstimate.trainingProblem(config, worldSize: communicator.size) { throw TrainingError.config(p) }
        self.config = config
        self.communicator = communicator
        dataset = try TokenDataset(path: config.data)
        vocabulary = try dataset.vocabulary()
        guard dataset.vocabSize == config.model.vocabSize else {
            throw TrainingError.config("model vocabulary \(config.model.vocabSize) ≠ dataset \(config.data) vocabulary \(dataset.vocabSize)")
        }
        reader = try TrainStreamReader(path: config.data, split: "train", globalBatch: config.batchSize,
                                       bptt: config.bptt, rank: communicator.rank, worldSize: communicator.size)
        let evalLocal = Self.evalRange(streams: config.evalStreams, rank: communicator.rank, size: communicator.size).count
        model = RecurrentLanguageModel(config: config.model, seed: config.seed, maxSteps: config.bptt,
                                       maxBatch: max(reader.localBatch, evalLocal, 1))
        optimizer = Optimizer(config: config.optimizer, parameterCount: model.arena.count)
        state = RecurrentState(config: config.model, batch: reader.localBatch)
        sync = GradientSync(arena: model.arena, embedding: model.arena.layout.view("embedding.weight"),
                            bucketBytes: config.bucketBytes, communicator: communicator)
    }

    /// Streams of the evaluation layout read by `rank`.
    static func evalRange(streams: Int, rank: Int, size: Int) -> Range<Int> {
        (rank * streams / size)..<((rank + 1) * streams / size)
    }

    public var windowsPerEpoch: Int { reader.windowsPerEpoch }

    /// Total optimizer steps of the run.
    public var totalSteps: Int { config.steps ?? config.epochs * windowsPerEpoch }

    public var isFinished: Bool { progress.step >= totalSteps }

    /// The learning rate of the next step.
    public var currentLearningRate: Double {
        var schedule = config.schedule
        // A cosine schedule without an explicit horizon decays over the whole run.
        if case .cosine(let warmup, 0, let minFactor) = schedule {
            schedule = .cosine(warmupSteps: warmup, totalSteps: totalSteps, minFactor: minFactor)
        }
        return schedule.rate(base: config.learningRate, step: progress.step, epoch: progress.epoch,
                             state: progress.scheduleState)
    }

    /// The next window of this rank's streams (a new epoch starts every stream from a zero state).
    private func nextWindow() throws -> TokenWindow {
        if progress.window >= windowsPerEpoch {
            progress.epoch += 1
            progress.window = 0
            state.zero()
            prefetcher = nil
        }
        if prefetcher == nil {
            prefetcher = WindowPrefetcher(source: reader, windows: progress.window..<windowsPerEpoch)
        }
        guard let window = try prefetcher?.next() else {
            throw TrainingError.data("\(config.data): window \(progress.window) of the train split could not be read")
        }
        precondition(window.index == progress.window, "prefetcher out of step")
        return window
    }

    /// Forward and backward over `window` into the flat gradient (backward hands finished parts
    /// to `sync` as it goes); returns this rank's loss sum and target count.
    private func forwardBackward(_ window: TokenWindow) -> StepTotals {
        let sync = self.sync, arena = model.arena, model = self.model
        let poison = faultHook?(progress.step) ?? false
        return window.inputs.withUnsafeBufferPointer { inputs in
            window.targets.withUnsafeBufferPointer { targets in
                model.forward(tokens: inputs.baseAddress!, steps: window.length, batch: window.batch, state: state,
                              dropout: DropoutContext(seed: config.seed, step: UInt64(progress.step),
                                                      firstStream: reader.firstStream, globalBatch: config.batchSize))
                var first = true
                let (lossSum, count) = model.backward(targets: targets.baseAddress!, gradScale: 1, gradientsReady: { offset in
                    // The decoder's gradient is handed over first: a poisoned element there is
                    // reduced like a real NaN, whatever the embedding rows do.
                    if first && poison { arena.gradients[arena.count - 1] = .nan }
                    first = false
                    sync.gradientsReady(from: offset)
                }, progress: sync.poll)
                return StepTotals(lossSum: lossSum, count: count, stop: stopRequested)
            }
        }
    }

    /// Runs one optimizer step on every rank (collective): this rank's forward and backward, the
    /// reduction of gradients and totals, the update, the bookkeeping.
    public func step() throws -> StepReport {
        let stepStart = monotonicSeconds()
        let lr = currentLearningRate
        let window = try nextWindow()
        let ioSeconds = monotonicSeconds() - stepStart
        let computeStart = monotonicSeconds()
        sync.zeroGradients()
        try sync.beginStep(touchedRows: window.inputs.prefix(window.length * window.batch))
        let totals = try sync.finish(forwardBackward(window))
        let divisor = config.lossNormalization == .token ? totals.count : config.batchSize
        let outcome = UpdateRule.apply(to: model.arena, optimizer: optimizer, divisor: totals.count > 0 ? divisor : 0,
                                       clip: config.clip, clipMode: config.clipMode, lr: Float(lr), sparse: sync.sparseRows)
        let computeSeconds = monotonicSeconds() - computeStart - sync.communicationSeconds
        if outcome.skipped {
            progress.consecutiveSkips += 1
            progress.skippedSteps += 1
        } else {
            progress.consecutiveSkips = 0
        }
        let report = StepReport(step: progress.step, epoch: progress.epoch,
                                loss: totals.count > 0 ? totals.lossSum / Double(totals.count) : .nan, tokens: totals.count,
                                gradNorm: outcome.gradNorm, clipped: outcome.clipped, skipped: outcome.skipped,
                                learningRate: lr, computeSeconds: computeSeconds,
                                communicationSeconds: sync.communicationSeconds, ioSeconds: ioSeconds,
                                stepSeconds: monotonicSeconds() - stepStart, stopRequested: totals.stop,
                                endedEpoch: progress.window + 1 >= windowsPerEpoch)
        progress.step += 1
        progress.window += 1
        if progress.consecutiveSkips >= config.maxConsecutiveSkips {
            throw TrainingError.tooManySkips(progress.consecutiveSkips)
        }
        return report
    }
}
