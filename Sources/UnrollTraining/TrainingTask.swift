// The seam between a problem (its data and its model) and the task-agnostic training core. The
// core (Trainer.step) asks the task for this rank's share of a step, has it run forward and
// backward into the flat gradient, reduces with GradientSync and updates with UpdateRule; it never
// looks at tokens, streams or hidden states. `LanguageModelTask` is the first implementation.
import UnrollDistributed
import UnrollModels

/// A trainable problem on one rank: data, model, and the state carried between steps.
public protocol TrainingTask: AnyObject {
    /// Parameters and gradients, one flat buffer each (one reduction moves the whole gradient).
    var arena: ParameterArena { get }
    /// The table at the start of the arena whose gradient is row-sparse (rows = input ids), if any.
    var sparseTable: ParameterView? { get }
    /// Optimizer steps in one epoch.
    var stepsPerEpoch: Int { get }

    /// Starts epoch `epoch` (1-based) at step `position` of it: resets what an epoch resets (e.g.
    /// carried states) when `position` is 0, and positions the data.
    func startEpoch(_ epoch: Int, at position: Int)
    /// Reads this rank's share of step `position` of the current epoch.
    /// - Returns: the rows of `sparseTable` it touches (empty without a sparse table).
    func prepareStep(_ position: Int) throws -> ArraySlice<Int32>
    /// Forward and backward of micro-batch `microBatch` of the prepared step, accumulating (+=)
    /// into `arena.gradients`. The trainer calls it `microBatch.count` times per step (index 0, 1,
    /// …; `--accumulate`, 1 by default) after one `prepareStep`, and zeroes the gradient only before
    /// the first: micro-batch m is the m-th of `count` contiguous parts of this rank's share (its
    /// streams or sequences), so the parts together are exactly the unsplit share.
    /// `ready(offset)` is called as the gradient from `offset` to the end becomes final for this
    /// micro-batch (the trainer passes a no-op except in the last one, whose backward starts the
    /// reduction), `progress()` after every time step of backward. `step` (global, 0-based) keys
    /// the step's randomness (dropout), which must not depend on the split.
    /// - Returns: this micro-batch's loss sum and number of targets on this rank.
    func forwardBackward(step: Int, microBatch: MicroBatch, ready: @escaping (_ offset: Int) -> Void,
                         progress: @escaping () -> Void) -> (lossSum: Double, count: Int)
    /// Validates on `split` (collective); the sums reduce exactly, whatever the world size.
    func evaluate(split: String) throws -> EvaluationResult

    /// What the task keeps in a checkpoint beside parameters, optimizer and progress
    /// (collective: every rank calls it; rank 0's value is written). `progress` is the run's.
    func checkpointState(progress: TrainingProgress) throws -> TaskState
    /// Restores what `checkpointState` saved; the checkpoint may come from another world size.
    func restore(_ state: TaskState, file: String) throws
    /// Throws unless a checkpoint's task state was made for the same data as this task's (same
    /// vocabulary, classes, …), for `--init-from`; `label` starts the message.
    func checkSameData(_ state: TaskState, label: String) throws
    /// The parameters of `config`'s model, in arena order under PyTorch state-dict names.
    static func parameterLayout(_ config: TrainingConfig) -> ParameterLayout
    /// The entries `checkpointState` writes for `config`, for `Checkpoint.load` to check.
    static func checkpointSchema(_ config: TrainingConfig) -> TaskStateSchema

    /// Setup line of the run's log, e.g. "2 rank(s) × 16 streams, 663 windows per epoch".
    var setupDescription: String { get }
    /// What one counted target is called in progress lines ("tok", "seq", "step").
    var targetUnit: String { get }
    /// Extra figures for a mean training loss in the progress line, e.g. "ppl 120.5 bpc 1.2".
    func lossFigures(meanLoss: Double) -> [Metric]
    /// Anything else the progress line should show about the last steps (nil: nothing), e.g.
    /// the padding efficiency of variable-length batches.
    func progressNote() -> String?
}

extension TrainingTask {
    public func progressNote() -> String? { nil }
}

/// Which part of a rank's share of a step `TrainingTask.forwardBackward` runs: part `index` of
/// `count` (`--accumulate`: gradients of `count` micro-batches are summed before one reduction).
public struct MicroBatch: Sendable, Equatable {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        precondition(count >= 1 && index >= 0 && index < count, "micro-batch \(index) of \(count)")
        self.index = index
        self.count = count
    }

    /// The whole share (no accumulation).
    public static let whole = MicroBatch(index: 0, count: 1)
    public var isLast: Bool { index == count - 1 }

    /// The part of `0..<n` this micro-batch covers: contiguous, in order, sizes differing by at
    /// most one (equal when `count` divides `n`).
    public func range(of n: Int) -> Range<Int> {
        (index * n / count)..<((index + 1) * n / count)
    }
}

/// Builds the task a configuration describes.
public enum TrainingTasks {
    /// The task type for `config`.
    public static func type(for config: TrainingConfig) -> any TrainingTask.Type {
        if config.trees != nil { return TreeTask.self }
        if config.seq2seq != nil { return Seq2SeqTask.self }
        return config.sequence == nil ? LanguageModelTask.self : SequenceTask.self
    }

    /// Opens the data and builds the model of `config`'s task on this rank.
    public static func make(config: TrainingConfig, communicator: any Communicator) throws -> any TrainingTask {
        if config.trees != nil { return try TreeTask(config: config, communicator: communicator) }
        if config.seq2seq != nil { return try Seq2SeqTask(config: config, communicator: communicator) }
        return config.sequence == nil
            ? try LanguageModelTask(config: config, communicator: communicator)
            : try SequenceTask(config: config, communicator: communicator)
    }
}
