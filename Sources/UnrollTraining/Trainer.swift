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
    /// A failure decided on rank 0 and reported by every rank with rank 0's message.
    case agreed(String)

    public var description: String {
        switch self {
        case .config(let m): "configuration: \(m)"
        case .tooManySkips(let n):
            "training stopped: the gradient norm was NaN or Inf on \(n) consecutive steps (lower --lr or --clip)"
        case .data(let m): m
        case .checkpoint(let m): m
        case .agreed(let m): m
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

/// Indices into the gradient arena's reduction extras.
enum Extra {
    static let lossInteger = 0, lossFraction = 1, tokenCount = 2, stop = 3
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
    /// Reduces the gradient from `bucketStart` on (everything but the embedding when
    /// `embeddingReducer` exists) in buckets while backward runs.
    let reducer: GradientBucketReducer
    /// Reduces only the embedding rows some rank's tokens touched (on one rank: just finds them),
    /// so that zeroing, the norm and plain SGD skip the rest of the table.
    let embeddingReducer: SparseRowReducer?
    let bucketStart: Int
    private var prefetcher: WindowPrefetcher?
    /// Set from a signal handler; reduced with the gradients so all ranks stop together.
    public var stopRequested = false

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
        let layout = model.arena.layout
        if let embedding = layout.views.first, embedding.name == "embedding.weight", embedding.offset == 0 {
            embeddingReducer = SparseRowReducer(rows: config.model.vocabSize, width: config.model.embeddingSize,
                                                communicator: communicator)
            bucketStart = layout.views.dropFirst().first?.offset ?? layout.totalCount
        } else {
            embeddingReducer = nil
            bucketStart = 0
        }
        let gradients = model.arena.gradients.buffer
        reducer = GradientBucketReducer(buffer: UnsafeMutableBufferPointer(rebasing: gradients[bucketStart...]),
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

    /// Zeroes the gradient buffer before a step; with a sparse embedding reduction only the rows
    /// the last step reduced can be non-zero, so only those are cleared in the (large) table.
    private func zeroGradients() {
        let arena = model.arena
        guard let embeddingReducer, let rows = embeddingReducer.reducedRows else {
            arena.zeroGradients()
            return
        }
        let g = arena.gradients.pointer, width = embeddingReducer.width
        (g + bucketStart).update(repeating: 0, count: arena.gradients.count - bucketStart)
        for row in rows { (g + row * width).update(repeating: 0, count: width) }
    }

    /// Runs one optimizer step on every rank (collective).
    public func step() throws -> StepReport {
        let stepStart = monotonicSeconds()
        if progress.window >= windowsPerEpoch {
            progress.epoch += 1
            progress.window = 0
            state.zero()          // a new epoch starts every stream from a zero state
            prefetcher = nil
        }
        if prefetcher == nil {
            prefetcher = WindowPrefetcher(source: reader, windows: progress.window..<windowsPerEpoch)
        }
        let lr = currentLearningRate
        let ioStart = monotonicSeconds()
        guard let window = try prefetcher?.next() else {
            throw TrainingError.data("\(config.data): window \(progress.window) of the train split could not be read")
        }
        let ioSeconds = monotonicSeconds() - ioStart
        precondition(window.index == progress.window, "prefetcher out of step")

        let arena = model.arena, extras = arena.gradientExtras
        zeroGradients()
        var communicationSeconds = 0.0
        var reductionError: (any Error)?
        let computeStart = monotonicSeconds()
        let injectNaN = config.faultInjection.map { $0.rank == communicator.rank && $0.step == progress.step } ?? false
        let reducer = self.reducer, embeddingReducer = self.embeddingReducer, bucketStart = self.bucketStart
        /// Runs one communication call inside backward's callbacks (which cannot throw): timed, and
        /// skipped once a call has failed; the error is rethrown after backward.
        func communicate(_ call: () throws -> Void) {
            guard reductionError == nil else { return }
            let t0 = monotonicSeconds()
            do { try call() } catch { reductionError = error }
            communicationSeconds += monotonicSeconds() - t0
        }
        // Agreeing on the touched rows overlaps forward. The injected NaN goes to row 0, which must
        // then count as touched for the NaN to be reduced like a real one.
        communicate {
            try embeddingReducer?.begin(touched: window.inputs.prefix(window.length * window.batch),
                                        alsoRow: injectNaN ? 0 : nil)
        }
        if let reductionError { throw reductionError }
        window.inputs.withUnsafeBufferPointer { inputs in
            window.targets.withUnsafeBufferPointer { targets in
                model.forward(tokens: inputs.baseAddress!, steps: window.length, batch: window.batch, state: state,
                              dropout: DropoutContext(seed: config.seed, step: UInt64(progress.step),
                                                      firstStream: reader.firstStream, globalBatch: config.batchSize))
                var first = true
                let model = self.model, stopRequested = self.stopRequested
                let pollReductions = {
                    communicate {
                        try reducer.poll()
                        _ = try embeddingReducer?.poll()
                    }
                }
                model.backward(targets: targets.baseAddress!, gradScale: 1, gradientsReady: { offset in
                    if first {
                        first = false
                        let (lossSum, count) = model.lastLoss
                        let whole = lossSum.rounded()
                        extras[Extra.lossInteger] = Float(whole)
                        extras[Extra.lossFraction] = Float(lossSum - whole)
                        extras[Extra.tokenCount] = Float(count)
                        extras[Extra.stop] = stopRequested ? 1 : 0
                    }
                    if offset == 0 && injectNaN {
                        arena.gradients[0] = .nan
                    }
                    communicate {
                        try reducer.ready(from: max(0, offset - bucketStart))
                        if offset == 0 { try embeddingReducer?.start(arena.gradients.pointer) }
                    }
                }, progress: pollReductions)
            }
        }
        if let reductionError { throw reductionError }
        let finishStart = monotonicSeconds()
        try reducer.finish()
        try embeddingReducer?.finish()
        communicationSeconds += monotonicSeconds() - finishStart
        let computeSeconds = monotonicSeconds() - computeStart - communicationSeconds

        let tokens = Int(extras[Extra.tokenCount])
        let lossSum = Double(extras[Extra.lossInteger]) + Double(extras[Extra.lossFraction])
        let stop = extras[Extra.stop] > 0
        let g = arena.gradients.pointer, n = arena.count
        // The gradient SUM becomes the gradient of the mean over global tokens (or over streams);
        // that factor and the clipping factor are applied inside the update, not as extra passes.
        let divisor = config.lossNormalization == .token ? tokens : config.batchSize
        let average = tokens > 0 ? 1 / Double(divisor) : 0
        let sparse = embeddingReducer?.reducedRows.map {
            SparseRows(rows: $0, width: config.model.embeddingSize, blockEnd: bucketStart)
        }
        let norm = (sparse?.norm(g, count: n) ?? Clipping.globalNorm(g, count: n)) * average
        var clipped = false, skipped = false
        if !norm.isFinite || tokens == 0 {
            skipped = true
            progress.consecutiveSkips += 1
            progress.skippedSteps += 1
        } else {
            progress.consecutiveSkips = 0
            var scale = average
            switch config.clipMode {
            case .norm:
                if norm > config.clip {
                    scale *= config.clip / norm
                    clipped = true
                }
            case .value:
                RowKernels.scale(g, by: Float(scale), count: n)
                Clipping.clipElementwise(g, count: n, limit: Float(config.clip))
                scale = 1
            }
            optimizer.update(arena, lr: Float(lr), gradScale: Float(scale), sparse: sparse)
        }
        let report = StepReport(step: progress.step, epoch: progress.epoch,
                                loss: tokens > 0 ? lossSum / Double(tokens) : .nan, tokens: tokens,
                                gradNorm: norm, clipped: clipped, skipped: skipped, learningRate: lr,
                                computeSeconds: computeSeconds, communicationSeconds: communicationSeconds,
                                ioSeconds: ioSeconds, stepSeconds: monotonicSeconds() - stepStart,
                                stopRequested: stop, endedEpoch: progress.window + 1 >= windowsPerEpoch)
        progress.step += 1
        progress.window += 1
        if progress.consecutiveSkips >= config.maxConsecutiveSkips {
            throw TrainingError.tooManySkips(progress.consecutiveSkips)
        }
        return report
    }
}
