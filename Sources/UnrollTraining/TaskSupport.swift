// Pieces the variable-length tasks (sequences, pairs) share: the padding efficiency of their
// length-grouped batches for the progress line, and loading a checkpoint's parameters into a model
// built without a trainer (evaluation, prediction, translation).
import UnrollModels

/// Real and computed (real + padding) steps of the batches since the last progress line.
struct PaddingTally {
    private var valid = 0, padded = 0

    mutating func add(valid v: Int, padded p: Int) {
        valid += v
        padded += p
    }

    /// "padding eff 97%" over the steps since the last call, or nil when none ran; starts over.
    mutating func note() -> String? {
        guard padded > 0 else { return nil }
        defer { self = PaddingTally() }
        return "padding eff \(Int((100 * Double(valid) / Double(padded)).rounded()))%"
    }
}

extension ParameterArena {
    /// Copies a checkpoint's parameters in (every view must be there with its shape).
    public func copyParameters(from content: CheckpointContent) throws {
        for view in layout.views {
            guard let values = content.parameters[view.name], values.count == view.count else {
                throw TrainingError.checkpoint("/params/\(view.name): missing or of another shape (expected \(view.shape))")
            }
            parameters(view).update(from: values, count: view.count)
        }
    }
}
