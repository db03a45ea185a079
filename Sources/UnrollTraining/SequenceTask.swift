// Sequence classification, regression and tagging (Deep Learning §10.2 fig. 10.5, §10.3): the
// second `TrainingTask`. A step is one global batch of B whole sequences (`SequenceBatches`), this
// rank's rows of it run as one padded, time-major batch sorted longest first, so the model skips
// padded steps exactly. Sequences longer than the window T run as consecutive windows with the
// state carried between them (truncated BPTT within the sequence); the window's gradients add up
// and the step's update happens once, after the last window. The loss is summed over the step's
// targets (sequences, or valid steps for tagging) and the core divides by their global count.
// Float features are standardised with the train split's statistics as they are batched.
// A Jordan model (`--cell jordan`) is fed the previous step's targets (teacher forcing) in training
// and in the teacher-forced evaluation, and its own previous predictions in free-running
// evaluation and prediction. With `--flow-reg λ` the gradient is that of Σ loss + λ·Σ Ω over the
// step's rows and steps, divided by the same global count of targets.
// Evaluation runs fixed batches spread over the ranks and reduces its sums per batch, so its
// result is the same for any world size.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels

/// One split of a sequence set in memory.
struct LoadedSequences {
    let offsets: [Int64]
    let lengths: [Int]
    let inputs: SequenceInputs
    let targets: SequenceTargets

    init(_ split: SequenceSplit) throws {
        offsets = split.offsets
        lengths = (0..<split.count).map { split.length(of: $0) }
        inputs = try split.loadInputs()
        targets = split.targets
    }
}

/// A full evaluation of a sequence task on one split.
public struct SequenceEvaluation: Sendable, Equatable {
    public var lossSum: Double
    /// Targets counted: sequences, or valid steps for tagging.
    public var count: Int
    public var meanLoss: Double { lossSum / Double(max(count, 1)) }
    /// Class outputs: names, and confusion[target][predicted] over every label.
    public var classNames: [String]
    public var confusion: [[Int]]
    /// Value outputs: sums over every component.
    public var squaredErrorSum: Double
    public var absoluteErrorSum: Double
    public var components: Int

    public var accuracy: Double {
        let total = confusion.reduce(0) { $0 + $1.reduce(0, +) }
        let correct = confusion.indices.reduce(0) { $0 + confusion[$1][$1] }
        return Double(correct) / Double(max(total, 1))
    }

    /// Per class: tp / (tp + fp) (0 when the class is never predicted).
    public var precision: [Double] {
        confusion.indices.map { c in
            let predicted = confusion.reduce(0) { $0 + $1[c] }
            return predicted > 0 ? Double(confusion[c][c]) / Double(predicted) : 0
        }
    }

    /// Per class: tp / (tp + fn) (0 when the class never occurs).
    public var recall: [Double] {
        confusion.indices.map { c in
            let actual = confusion[c].reduce(0, +)
            return actual > 0 ? Double(confusion[c][c]) / Double(actual) : 0
        }
    }

    /// Mean F1 over the classes that occur or are predicted (scikit-learn's macro average).
    public var macroF1: Double {
        let p = precision, r = recall
        var sum = 0.0, classes = 0
        for c in confusion.indices {
            let actual = confusion[c].reduce(0, +), predicted = confusion.reduce(0) { $0 + $1[c] }
            guard actual + predicted > 0 else { continue }
            classes += 1
            sum += p[c] + r[c] > 0 ? 2 * p[c] * r[c] / (p[c] + r[c]) : 0
        }
        return classes > 0 ? sum / Double(classes) : 0
    }

    public var meanSquaredError: Double { squaredErrorSum / Double(max(components, 1)) }
    public var meanAbsoluteError: Double { absoluteErrorSum / Double(max(components, 1)) }

    /// The figures reported beside the loss.
    public var metrics: [Metric] {
        classNames.isEmpty
            ? [Metric("mse", meanSquaredError, digits: 5), Metric("mae", meanAbsoluteError, digits: 5)]
            : [Metric("accuracy", accuracy), Metric("macro_f1", macroF1)]
    }
}

public final class SequenceTask: TrainingTask {
    public let config: TrainingConfig
    public let sequence: SequenceTaskConfig
    let communicator: any Communicator
    /// The dataset (nil for a model built from a checkpoint alone, for prediction).
    public let dataset: SequenceSet?
    public let model: SequenceModel
    /// Names of the classes (class outputs), and the vocabulary (token inputs).
    public let classNames: [String]
    public let vocabulary: [String]
    /// Per-feature mean and standard deviation applied to float inputs (nil: raw features).
    public private(set) var normalization: (mean: [Float], std: [Float])?
    /// The window T: sequences longer than it run as several windows.
    public let window: Int
    /// The longest sequence this task will see (the run's, or its dataset's if longer).
    let longest: Int
    var train: LoadedSequences?
    private var loaded: [String: LoadedSequences] = [:]
    private var epochBatches: [[Int]] = []
    /// This rank's rows of the prepared step and their positions in the global batch.
    var rows: [Int] = []
    var positions: [Int] = []
    /// Carried state per batch size (unidirectional models, for windows of long sequences).
    private var states: [Int: RecurrentState] = [:]
    // Work buffers, sized once for T × (largest batch).
    private var tokenBuffer: [Int32]
    private var featureBuffer: [Float]
    var classTargets: [Int32]
    var valueTargets: [Float]
    var rowMask: [UInt8]
    var dOutputs: [Float]
    /// Jordan models: (T, B, O) the fed-back targets of a window; (B, O) the fed-back predictions
    /// carried between the windows of free-running decoding.
    private var feedbackBuffer: [Float]
    private var freePrevious: [Float]
    /// Ω summed since the last progress line, and the targets it ran over (this rank's rows).
    var flowTally = (sum: 0.0, count: 0)
    /// Fixed reduction groups (`--reduction-group`, training only; see SequenceTask+Groups.swift).
    let groups: ReductionGroups?
    /// Groups only: the step's gradient in compact form (dense part, then the touched embedding
    /// rows), and each vocabulary entry's compact slot (−1: not touched by this rank's rows).
    var groupTotal = FloatBuffer(count: 1)
    var embeddingSlot: [Int32] = []
    /// Valid and padded (valid + padding) steps of the global batches since the last progress line.
    private var padding = PaddingTally()
    /// Valid and padded (valid + padding) steps of the last prepared global batch (all ranks'
    /// rows), for throughput that counts real steps only (the benchmark).
    public private(set) var preparedSteps: (valid: Int, padded: Int) = (0, 0)

    /// Opens the data and builds the model (identical on every rank). `forTraining` loads the
    /// train split; evaluation from a checkpoint leaves it out.
    public convenience init(config: TrainingConfig, communicator: any Communicator, forTraining: Bool = true) throws {
        guard let sequence = config.sequence else { preconditionFailure("SequenceTask needs config.sequence") }
        let dataset = try SequenceSet(path: config.data)
        try Self.checkDataset(dataset, matches: sequence, vocabSize: config.model.vocabSize, path: config.data)
        try self.init(config: config, communicator: communicator, dataset: dataset,
                      classNames: sequence.outputKind == .classes ? dataset.classNames : [],
                      vocabulary: dataset.vocabulary,
                      normalization: !sequence.tokens && sequence.normalize ? dataset.normalization : nil,
                      forTraining: forTraining)
    }

    /// The model of a checkpoint without its dataset, for prediction: vocabulary, classes and
    /// normalisation come from the checkpoint. Local (no communication).
    /// `longestInput` sizes the window for the inputs to come: a model that needs whole sequences
    /// (bidirectional, mean or max pooling) gets a window that long; others run longer inputs in
    /// windows with the state carried.
    public convenience init(checkpoint content: CheckpointContent, batchSize: Int, longestInput: Int) throws {
        var config = content.config
        config.batchSize = batchSize
        if var s = config.sequence {
            if s.bidirectional || (!s.perStep && s.pool != .last) { config.bptt = max(config.bptt, longestInput) }
            s.longest = max(s.longest, longestInput)
            config.sequence = s
        }
        let state = content.taskState
        let normalization = state.floats("normalization/mean").flatMap { mean in
            state.floats("normalization/std").map { (mean, $0) }
        }
        try self.init(config: config, communicator: SingleProcessCommunicator(), dataset: nil,
                      classNames: state.strings("classes") ?? [], vocabulary: state.strings("vocab") ?? [],
                      normalization: normalization, forTraining: false)
        try copyParameters(from: content)
    }

    init(config: TrainingConfig, communicator: any Communicator, dataset: SequenceSet?, classNames: [String],
         vocabulary: [String], normalization: (mean: [Float], std: [Float])?, forTraining: Bool) throws {
        guard let sequence = config.sequence else { preconditionFailure("SequenceTask needs config.sequence") }
        self.config = config
        self.sequence = sequence
        self.communicator = communicator
        self.dataset = dataset
        self.classNames = classNames
        self.vocabulary = vocabulary
        self.normalization = normalization
        // Data longer than the run's longest sequence (eval on another file) runs in windows with
        // the state carried, or in one longer window where the model needs whole sequences.
        var longest = sequence.longest
        if let dataset {
            for name in DatasetFormat.splits {
                let split = try dataset.split(name)
                for i in 0..<split.count { longest = max(longest, split.length(of: i)) }
            }
        }
        self.longest = longest
        let share = config.batchSize / max(communicator.size, 1), parts = config.accumulation
        if forTraining && parts > share {
            throw TrainingError.config("--accumulate \(parts) exceeds each rank's \(share) sequence(s) per batch "
                                       + "(--batch-size \(config.batchSize) over \(communicator.size) rank(s))")
        }
        if forTraining, let problem = config.reductionGroupProblem(worldSize: communicator.size) {
            throw TrainingError.config(problem)
        }
        groups = forTraining && config.effectiveReductionGroup > 0 ? ReductionGroups(size: config.effectiveReductionGroup) : nil
        let needsWhole = sequence.bidirectional || (!sequence.perStep && sequence.pool != .last)
        window = needsWhole ? longest : min(config.bptt, longest)
        let largest = max(config.batchSize, 1)
        model = SequenceModel(config: sequence.modelConfig(config.model), seed: config.seed, maxSteps: window,
                              maxBatch: largest)
        let rowsPerWindow = window * largest
        let outputs = sequence.perStep ? rowsPerWindow : largest
        tokenBuffer = [Int32](repeating: 0, count: sequence.tokens ? rowsPerWindow : 0)
        featureBuffer = [Float](repeating: 0, count: sequence.tokens ? 0 : rowsPerWindow * sequence.inputDim)
        classTargets = [Int32](repeating: 0, count: sequence.outputKind == .classes ? outputs * sequence.targetDim : 0)
        valueTargets = [Float](repeating: 0, count: sequence.outputKind == .values ? outputs * sequence.targetDim : 0)
        rowMask = [UInt8](repeating: 0, count: outputs)
        let O = sequence.modelConfig(config.model).outputSize, jordan = config.model.cell == .jordan
        dOutputs = [Float](repeating: 0, count: outputs * O)
        feedbackBuffer = [Float](repeating: 0, count: jordan ? rowsPerWindow * O : 0)
        freePrevious = [Float](repeating: 0, count: jordan ? largest * O : 0)
        model.flowRegularizer = config.flowReg ?? 0
        if forTraining, let dataset {
            train = try LoadedSequences(try dataset.split("train"))
            if !sequence.tokens && sequence.normalize && self.normalization == nil {
                self.normalization = Self.statistics(train!, width: sequence.inputDim)
            }
        }
    }

    /// Copies a checkpoint's parameters into the model (every view must be there with its shape).
    public func copyParameters(from content: CheckpointContent) throws {
        try arena.copyParameters(from: content)
    }

    /// What `config.sequence` records about the data must still hold for the file at `path`.
    static func checkDataset(_ set: SequenceSet, matches s: SequenceTaskConfig, vocabSize: Int, path: String) throws {
        func mismatch(_ what: String, _ expected: Any, _ found: Any) -> TrainingError {
            .data("\(path): \(what): the run expects \(expected), the dataset has \(found)")
        }
        if (set.inputKind == .tokens) != s.tokens { throw mismatch("inputs", s.tokens ? "token ids" : "float features", set.inputKind.rawValue) }
        if !s.tokens && set.inputDim != s.inputDim { throw mismatch("input_dim", s.inputDim, set.inputDim) }
        if s.tokens && set.vocabulary.count != vocabSize { throw mismatch("vocabulary size", vocabSize, set.vocabulary.count) }
        if set.targetKind != s.outputKind.rawValue { throw mismatch("target_kind", s.outputKind.rawValue, set.targetKind) }
        if set.perStep != s.perStep { throw mismatch("per-step targets", s.perStep, set.perStep) }
        if set.targetDim != s.targetDim { throw mismatch("target_dim", s.targetDim, set.targetDim) }
        if s.outputKind == .classes && set.numClasses != s.numClasses { throw mismatch("num_classes", s.numClasses, set.numClasses) }
    }

    /// Per-feature mean and standard deviation (population, in Double; a zero std becomes 1).
    static func statistics(_ split: LoadedSequences, width: Int) -> (mean: [Float], std: [Float])? {
        guard case .features(let x) = split.inputs, width > 0, x.count >= width else { return nil }
        let rows = x.count / width
        var sum = [Double](repeating: 0, count: width), squares = [Double](repeating: 0, count: width)
        for r in 0..<rows {
            for f in 0..<width {
                let v = Double(x[r * width + f])
                sum[f] += v
                squares[f] += v * v
            }
        }
        let mean = sum.map { $0 / Double(rows) }
        let std = (0..<width).map { f -> Float in
            let variance = max(0, squares[f] / Double(rows) - mean[f] * mean[f])
            return variance > 1e-12 ? Float(variance.squareRoot()) : 1
        }
        return (mean.map { Float($0) }, std)
    }

    /// The configuration a new run on sequence set `set` gets, given the user's choices.
    public static func taskConfig(for set: SequenceSet, bidirectional: Bool, pool: PoolKind, normalize: Bool) throws -> SequenceTaskConfig {
        var longest = 0
        for name in DatasetFormat.splits {
            let split = try set.split(name)
            for i in 0..<split.count { longest = max(longest, split.length(of: i)) }
        }
        var c = SequenceTaskConfig(tokens: set.inputKind == .tokens, inputDim: set.inputDim, level: set.level,
                                   outputKind: set.targetKind == "class" ? .classes : .values, perStep: set.perStep,
                                   targetDim: set.targetDim, numClasses: set.targetKind == "class" ? set.numClasses : 0,
                                   longest: longest)
        c.bidirectional = bidirectional
        c.pool = pool
        c.normalize = normalize
        return c
    }

    public var arena: ParameterArena { model.arena }
    public var sparseTable: ParameterView? { model.embeddingView }
    public var stepsPerEpoch: Int { ((train?.lengths.count ?? 0) + config.batchSize - 1) / config.batchSize }

    public func startEpoch(_ epoch: Int, at position: Int) {
        guard let train else { return }
        epochBatches = SequenceBatches.trainingEpoch(lengths: train.lengths, batchSize: config.batchSize,
                                                     seed: config.seed, epoch: epoch)
    }

    public func prepareStep(_ position: Int) throws -> ArraySlice<Int32> {
        guard let train, position < epochBatches.count else {
            throw TrainingError.data("\(config.data): batch \(position) of the train split does not exist")
        }
        let batch = epochBatches[position]
        if groups != nil {
            // Whole groups: rank r runs the r-th of W contiguous parts of the global batch.
            let part = SequenceBatches.groupShare(count: batch.count, batchSize: config.batchSize,
                                                  rank: communicator.rank, size: communicator.size)
            rows = Array(batch[part])
            positions = Array(part)
        } else {
            rows = SequenceBatches.share(of: batch, rank: communicator.rank, size: communicator.size)
            positions = SequenceBatches.sharePositions(count: batch.count, rank: communicator.rank, size: communicator.size)
        }
        let longest = batch.first.map { train.lengths[$0] } ?? 0
        preparedSteps = (batch.reduce(0) { $0 + train.lengths[$1] }, batch.count * longest)
        padding.add(valid: preparedSteps.valid, padded: preparedSteps.padded)
        guard sequence.tokens, case .tokens(let ids) = train.inputs else { return [] }
        var touched: [Int32] = []
        for row in rows { touched += ids[Int(train.offsets[row])..<Int(train.offsets[row + 1])] }
        return touched[...]
    }

    /// Micro-batch m of K runs the m-th of K contiguous parts of this rank's rows (still longest
    /// first), each through its own windows; dropout masks are keyed by the rows' positions in the
    /// global batch, as unsplit. With reduction groups (K = 1) the rows run group by group
    /// (`forwardBackwardGrouped`).
    public func forwardBackward(step: Int, microBatch: MicroBatch, ready: @escaping (_ offset: Int) -> Void,
                                progress: @escaping () -> Void) -> (lossSum: Double, count: Int) {
        if let groups {
            precondition(microBatch == .whole, "reduction groups run the whole share (--accumulate is refused with them)")
            return forwardBackwardGrouped(groups, step: step, ready: ready, progress: progress)
        }
        let part = microBatch.range(of: rows.count)
        let rows = Array(self.rows[part]), positions = Array(self.positions[part])
        if microBatch.isLast { self.rows = [] }
        guard !rows.isEmpty else {
            ready(0)  // nothing to contribute: the whole (zero) gradient is final
            return (0, 0)
        }
        return runRows(rows, positions: positions, step: step, ready: ready, progress: progress)
    }

    /// Forward and backward of `rows` (sorted longest first, at `positions` of the global batch)
    /// through all their windows, adding (+=) into the gradient; `ready` (if any) gets the last
    /// window's hand-overs. - Returns: the loss summed over the windows in order, and the targets.
    func runRows(_ rows: [Int], positions: [Int], step: Int, ready: ((_ offset: Int) -> Void)?,
                 progress: @escaping () -> Void) -> (lossSum: Double, count: Int) {
        guard let train, !rows.isEmpty else {
            ready?(0)
            return (0, 0)
        }
        let windows = (train.lengths[rows[0]] + window - 1) / window
        var lossSum = 0.0, count = 0
        for w in 0..<windows {
            // Masks differ per step and per window of the step.
            let dropout = SequenceDropout(seed: config.seed, step: UInt64(step) << 20 | UInt64(w), rowIds: positions)
            let lengths = runWindow(train, rows: rows, window: w, dropout: dropout)
            let last = w == windows - 1
            let (s, c) = windowLoss(train, rows: rows, window: w, lengths: lengths, gradients: true)
            lossSum += s
            count += c
            if c > 0 {
                dOutputs.withUnsafeBufferPointer {
                    model.backward(dOutputs: $0.baseAddress!, gradientsReady: last ? ready : nil, progress: progress)
                }
                if model.flowRegularizer > 0 {
                    flowTally.sum += model.flowSum
                    flowTally.count += c
                }
            } else if last {
                ready?(0)
            }
        }
        return (lossSum, count)
    }

    /// Builds window `w` of `rows` (sorted longest first) and runs the model's forward on it; a
    /// Jordan model is fed the previous targets, or with `freeRunning` its own predictions.
    /// - Returns: the valid steps of every row in the window.
    @discardableResult
    func runWindow(_ split: LoadedSequences, rows: [Int], window w: Int, dropout: SequenceDropout?,
                   freeRunning: Bool = false) -> [Int] {
        let T = window, B = rows.count, F = sequence.inputDim
        let lengths = rows.map { max(0, min(T, split.lengths[$0] - w * T)) }
        let steps = max(lengths.first ?? 0, 1)
        switch split.inputs {
        case .tokens(let ids):
            for t in 0..<steps {
                for b in 0..<B {
                    tokenBuffer[t * B + b] = t < lengths[b] ? ids[Int(split.offsets[rows[b]]) + w * T + t] : 0
                }
            }
        case .features(let x):
            featureBuffer.withUnsafeMutableBufferPointer { out in
                x.withUnsafeBufferPointer { x in
                    for t in 0..<steps {
                        for b in 0..<B {
                            let dst = (t * B + b) * F
                            guard t < lengths[b] else {
                                (out.baseAddress! + dst).update(repeating: 0, count: F)
                                continue
                            }
                            let src = (Int(split.offsets[rows[b]]) + w * T + t) * F
                            if let (mean, std) = normalization {
                                for f in 0..<F { out[dst + f] = (x[src + f] - mean[f]) / std[f] }
                            } else {
                                for f in 0..<F { out[dst + f] = x[src + f] }
                            }
                        }
                    }
                }
            }
        }
        if model.jordan != nil {
            runJordan(split, rows: rows, window: w, lengths: lengths, steps: steps, dropout: dropout,
                      freeRunning: freeRunning)
            return lengths
        }
        let state = carriedState(batch: B, first: w == 0)
        if sequence.tokens {
            tokenBuffer.withUnsafeBufferPointer {
                model.forward(tokens: $0.baseAddress!, features: nil, steps: steps, batch: B, lengths: lengths,
                              state: state, dropout: dropout)
            }
        } else {
            featureBuffer.withUnsafeBufferPointer {
                model.forward(tokens: nil, features: $0.baseAddress!, steps: steps, batch: B, lengths: lengths,
                              state: state, dropout: dropout)
            }
        }
        return lengths
    }

    /// A Jordan model's forward on the window `runWindow` has filled in: teacher-forced, the
    /// feedback (T, B, O) at step t of a row is its target at t − 1 in the sequence (one-hot per
    /// label, or the values; zero at the sequence's first step and at padded steps); free-running,
    /// the prediction carried in `freePrevious` (zero at the first window).
    private func runJordan(_ split: LoadedSequences, rows: [Int], window w: Int, lengths: [Int], steps: Int,
                           dropout: SequenceDropout?, freeRunning: Bool) {
        let T = window, B = rows.count, O = sequence.modelConfig(config.model).outputSize
        let d = sequence.targetDim, C = sequence.numClasses
        if freeRunning {
            if w == 0 { freePrevious.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
            freePrevious.withUnsafeMutableBufferPointer { previous in
                if sequence.tokens {
                    tokenBuffer.withUnsafeBufferPointer {
                        model.forwardFreeRunning(tokens: $0.baseAddress!, features: nil, steps: steps, batch: B,
                                                 lengths: lengths, previous: previous.baseAddress!)
                    }
                } else {
                    featureBuffer.withUnsafeBufferPointer {
                        model.forwardFreeRunning(tokens: nil, features: $0.baseAddress!, steps: steps, batch: B,
                                                 lengths: lengths, previous: previous.baseAddress!)
                    }
                }
            }
            return
        }
        feedbackBuffer.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        for t in 0..<steps {
            for b in 0..<B where t < lengths[b] && w * T + t >= 1 {
                let target = Int(split.offsets[rows[b]]) + w * T + t - 1, y = (t * B + b) * O
                switch split.targets {
                case .classes(let ids): for k in 0..<d { feedbackBuffer[y + k * C + Int(ids[target * d + k])] = 1 }
                case .values(let v): for k in 0..<d { feedbackBuffer[y + k] = v[target * d + k] }
                }
            }
        }
        feedbackBuffer.withUnsafeBufferPointer { feedback in
            if sequence.tokens {
                tokenBuffer.withUnsafeBufferPointer {
                    model.forward(tokens: $0.baseAddress!, features: nil, steps: steps, batch: B, lengths: lengths,
                                  state: nil, dropout: dropout, feedback: feedback.baseAddress!)
                }
            } else {
                featureBuffer.withUnsafeBufferPointer {
                    model.forward(tokens: nil, features: $0.baseAddress!, steps: steps, batch: B, lengths: lengths,
                                  state: nil, dropout: dropout, feedback: feedback.baseAddress!)
                }
            }
        }
    }

    /// The state carried between the windows of a batch of `batch` rows (nil when every sequence
    /// fits one window), zeroed at the batch's first window.
    private func carriedState(batch: Int, first: Bool) -> RecurrentState? {
        guard window < longest else { return nil }
        let state = states[batch] ?? RecurrentState(layers: config.model.layers, batch: batch,
                                                    hiddenSize: config.model.hiddenSize,
                                                    hasCell: config.model.cell.hasCellState)
        states[batch] = state
        if first { state.zero() }
        return state
    }

    /// Fills targets and the mask of window `w` (a sequence's target counts in the window where the
    /// sequence ends; a step's where the step is) and computes the loss of the last forward, with
    /// ∂loss/∂outputs in `dOutputs` when `gradients`.
    func windowLoss(_ split: LoadedSequences, rows: [Int], window w: Int, lengths: [Int],
                            gradients: Bool) -> (lossSum: Double, count: Int) {
        let T = window, B = rows.count, d = sequence.targetDim
        let steps = max(lengths.first ?? 0, 1)
        let outputRows = sequence.perStep ? steps * B : B
        for r in 0..<outputRows {
            let b = r % B, t = r / B, row = rows[b]
            let target: Int   // index of the target row in the split's targets
            if sequence.perStep {
                rowMask[r] = t < lengths[b] ? 1 : 0
                target = Int(split.offsets[row]) + w * T + t
            } else {
                let length = split.lengths[row]
                rowMask[r] = length > w * T && length <= (w + 1) * T ? 1 : 0
                target = row
            }
            guard rowMask[r] == 1 else { continue }
            switch split.targets {
            case .classes(let ids): for k in 0..<d { classTargets[r * d + k] = ids[target * d + k] }
            case .values(let v): for k in 0..<d { valueTargets[r * d + k] = v[target * d + k] }
            }
        }
        return rowMask.withUnsafeBufferPointer { mask in
            dOutputs.withUnsafeMutableBufferPointer { dOut in
                let dPointer = gradients ? dOut.baseAddress : nil
                switch sequence.outputKind {
                case .classes:
                    return classTargets.withUnsafeBufferPointer {
                        SequenceLoss.crossEntropy(logits: model.outputs, targets: $0.baseAddress!, rowMask: mask.baseAddress,
                                                  rows: outputRows, targetDim: d, classes: sequence.numClasses,
                                                  gradScale: 1, dLogits: dPointer)
                    }
                case .values:
                    return valueTargets.withUnsafeBufferPointer {
                        SequenceLoss.squaredError(predictions: model.outputs, targets: $0.baseAddress!,
                                                  rowMask: mask.baseAddress, rows: outputRows, targetDim: d,
                                                  gradScale: 1, dPredictions: dPointer)
                    }
                }
            }
        }
    }

    // MARK: evaluation

    /// The split, read once and kept.
    private func split(_ name: String) throws -> LoadedSequences {
        if name == "train", let train { return train }
        if let cached = loaded[name] { return cached }
        guard let dataset else { throw TrainingError.data("no dataset to evaluate on") }
        let split = try LoadedSequences(try dataset.split(name))
        loaded[name] = split
        return split
    }

    /// The validation figures: loss and metrics; for a Jordan model the teacher-forced loss (what
    /// training minimises) with the free-running figures beside it (`free_loss`, `free_accuracy` or
    /// `free_mse`, …: the model fed its own predictions, the honest number for a generator).
    public func evaluate(split name: String) throws -> EvaluationResult {
        let e = try evaluateFully(split: name)
        var metrics = e.metrics
        if model.jordan != nil {
            let free = try evaluateFully(split: name, freeRunning: true)
            metrics.append(Metric("free_loss", free.meanLoss))
            metrics += free.metrics.map { Metric("free_\($0.name)", $0.value, digits: $0.digits) }
        }
        return EvaluationResult(nllSum: e.lossSum, tokens: e.count, metrics: metrics)
    }

    /// Evaluates on `split` (collective): loss, and the confusion matrix or the error sums.
    /// `freeRunning` (Jordan models): each step is fed the model's own previous prediction instead
    /// of the previous target; the loss is then the cross-entropy (or squared error) of those outputs.
    public func evaluateFully(split name: String, freeRunning: Bool = false) throws -> SequenceEvaluation {
        var data: LoadedSequences?
        var failure: (any Error)?
        do { data = try split(name) } catch { failure = error }
        guard try communicator.allAgree(failure == nil), let data else {
            throw failure ?? TrainingError.data("evaluation of \(config.data) split \(name) failed on another rank")
        }
        let batches = SequenceBatches.evaluation(lengths: data.lengths, batchSize: config.batchSize)
        let C = sequence.outputKind == .classes ? sequence.numClasses : 0, d = sequence.targetDim
        // Per batch: loss sum, count, squared error, absolute error, components; reduced per batch
        // (each slot filled by one rank) and summed in batch order, so W does not change the sums.
        let fields = 5
        var sums = [Double](repeating: 0, count: batches.count * fields)
        var confusion = [Double](repeating: 0, count: C * C)
        for j in stride(from: communicator.rank, to: batches.count, by: communicator.size) {
            let rows = batches[j]
            let windows = (data.lengths[rows[0]] + window - 1) / window
            for w in 0..<windows {
                let lengths = runWindow(data, rows: rows, window: w, dropout: nil, freeRunning: freeRunning)
                let (s, c) = windowLoss(data, rows: rows, window: w, lengths: lengths, gradients: false)
                sums[j * fields] += s
                sums[j * fields + 1] += Double(c)
                let B = rows.count, steps = max(lengths.first ?? 0, 1)
                let outputRows = sequence.perStep ? steps * B : B
                let out = model.outputs, O = sequence.modelConfig(config.model).outputSize
                for r in 0..<outputRows where rowMask[r] == 1 {
                    for k in 0..<d {
                        if C > 0 {
                            let logits = out + r * O + k * C
                            var best = 0
                            for c in 1..<C where logits[c] > logits[best] { best = c }
                            confusion[Int(classTargets[r * d + k]) * C + best] += 1
                        } else {
                            let e = Double(out[r * O + k]) - Double(valueTargets[r * d + k])
                            sums[j * fields + 2] += e * e
                            sums[j * fields + 3] += abs(e)
                            sums[j * fields + 4] += 1
                        }
                    }
                }
            }
        }
        try sums.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        if C > 0 { try confusion.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) } }
        var total = [Double](repeating: 0, count: fields)
        for j in 0..<batches.count { for f in 0..<fields { total[f] += sums[j * fields + f] } }
        return SequenceEvaluation(lossSum: total[0], count: Int(total[1]), classNames: C > 0 ? classNames : [],
                                  confusion: (0..<C).map { t in (0..<C).map { Int(confusion[t * C + $0]) } },
                                  squaredErrorSum: total[2], absoluteErrorSum: total[3], components: Int(total[4]))
    }

    // MARK: prediction

    /// The head's outputs for `inputs` (one sequence each, as stored: token ids, or raw features
    /// (length, F) row-major, normalised here): logits (classes) or values, (outputSize) per
    /// sequence or (length, outputSize) per step. Local: no communication.
    public func predict(_ batch: [SequenceInputs]) -> [[Float]] {
        guard !batch.isEmpty else { return [] }
        var inputs: [Int32] = [], features: [Float] = [], offsets: [Int64] = [0]
        for item in batch {
            switch item {
            case .tokens(let ids): inputs += ids; offsets.append(offsets.last! + Int64(ids.count))
            case .features(let x): features += x; offsets.append(offsets.last! + Int64(x.count / max(sequence.inputDim, 1)))
            }
        }
        let lengths = zip(offsets, offsets.dropFirst()).map { Int($1 - $0) }
        let data = LoadedSequences(offsets: offsets, lengths: lengths,
                                   inputs: sequence.tokens ? .tokens(inputs) : .features(features),
                                   targets: .values([]))
        let O = sequence.modelConfig(config.model).outputSize
        var results = [[Float]](repeating: [], count: batch.count)
        for rows in SequenceBatches.evaluation(lengths: lengths, batchSize: config.batchSize) {
            let windows = max(1, (lengths[rows[0]] + window - 1) / window)
            for w in 0..<windows {
                let windowLengths = runWindow(data, rows: rows, window: w, dropout: nil, freeRunning: model.jordan != nil)
                let B = rows.count, out = model.outputs
                for (b, row) in rows.enumerated() {
                    if sequence.perStep {
                        for t in 0..<windowLengths[b] {
                            results[row] += Array(UnsafeBufferPointer(start: out + (t * B + b) * O, count: O))
                        }
                    } else if lengths[row] > w * window && lengths[row] <= (w + 1) * window {
                        results[row] = Array(UnsafeBufferPointer(start: out + b * O, count: O))
                    }
                }
            }
        }
        return results
    }

    // MARK: reporting

    public var setupDescription: String {
        let n = train?.lengths.count ?? 0
        return "\(communicator.size) rank(s) sharing batches of \(config.batchSize) sequences, \(n) sequences, "
            + "\(stepsPerEpoch) steps per epoch" + (window < longest ? ", windows of \(window) steps" : "")
    }

    public var targetUnit: String { sequence.perStep ? "step" : "seq" }

    public func lossFigures(meanLoss: Double) -> [Metric] { [] }

    /// The share of computed steps that were real (not padding) since the last progress line.
    public func progressNote() -> String? {
        var notes = padding.note().map { [$0] } ?? []
        if flowTally.count > 0 {
            // This rank's rows only (the progress line is rank 0's): Ω per target.
            notes.append("Ω/target \(String(format: "%.4g", flowTally.sum / Double(flowTally.count)))")
            flowTally = (0, 0)
        }
        return notes.isEmpty ? nil : notes.joined(separator: " | ")
    }

    // MARK: checkpoint

    public static func parameterLayout(_ config: TrainingConfig) -> ParameterLayout {
        guard let sequence = config.sequence else { preconditionFailure("not a sequence task") }
        return .sequenceModel(sequence.modelConfig(config.model))
    }

    /// Vocabulary, class names and the normalisation in use: what turns a checkpoint's outputs
    /// into labels and its inputs into what the model saw. Nothing is carried between steps.
    public func checkpointState(progress: TrainingProgress) throws -> TaskState {
        var saved = TaskState()
        if sequence.tokens { saved.append("vocab", strings: vocabulary) }
        if sequence.outputKind == .classes { saved.append("classes", strings: classNames) }
        if let (mean, std) = normalization {
            saved.append("normalization/mean", floats: mean, shape: [mean.count])
            saved.append("normalization/std", floats: std, shape: [std.count])
        }
        return saved
    }

    public static func checkpointSchema(_ config: TrainingConfig) -> TaskStateSchema {
        var schema = TaskStateSchema()
        guard let s = config.sequence else { return schema }
        if s.tokens { schema.add("vocab", .strings, shape: [config.model.vocabSize]) }
        if s.outputKind == .classes { schema.add("classes", .strings, shape: [s.numClasses]) }
        if !s.tokens && s.normalize {
            schema.add("normalization/mean", .floats, shape: [s.inputDim])
            schema.add("normalization/std", .floats, shape: [s.inputDim])
        }
        schema.check = { state, _ in
            if let std = state.floats("normalization/std"), let bad = std.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
                return "/normalization/std[\(bad)]: expected a finite number > 0, found \(std[bad])"
            }
            if let mean = state.floats("normalization/mean"), let bad = mean.firstIndex(where: { !$0.isFinite }) {
                return "/normalization/mean[\(bad)]: expected a finite number, found \(mean[bad])"
            }
            return nil
        }
        return schema
    }

    public func restore(_ saved: TaskState, file: String) throws {
        try checkSameData(saved, label: file)
        if let mean = saved.floats("normalization/mean"), let std = saved.floats("normalization/std") {
            normalization = (mean, std)
        }
    }

    /// Same vocabulary and class names, entry for entry.
    public func checkSameData(_ saved: TaskState, label: String) throws {
        if sequence.tokens { try saved.requireSameStrings("vocab", as: vocabulary, label: label, data: config.data) }
        if sequence.outputKind == .classes {
            try saved.requireSameStrings("classes", as: classNames, label: label, data: config.data)
        }
    }
}

extension LoadedSequences {
    init(offsets: [Int64], lengths: [Int], inputs: SequenceInputs, targets: SequenceTargets) {
        self.offsets = offsets
        self.lengths = lengths
        self.inputs = inputs
        self.targets = targets
    }
}
