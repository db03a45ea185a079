// The seam between a problem (its data and its model) and the task-agnostic training core. The
// core (Trainer.step) asks the task for this rank's share of a step, has it run forward and
// backward into the flat gradient, reduces with GradientSync and updates with UpdateRule; it never
// looks at tokens, streams or hidden states. `LanguageModelTask` is the first implementation.
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
    /// Forward and backward of the prepared step, accumulating into `arena.gradients`: `ready(offset)`
    /// is called as the gradient from `offset` to the end becomes final, `progress()` after every
    /// time step of backward. `step` (global, 0-based) keys the step's randomness (dropout).
    /// - Returns: this rank's loss sum and number of targets.
    func forwardBackward(step: Int, ready: @escaping (_ offset: Int) -> Void, progress: @escaping () -> Void)
        -> (lossSum: Double, count: Int)
    /// Validates on `split` (collective); the sums reduce exactly, whatever the world size.
    func evaluate(split: String) throws -> EvaluationResult
}
