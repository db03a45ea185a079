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

/// The per-rank training state and step: a task computes local gradients and loss sums,
/// `GradientSync` reduces them, `UpdateRule` averages, clips and updates.
public final class Trainer {
    public let config: TrainingConfig
    public let communicator: any Communicator
    /// The problem being trained (data, model, carried state).
    public let task: any TrainingTask
    public let optimizer: Optimizer
    public var progress = TrainingProgress()
    /// Moves the gradient and the step's totals between ranks.
    public let sync: GradientSync
    /// Where the task's data cursor stands (epoch, position); a step starts the task anew there
    /// when `progress` says otherwise (first step, a resume, a new epoch).
    private var taskPosition: (epoch: Int, position: Int)?
    /// `--accumulate` with reduction groups: the pending partial gradient of each tree level.
    private var treeBuffers: [FloatBuffer] = []
    /// Set from a signal handler; reduced with the gradients so all ranks stop together.
    public var stopRequested = false
    /// Test hook: returns true for a step (0-based) at which this rank's gradient is to be made
    /// NaN, to check that every rank skips that update together. Installed by the CLI or a test;
    /// not part of the configuration.
    public var faultHook: ((_ step: Int) -> Bool)?

    /// Builds the task (data and model, initialised from `config.seed`, identical on every rank),
    /// the optimizer and the gradient synchronisation.
    public init(config: TrainingConfig, communicator: any Communicator) throws {
        if let p = config.problem() { throw TrainingError.config(p) }
        if let p = MemoryEstimate.trainingProblem(config, worldSize: communicator.size) { throw TrainingError.config(p) }
        self.config = config
        self.communicator = communicator
        task = try TrainingTasks.make(config: config, communicator: communicator)
        optimizer = Optimizer(config: config.optimizer, parameterCount: task.arena.count)
        sync = GradientSync(arena: task.arena, embedding: task.sparseTable, bucketBytes: config.bucketBytes,
                            communicator: communicator)
    }

    public var windowsPerEpoch: Int { task.stepsPerEpoch }

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

    /// Positions the task at the current step (a new epoch when the last one is done) and has it
    /// read its share. Returns the sparse-table rows it touches.
    private func prepareStep() throws -> ArraySlice<Int32> {
        if progress.window >= task.stepsPerEpoch {
            progress.epoch += 1
            progress.window = 0
        }
        if taskPosition == nil || taskPosition! != (progress.epoch, progress.window) {
            task.startEpoch(progress.epoch, at: progress.window)
        }
        let rows = try task.prepareStep(progress.window)
        taskPosition = (progress.epoch, progress.window + 1)
        return rows
    }

    /// The task's forward and backward over the step's `config.accumulation` micro-batches, their
    /// gradients accumulated in the flat buffer; the last micro-batch's backward hands finished
    /// parts of the gradient to `sync` (the earlier ones' are not final yet).
    private func forwardBackward() -> StepTotals {
        let sync = self.sync, arena = task.arena
        let poison = faultHook?(progress.step) ?? false
        var first = true
        let ready: (Int) -> Void = { offset in
            // The first part handed over holds the end of the arena: a NaN put there is reduced like
            // a real one, whatever the sparse rows do.
            if first && poison { arena.gradients[arena.count - 1] = .nan }
            first = false
            sync.gradientsReady(from: offset)
        }
        let parts = config.accumulation
        if parts > 1 && config.effectiveReductionGroup > 0 { return forwardBackwardTree(parts: parts, ready: ready) }
        var lossSum = 0.0, count = 0
        for m in 0..<parts {
            let micro = MicroBatch(index: m, count: parts)
            let part = task.forwardBackward(step: progress.step, microBatch: micro, ready: micro.isLast ? ready : { _ in },
                                            progress: sync.poll)
            lossSum += part.lossSum
            count += part.count
        }
        return StepTotals(lossSum: lossSum, count: count, stop: stopRequested)
    }

    /// `--accumulate K` with reduction groups: each micro-batch is a whole subtree of the rank's
    /// groups (K a power of two dividing them, checked by the configuration), run into a zeroed
    /// gradient, and the K results are added by the halving tree — a binary counter of pending
    /// partial sums, ((m0 + m1) + (m2 + m3)) — so the rank's gradient and loss are the same bits
    /// as one pass over its share, and as any other split over ranks and micro-batches. The
    /// gradient is final only after the last addition: it is handed over whole (no overlap).
    private func forwardBackwardTree(parts: Int, ready: (Int) -> Void) -> StepTotals {
        let gradients = task.arena.gradients, n = task.arena.count
        var pending: [(level: Int, lossSum: Double)] = []  // the gradient of level ℓ waits in treeBuffers[ℓ]
        var count = 0, lossSum = 0.0
        for m in 0..<parts {
            if m > 0 { gradients.pointer.update(repeating: 0, count: n) }
            let part = task.forwardBackward(step: progress.step, microBatch: MicroBatch(index: m, count: parts),
                                            ready: { _ in }, progress: sync.poll)
            count += part.count
            lossSum = part.lossSum
            var level = 0
            while let last = pending.last, last.level == level {
                // Right subtree += left subtree (addition commutes bit for bit, so the order of operands
                // is not a choice; the grouping is).
                RowKernels.add(gradients.pointer, treeBuffers[level].pointer, count: n)
                lossSum = last.lossSum + lossSum
                pending.removeLast()
                level += 1
            }
            if m < parts - 1 {
                while treeBuffers.count <= level { treeBuffers.append(FloatBuffer(count: n)) }
                treeBuffers[level].pointer.update(from: gradients.pointer, count: n)
                pending.append((level, lossSum))
            }
        }
        precondition(pending.isEmpty, "--accumulate \(parts) with reduction groups must be a power of two")
        ready(0)
        return StepTotals(lossSum: lossSum, count: count, stop: stopRequested)
    }

    /// Runs one optimizer step on every rank (collective): this rank's forward and backward, the
    /// reduction of gradients and totals, the update, the bookkeeping.
    public func step() throws -> StepReport {
        let stepStart = monotonicSeconds()
        let lr = currentLearningRate
        let touchedRows = try prepareStep()
        let ioSeconds = monotonicSeconds() - stepStart
        sync.zeroGradients()
        // "compute" is forward and backward, as in the benchmark history (zeroing and the update
        // count in the step time only).
        let computeStart = monotonicSeconds()
        try sync.beginStep(touchedRows: touchedRows)
        let totals = try sync.finish(forwardBackward())
        let computeSeconds = monotonicSeconds() - computeStart - sync.communicationSeconds
        let divisor = config.lossNormalization == .token ? totals.count : config.batchSize
        let outcome = UpdateRule.apply(to: task.arena, optimizer: optimizer, divisor: totals.count > 0 ? divisor : 0,
                                       clip: config.clip, clipMode: config.clipMode, lr: Float(lr), sparse: sync.sparseRows)
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
