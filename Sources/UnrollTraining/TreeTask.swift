// Recursive networks on trees (Deep Learning §10.6, dataset layout `trees`): the fourth
// `TrainingTask`. A step is one global batch of B trees, grouped by size as sequence tasks group
// sequences (`SequenceBatches`, world-size independent); rank r runs its share of the batch as one
// `TreeBatch` (nodes ordered by height, a GEMM per level). The head classifies the roots, or with
// `--tree-loss nodes` every labelled node; the loss is summed over the labelled nodes and the core
// divides by their global count. Evaluation runs fixed batches spread over the ranks and reduces
// its sums per batch, so loss and accuracy are the same at any world size.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels

/// Which nodes the loss (and the reported accuracy) counts.
public enum TreeLossKind: String, Codable, CaseIterable, Sendable {
    /// The root of every tree (its `labels` entry).
    case root
    /// Every node with a label (`node_labels` ≥ 0): the roots and the subtrees.
    case nodes
}

/// A tree task's part of `TrainingConfig` (nil there for other tasks).
public struct TreeTaskConfig: Codable, Equatable, Sendable {
    /// Which nodes the loss counts.
    public var loss: TreeLossKind = .root
    // Fixed by the dataset:
    public var vocabSize: Int
    public var numClasses: Int
    /// Whether the data has a label per node.
    public var nodeLabels: Bool
    /// Largest tree (nodes) and greatest height over every split, for memory estimates.
    public var largestTree: Int
    public var greatestHeight: Int

    public init(vocabSize: Int, numClasses: Int, nodeLabels: Bool, largestTree: Int, greatestHeight: Int) {
        self.vocabSize = vocabSize
        self.numClasses = numClasses
        self.nodeLabels = nodeLabels
        self.largestTree = largestTree
        self.greatestHeight = greatestHeight
    }

    /// The model: cell, sizes and initialisation of `model` with this task's vocabulary and classes.
    public func modelConfig(_ model: ModelConfig) -> TreeModelConfig {
        TreeModelConfig(cell: model.cell, vocabSize: vocabSize, embeddingSize: model.embeddingSize,
                        hiddenSize: model.hiddenSize, numClasses: numClasses, initScheme: model.initScheme,
                        forgetGateBias: model.forgetGateBias)
    }

    /// Checks the task against the rest of the run; a one-line problem naming the option, or nil.
    public func problem(model: ModelConfig, lossNormalization: LossNormalization) -> String? {
        if !model.cell.isTree {
            return "--cell \(model.cell.cliName) runs on sequences; a tree dataset (layout trees) takes --cell tree-rnn or tree-lstm"
        }
        if let p = modelConfig(model).problem() { return p }
        if model.layers != 1 { return "--layers applies to sequence models; a tree model has one recursive layer, got \(model.layers)" }
        if model.dropout > 0 { return "--dropout applies to language models and sequence tasks; tree models train without it" }
        if model.initScheme == .identity || model.initScheme == .orthogonal {
            return "--init \(model.initScheme.name) applies to recurrent weights over time; a tree model takes pytorch or uniform"
        }
        if model.forgetGateBias && model.cell != .treeLSTM { return "--forget-bias applies to --cell lstm or tree-lstm" }
        if lossNormalization != .token {
            return "--loss-normalization \(lossNormalization.rawValue) applies to language models; tree tasks divide by the global count of labelled nodes"
        }
        if loss == .nodes && !nodeLabels { return "--tree-loss nodes needs a tree dataset with node_labels; this one labels only the roots" }
        return nil
    }
}

extension CellKind {
    /// The `--cell` spelling (tree-rnn, not tree_rnn).
    public var cliName: String {
        switch self {
        case .rnnTanh: "rnn"
        case .rnnRelu: "rnn-relu"
        case .treeRNN: "tree-rnn"
        case .treeLSTM: "tree-lstm"
        default: rawValue
        }
    }
}

/// A full evaluation of a tree task on one split.
public struct TreeEvaluation: Sendable, Equatable {
    /// Cross-entropy summed over the counted nodes (roots, or every labelled node).
    public var lossSum: Double
    /// Nodes counted by the loss.
    public var count: Int
    /// Counted nodes whose argmax is the label.
    public var correct: Int
    /// Roots, and roots classified correctly (whatever the loss counts).
    public var roots: Int
    public var correctRoots: Int

    public var meanLoss: Double { lossSum / Double(max(count, 1)) }
    public var accuracy: Double { Double(correct) / Double(max(count, 1)) }
    public var rootAccuracy: Double { Double(correctRoots) / Double(max(roots, 1)) }

    /// The figures reported beside the loss.
    public var metrics: [Metric] { [Metric("accuracy", accuracy), Metric("root_accuracy", rootAccuracy)] }
}

public final class TreeTask: TrainingTask {
    public let config: TrainingConfig
    public let trees: TreeTaskConfig
    let communicator: any Communicator
    /// The dataset (nil for a model built from a checkpoint alone).
    public let dataset: TreeSet?
    public let model: TreeModel
    public let vocabulary: [String]
    public let classNames: [String]
    private var train: TreeSplit?
    private var loaded: [String: TreeSplit] = [:]
    private var epochBatches: [[Int]] = []
    /// This rank's trees of the prepared step.
    private var rows: [Int] = []
    // Head rows and their labels (−1: not counted) of the last forward, and ∂loss/∂logits.
    private var labels: [Int32] = []
    private var dLogits: [Float] = []

    /// Opens the data and builds the model (identical on every rank). `forTraining` loads the
    /// train split (all splits are read and checked on open in any case).
    public init(config: TrainingConfig, communicator: any Communicator, forTraining: Bool = true) throws {
        guard let trees = config.trees else { preconditionFailure("TreeTask needs config.trees") }
        self.config = config
        self.trees = trees
        self.communicator = communicator
        let dataset = try TreeSet(path: config.data)
        func mismatch(_ what: String, _ expected: Any, _ found: Any) -> TrainingError {
            .data("\(config.data): \(what): the run expects \(expected), the dataset has \(found)")
        }
        if dataset.vocabulary.count != trees.vocabSize { throw mismatch("vocabulary size", trees.vocabSize, dataset.vocabulary.count) }
        if dataset.classNames.count != trees.numClasses { throw mismatch("num_classes", trees.numClasses, dataset.classNames.count) }
        if trees.loss == .nodes && !dataset.hasNodeLabels { throw mismatch("node labels", "node_labels (--tree-loss nodes)", "none") }
        self.dataset = dataset
        vocabulary = dataset.vocabulary
        classNames = dataset.classNames
        let share = config.batchSize / max(communicator.size, 1), parts = config.accumulation
        if forTraining && parts > share {
            throw TrainingError.config("--accumulate \(parts) exceeds each rank's \(share) tree(s) per batch "
                                       + "(--batch-size \(config.batchSize) over \(communicator.size) rank(s))")
        }
        model = TreeModel(config: trees.modelConfig(config.model), seed: config.seed)
        if forTraining { train = try dataset.split("train") }
    }

    /// The configuration a new run on tree set `set` gets.
    public static func taskConfig(for set: TreeSet, loss: TreeLossKind) -> TreeTaskConfig {
        var c = TreeTaskConfig(vocabSize: set.vocabulary.count, numClasses: set.classNames.count, nodeLabels: set.hasNodeLabels,
                               largestTree: set.largestTree, greatestHeight: set.greatestHeight)
        c.loss = loss
        return c
    }

    /// Copies a checkpoint's parameters into the model (every view must be there with its shape).
    public func copyParameters(from content: CheckpointContent) throws {
        try arena.copyParameters(from: content)
    }

    public var arena: ParameterArena { model.arena }
    /// The embedding is small (a vocabulary of symbols): its gradient is reduced densely.
    public var sparseTable: ParameterView? { nil }
    public var stepsPerEpoch: Int { ((train?.count ?? 0) + config.batchSize - 1) / config.batchSize }

    private static func sizes(_ split: TreeSplit) -> [Int] { (0..<split.count).map { split.nodes($0).count } }

    public func startEpoch(_ epoch: Int, at position: Int) {
        guard let train else { return }
        epochBatches = SequenceBatches.trainingEpoch(lengths: Self.sizes(train), batchSize: config.batchSize,
                                                     seed: config.seed, epoch: epoch)
    }

    public func prepareStep(_ position: Int) throws -> ArraySlice<Int32> {
        guard train != nil, position < epochBatches.count else {
            throw TrainingError.data("\(config.data): batch \(position) of the train split does not exist")
        }
        rows = SequenceBatches.share(of: epochBatches[position], rank: communicator.rank, size: communicator.size)
        return []
    }

    public func forwardBackward(step: Int, microBatch: MicroBatch, ready: @escaping (_ offset: Int) -> Void,
                                progress: @escaping () -> Void) -> (lossSum: Double, count: Int) {
        let part = microBatch.range(of: rows.count)
        let rows = Array(self.rows[part])
        if microBatch.isLast { self.rows = [] }
        guard let train, !rows.isEmpty else {
            ready(0)  // nothing to contribute: the whole (zero) gradient is final
            return (0, 0)
        }
        let result = run(train, trees: rows, gradients: true)
        if result.count > 0 {
            dLogits.withUnsafeBufferPointer { model.backward(dLogits: $0.baseAddress!) }
        }
        progress()
        ready(0)
        return (result.lossSum, result.count)
    }

    /// Forward of `trees` of `split` and the loss over the counted nodes; with `gradients`,
    /// ∂loss/∂logits in `dLogits`. Leaves the head rows' labels in `labels`.
    @discardableResult
    private func run(_ split: TreeSplit, trees: [Int], gradients: Bool) -> (lossSum: Double, count: Int) {
        let batch = TreeBatch(trees: trees.map { t in
            let nodes = split.nodes(t)
            return (split.left[nodes], split.right[nodes], split.tokens[nodes])
        })
        let headRows: [Int32]
        switch trees.isEmpty ? .root : self.trees.loss {
        case .root:
            headRows = batch.rootRows
            labels = trees.map { split.labels[$0] }
        case .nodes:
            headRows = batch.rowOfNode
            labels = trees.flatMap { split.nodeLabels![split.nodes($0)] }
        }
        model.forward(batch, headRows: headRows)
        let C = trees.isEmpty ? 1 : self.trees.numClasses, M = headRows.count
        if dLogits.count < M * C { dLogits = [Float](repeating: 0, count: M * C) }
        return labels.withUnsafeBufferPointer { targets in
            dLogits.withUnsafeMutableBufferPointer { d in
                // A row whose label is −1 (an unlabelled node) gives no loss and no gradient.
                var mask = targets.map { UInt8($0 >= 0 ? 1 : 0) }
                return mask.withUnsafeMutableBufferPointer { m in
                    SequenceLoss.crossEntropy(logits: model.outputs, targets: targets.baseAddress!, rowMask: m.baseAddress,
                                              rows: M, targetDim: 1, classes: C, gradScale: 1,
                                              dLogits: gradients ? d.baseAddress : nil)
                }
            }
        }
    }

    // MARK: evaluation

    private func split(_ name: String) throws -> TreeSplit {
        if name == "train", let train { return train }
        if let cached = loaded[name] { return cached }
        guard let dataset else { throw TrainingError.data("no dataset to evaluate on") }
        let split = try dataset.split(name)
        loaded[name] = split
        return split
    }

    public func evaluate(split name: String) throws -> EvaluationResult {
        let e = try evaluateFully(split: name)
        return EvaluationResult(nllSum: e.lossSum, tokens: e.count, metrics: e.metrics)
    }

    /// Evaluates on `split` (collective): loss and accuracy over the counted nodes, and the
    /// roots' accuracy.
    public func evaluateFully(split name: String) throws -> TreeEvaluation {
        var data: TreeSplit?
        var failure: (any Error)?
        do { data = try split(name) } catch { failure = error }
        guard try communicator.allAgree(failure == nil), let data else {
            throw failure ?? TrainingError.data("evaluation of \(config.data) split \(name) failed on another rank")
        }
        let batches = SequenceBatches.evaluation(lengths: Self.sizes(data), batchSize: config.batchSize)
        let C = trees.numClasses
        // Per batch: loss sum, count, correct, roots, correct roots; each slot filled by one rank and
        // summed in batch order after the reduction, so the world size does not change the sums.
        let fields = 5
        var sums = [Double](repeating: 0, count: batches.count * fields)
        for j in stride(from: communicator.rank, to: batches.count, by: communicator.size) {
            let trees = batches[j]
            let (s, c) = run(data, trees: trees, gradients: false)
            sums[j * fields] = s
            sums[j * fields + 1] = Double(c)
            func argmax(_ m: Int) -> Int32 {
                let logits = model.outputs + m * C
                var best = 0
                for k in 1..<C where logits[k] > logits[best] { best = k }
                return Int32(best)
            }
            for (m, label) in labels.enumerated() where label >= 0 && argmax(m) == label { sums[j * fields + 2] += 1 }
            if self.trees.loss == .root {
                sums[j * fields + 3] = Double(trees.count)
                sums[j * fields + 4] = sums[j * fields + 2]
            } else {
                // Roots are the last node of each tree, in tree order.
                var end = 0
                for t in trees {
                    end += data.nodes(t).count
                    sums[j * fields + 3] += 1
                    if argmax(end - 1) == labels[end - 1] { sums[j * fields + 4] += 1 }
                }
            }
        }
        try sums.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        var total = [Double](repeating: 0, count: fields)
        for j in 0..<batches.count { for f in 0..<fields { total[f] += sums[j * fields + f] } }
        return TreeEvaluation(lossSum: total[0], count: Int(total[1]), correct: Int(total[2]), roots: Int(total[3]),
                              correctRoots: Int(total[4]))
    }

    // MARK: reporting

    public var setupDescription: String {
        "\(communicator.size) rank(s) sharing batches of \(config.batchSize) trees, \(train?.count ?? 0) trees "
            + "(\(train?.nodeCount ?? 0) nodes), \(stepsPerEpoch) steps per epoch, loss on "
            + (trees.loss == .root ? "the roots" : "every labelled node")
    }

    public var targetUnit: String { trees.loss == .root ? "tree" : "node" }

    public func lossFigures(meanLoss: Double) -> [Metric] { [] }

    // MARK: checkpoint

    public static func parameterLayout(_ config: TrainingConfig) -> ParameterLayout {
        guard let trees = config.trees else { preconditionFailure("not a tree task") }
        return .treeModel(trees.modelConfig(config.model))
    }

    /// Vocabulary and class names: what turns a checkpoint's outputs into labels. Nothing is
    /// carried between steps.
    public func checkpointState(progress: TrainingProgress) throws -> TaskState {
        var saved = TaskState()
        saved.append("vocab", strings: vocabulary)
        saved.append("classes", strings: classNames)
        return saved
    }

    public static func checkpointSchema(_ config: TrainingConfig) -> TaskStateSchema {
        var schema = TaskStateSchema()
        guard let t = config.trees else { return schema }
        schema.add("vocab", .strings, shape: [t.vocabSize])
        schema.add("classes", .strings, shape: [t.numClasses])
        return schema
    }

    public func restore(_ saved: TaskState, file: String) throws {
        try checkSameData(saved, label: file)
    }

    /// Same vocabulary and class names, entry for entry.
    public func checkSameData(_ saved: TaskState, label: String) throws {
        try saved.requireSameStrings("vocab", as: vocabulary, label: label, data: config.data)
        try saved.requireSameStrings("classes", as: classNames, label: label, data: config.data)
    }
}
