// Encoder–decoder training (Deep Learning §10.4, dataset layout `pairs`): the third `TrainingTask`.
// A step is one global batch of B pairs, grouped by source length exactly as sequence tasks group
// theirs (`SequenceBatches`: world-size independent, each rank's share sorted longest first, as the
// encoder packs). The decoder reads <bos> y1 … yn and predicts y1 … yn <eos>, teacher-forced, or
// with scheduled sampling, where the choice of feeding the model's own previous prediction is
// drawn from a counter-based generator keyed by (seed, step, pair, position), so it is the same at
// any world size. The loss is summed over target tokens; the core divides by their global count.
// Evaluation runs fixed batches spread over the ranks and reduces its sums per batch: teacher-forced
// loss, greedy or beam-search exact match and corpus BLEU, the same numbers at any world size.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels

/// One split of a pairs set in memory: both sides as flat token arrays with offsets.
struct LoadedPairs {
    let sourceTokens: [Int32], sourceOffsets: [Int]
    let targetTokens: [Int32], targetOffsets: [Int]
    var count: Int { sourceOffsets.count - 1 }
    /// Source lengths, the key batches are grouped and sorted by.
    let sourceLengths: [Int]

    init(sources: [ArraySlice<Int32>], targets: [ArraySlice<Int32>]) {
        var s: [Int32] = [], t: [Int32] = [], so = [0], to = [0]
        for (a, b) in zip(sources, targets) {
            s += a; so.append(s.count)
            t += b; to.append(t.count)
        }
        sourceTokens = s; sourceOffsets = so; targetTokens = t; targetOffsets = to
        sourceLengths = zip(so, so.dropFirst()).map { $1 - $0 }
    }

    init(_ split: PairSplit) {
        sourceTokens = split.sourceTokens
        targetTokens = split.targetTokens
        sourceOffsets = split.sourceOffsets.map { Int($0) }
        targetOffsets = split.targetOffsets.map { Int($0) }
        sourceLengths = zip(sourceOffsets, sourceOffsets.dropFirst()).map { $1 - $0 }
    }

    func source(_ i: Int) -> ArraySlice<Int32> { sourceTokens[sourceOffsets[i]..<sourceOffsets[i + 1]] }
    func target(_ i: Int) -> ArraySlice<Int32> { targetTokens[targetOffsets[i]..<targetOffsets[i + 1]] }
}

/// A full evaluation of an encoder–decoder on one split.
public struct Seq2SeqEvaluation: Sendable, Equatable {
    /// Teacher-forced cross-entropy summed over target tokens (each target's tokens and <eos>).
    public var lossSum: Double
    /// Target tokens counted (including each target's <eos>).
    public var count: Int
    /// Teacher-forced argmax predictions equal to the target token.
    public var correctTokens: Int
    /// Pairs decoded, and those whose decoded output equals the target exactly.
    public var sequences: Int
    public var exactMatches: Int
    /// Corpus BLEU statistics of the decoded outputs against the targets (`bleu.score`: 0…100).
    public var bleu: Bleu.Statistics

    public var meanLoss: Double { lossSum / Double(max(count, 1)) }
    public var perplexity: Double { exp(meanLoss) }
    public var tokenAccuracy: Double { Double(correctTokens) / Double(max(count, 1)) }
    public var exactMatch: Double { Double(exactMatches) / Double(max(sequences, 1)) }

    /// The figures reported beside the loss.
    public var metrics: [Metric] {
        [Metric("ppl", perplexity, digits: 3), Metric("exact_match", exactMatch), Metric("bleu", bleu.score, digits: 2)]
    }
}

public final class Seq2SeqTask: TrainingTask {
    public let config: TrainingConfig
    public let pairs: Seq2SeqTaskConfig
    let communicator: any Communicator
    /// The dataset (nil for a model built from a checkpoint alone, for translation).
    public let dataset: PairSet?
    public let model: Seq2SeqModel
    public let sourceVocabulary: [String]
    public let targetVocabulary: [String]
    private var train: LoadedPairs?
    private var loaded: [String: LoadedPairs] = [:]
    private var epochBatches: [[Int]] = []
    /// This rank's rows (pair indices) of the prepared step.
    private var rows: [Int] = []
    /// Longest source and decoder sequence (target + 1) the workspace holds.
    let maxSource: Int, maxTarget: Int
    // Time-major work buffers, (S, B) and (T, B).
    private var sourceBuffer: [Int32]
    private var targetInput: [Int32]
    private var targetOutput: [Int32]
    private var padding = PaddingTally()
    /// Target tokens (each target and its <eos>) and decoder steps computed (B × (longest target
    /// + 1)) of the last prepared global batch (all ranks' rows), for the benchmark (config G).
    public private(set) var preparedSteps: (valid: Int, padded: Int) = (0, 0)

    /// Opens the data and builds the model (identical on every rank). `forTraining` loads the
    /// train split; evaluation from a checkpoint leaves it out.
    public convenience init(config: TrainingConfig, communicator: any Communicator, forTraining: Bool = true) throws {
        guard let pairs = config.seq2seq else { preconditionFailure("Seq2SeqTask needs config.seq2seq") }
        let dataset = try PairSet(path: config.data)
        try Self.checkDataset(dataset, matches: pairs, path: config.data)
        // Data longer than the run's (eval on another file) gets a larger workspace.
        let longestSource = max(pairs.longestSource, dataset.longestSource)
        let longestTarget = max(pairs.longestTarget, dataset.longestTarget)
        try self.init(config: config, communicator: communicator, dataset: dataset,
                      sourceVocabulary: dataset.sourceVocabulary, targetVocabulary: dataset.targetVocabulary,
                      longestSource: longestSource, longestTarget: longestTarget, forTraining: forTraining)
    }

    /// The model of a checkpoint without its dataset, for translation and sampling: the
    /// vocabularies come from the checkpoint. Local (no communication).
    public convenience init(checkpoint content: CheckpointContent, batchSize: Int, longestSource: Int) throws {
        guard let pairs = content.config.seq2seq else { preconditionFailure("not an encoder–decoder checkpoint") }
        var config = content.config
        config.batchSize = batchSize
        let state = content.taskState
        try self.init(config: config, communicator: SingleProcessCommunicator(), dataset: nil,
                      sourceVocabulary: state.strings("source_vocab") ?? [],
                      targetVocabulary: state.strings("target_vocab") ?? [],
                      longestSource: max(pairs.longestSource, longestSource), longestTarget: pairs.longestTarget,
                      forTraining: false)
        try copyParameters(from: content)
    }

    init(config: TrainingConfig, communicator: any Communicator, dataset: PairSet?, sourceVocabulary: [String],
         targetVocabulary: [String], longestSource: Int, longestTarget: Int, forTraining: Bool) throws {
        guard let pairs = config.seq2seq else { preconditionFailure("Seq2SeqTask needs config.seq2seq") }
        self.config = config
        self.pairs = pairs
        self.communicator = communicator
        self.dataset = dataset
        self.sourceVocabulary = sourceVocabulary
        self.targetVocabulary = targetVocabulary
        let share = config.batchSize / max(communicator.size, 1), parts = config.accumulation
        if forTraining && parts > share {
            throw TrainingError.config("--accumulate \(parts) exceeds each rank's \(share) pair(s) per batch "
                                       + "(--batch-size \(config.batchSize) over \(communicator.size) rank(s))")
        }
        maxSource = max(longestSource, 1)
        maxTarget = longestTarget + 1
        let B = max(config.batchSize, 1)
        model = Seq2SeqModel(config: pairs.modelConfig(config.model), seed: config.seed, maxSourceSteps: maxSource,
                             maxTargetSteps: maxTarget, maxBatch: B)
        sourceBuffer = [Int32](repeating: 0, count: maxSource * B)
        targetInput = [Int32](repeating: 0, count: maxTarget * B)
        targetOutput = [Int32](repeating: 0, count: maxTarget * B)
        if forTraining, let dataset { train = LoadedPairs(try dataset.split("train")) }
    }

    /// Copies a checkpoint's parameters into the model (every view must be there with its shape).
    public func copyParameters(from content: CheckpointContent) throws {
        try arena.copyParameters(from: content)
    }

    /// What `config.seq2seq` records about the data must still hold for the file at `path`.
    static func checkDataset(_ set: PairSet, matches p: Seq2SeqTaskConfig, path: String) throws {
        func mismatch(_ what: String, _ expected: Any, _ found: Any) -> TrainingError {
            .data("\(path): \(what): the run expects \(expected), the dataset has \(found)")
        }
        if set.sourceVocabulary.count != p.sourceVocabSize { throw mismatch("source vocabulary size", p.sourceVocabSize, set.sourceVocabulary.count) }
        if set.targetVocabulary.count != p.targetVocabSize { throw mismatch("target vocabulary size", p.targetVocabSize, set.targetVocabulary.count) }
        if set.level.rawValue != p.level { throw mismatch("level", p.level, set.level.rawValue) }
    }

    /// The configuration a new run on pairs set `set` gets, given the user's choices.
    public static func taskConfig(for set: PairSet, bidirectional: Bool, bridge: BridgeKind, attention: AttentionKind,
                                  inputFeeding: Bool, scheduledSampling: SamplingSchedule?) throws -> Seq2SeqTaskConfig {
        var c = Seq2SeqTaskConfig(sourceVocabSize: set.sourceVocabulary.count, targetVocabSize: set.targetVocabulary.count,
                                  level: set.level.rawValue, longestSource: set.longestSource,
                                  longestTarget: set.longestTarget)
        c.bidirectional = bidirectional
        c.bridge = bridge
        c.attention = attention
        c.inputFeeding = inputFeeding
        c.scheduledSampling = scheduledSampling
        return c
    }

    public var arena: ParameterArena { model.arena }
    /// Both embeddings get dense gradients: the reduction moves the whole arena.
    public var sparseTable: ParameterView? { nil }
    public var stepsPerEpoch: Int { ((train?.count ?? 0) + config.batchSize - 1) / config.batchSize }

    public func startEpoch(_ epoch: Int, at position: Int) {
        guard let train else { return }
        epochBatches = SequenceBatches.trainingEpoch(lengths: train.sourceLengths, batchSize: config.batchSize,
                                                     seed: config.seed, epoch: epoch)
    }

    public func prepareStep(_ position: Int) throws -> ArraySlice<Int32> {
        guard let train, position < epochBatches.count else {
            throw TrainingError.data("\(config.data): batch \(position) of the train split does not exist")
        }
        let batch = epochBatches[position]
        rows = SequenceBatches.share(of: batch, rank: communicator.rank, size: communicator.size)
        let longestTarget = batch.map { train.target($0).count + 1 }.max() ?? 0
        preparedSteps = (batch.reduce(0) { $0 + train.target($1).count + 1 }, batch.count * longestTarget)
        padding.add(valid: preparedSteps.valid, padded: preparedSteps.padded)
        return []
    }

    /// Micro-batch m of K runs the m-th of K contiguous parts of this rank's rows (still longest
    /// first); scheduled sampling's draws are keyed by the pairs, as unsplit.
    public func forwardBackward(step: Int, microBatch: MicroBatch, ready: @escaping (_ offset: Int) -> Void,
                                progress: @escaping () -> Void) -> (lossSum: Double, count: Int) {
        let batchRows = Array(rows[microBatch.range(of: rows.count)])
        if microBatch.isLast { rows = [] }
        guard let train, !batchRows.isEmpty else {
            ready(0)  // nothing to contribute: the whole (zero) gradient is final
            return (0, 0)
        }
        var feed: ((Int, Int) -> Bool)?
        if let schedule = pairs.scheduledSampling {
            let epsilon = Float(schedule.teacherProbability(step: step))
            let key = config.seed ^ 0x5C4E_D5A3_0000_0000
            // A draw per (step, pair, position): the same choices whatever the world size.
            feed = { b, t in
                let (u, _, _, _) = Philox.block(UInt32(truncatingIfNeeded: step), UInt32(truncatingIfNeeded: step >> 32),
                                                UInt32(truncatingIfNeeded: batchRows[b]), UInt32(truncatingIfNeeded: t),
                                                key: key)
                return Philox.unitFloat(u) >= epsilon
            }
        }
        let result = run(train, rows: batchRows, feedPrediction: feed)
        model.backward(scale: 1, gradientsReady: ready)
        ready(0)
        progress()
        return (result.lossSum, result.count)
    }

    /// Fills the work buffers with `rows` (sorted by source length, longest first) of `data` and
    /// runs the teacher-forced forward. Returns the loss sum, target count and correct predictions.
    @discardableResult
    private func run(_ data: LoadedPairs, rows: [Int], feedPrediction: ((Int, Int) -> Bool)?)
        -> (lossSum: Double, count: Int, correct: Int)
    {
        let B = rows.count
        let sourceLengths = rows.map { data.sourceLengths[$0] }
        let targetLengths = rows.map { data.target($0).count + 1 }
        let S = max(sourceLengths.max() ?? 1, 1), T = max(targetLengths.max() ?? 1, 1)
        fillSources(data, rows: rows, steps: S)
        for (b, row) in rows.enumerated() {
            let target = data.target(row)
            for t in 0..<T {
                let k = t * B + b
                if t < targetLengths[b] {
                    targetInput[k] = t == 0 ? Seq2SeqTaskConfig.bos : target[target.startIndex + t - 1]
                    targetOutput[k] = t < target.count ? target[target.startIndex + t] : Seq2SeqTaskConfig.eos
                } else {
                    targetInput[k] = 0
                    targetOutput[k] = 0
                }
            }
        }
        return sourceBuffer.withUnsafeBufferPointer { source in
            targetInput.withUnsafeBufferPointer { input in
                targetOutput.withUnsafeBufferPointer { output in
                    model.forward(source: source.baseAddress!, sourceLengths: sourceLengths, sourceSteps: S,
                                  targetInput: input.baseAddress!, targetOutput: output.baseAddress!,
                                  targetLengths: targetLengths, targetSteps: T, batch: B, feedPrediction: feedPrediction)
                }
            }
        }
    }

    /// Writes the sources of `rows` time-major into `sourceBuffer` (padding zero).
    private func fillSources(_ data: LoadedPairs, rows: [Int], steps S: Int) {
        let B = rows.count
        for (b, row) in rows.enumerated() {
            let source = data.source(row)
            for t in 0..<S {
                sourceBuffer[t * B + b] = t < source.count ? source[source.startIndex + t] : 0
            }
        }
    }

    // MARK: decoding

    /// Decodes `rows` of `data` (sorted by source length, longest first): greedily as one batch,
    /// or one beam search per row.
    func decode(_ data: LoadedPairs, rows: [Int], beam: Int?, lengthPenalty: Double, maxLength: Int) -> [[Int32]] {
        if let beam, beam > 1 {
            return rows.map {
                model.beamSearch(source: Array(data.source($0)), beam: beam, lengthPenalty: lengthPenalty,
                                 bos: Seq2SeqTaskConfig.bos, eos: Seq2SeqTaskConfig.eos, maxLength: maxLength)
            }
        }
        let S = max(rows.map { data.sourceLengths[$0] }.max() ?? 1, 1)
        fillSources(data, rows: rows, steps: S)
        return sourceBuffer.withUnsafeBufferPointer {
            model.greedy(source: $0.baseAddress!, sourceLengths: rows.map { data.sourceLengths[$0] }, sourceSteps: S,
                         batch: rows.count, bos: Seq2SeqTaskConfig.bos, eos: Seq2SeqTaskConfig.eos, maxLength: maxLength)
        }
    }

    /// Translates `sources` (token ids) in batches of `config.batchSize`. Local: no communication.
    public func translate(_ sources: [[Int32]], beam: Int?, lengthPenalty: Double, maxLength: Int?) -> [[Int32]] {
        let data = LoadedPairs(sources: sources.map { $0[...] }, targets: sources.map { _ in [][...] })
        var results = [[Int32]](repeating: [], count: sources.count)
        for rows in SequenceBatches.evaluation(lengths: data.sourceLengths, batchSize: config.batchSize) {
            let out = decode(data, rows: rows, beam: beam, lengthPenalty: lengthPenalty,
                             maxLength: maxLength ?? pairs.maxDecodeLength)
            for (row, tokens) in zip(rows, out) { results[row] = tokens }
        }
        return results
    }

    // MARK: evaluation

    /// The split, read once and kept.
    private func split(_ name: String) throws -> LoadedPairs {
        if name == "train", let train { return train }
        if let cached = loaded[name] { return cached }
        guard let dataset else { throw TrainingError.data("no dataset to evaluate on") }
        let split = LoadedPairs(try dataset.split(name))
        loaded[name] = split
        return split
    }

    public func evaluate(split name: String) throws -> EvaluationResult {
        let e = try evaluateFully(split: name)
        return EvaluationResult(nllSum: e.lossSum, tokens: e.count, metrics: e.metrics)
    }

    /// Evaluates on `split` (collective): teacher-forced loss and token accuracy, and the decoded
    /// outputs' exact match and BLEU (greedy, or beam search of width `beam`).
    public func evaluateFully(split name: String, beam: Int? = nil, lengthPenalty: Double = 0,
                              maxLength: Int? = nil) throws -> Seq2SeqEvaluation {
        var data: LoadedPairs?
        var failure: (any Error)?
        do { data = try split(name) } catch { failure = error }
        guard try communicator.allAgree(failure == nil), let data else {
            throw failure ?? TrainingError.data("evaluation of \(config.data) split \(name) failed on another rank")
        }
        let batches = SequenceBatches.evaluation(lengths: data.sourceLengths, batchSize: config.batchSize)
        // Per batch: loss, count, correct, sequences, exact and the BLEU counts. Each slot is filled by one rank and the slots are summed
        // in batch order, so W does not change the sums.
        let fields = 5 + Bleu.Statistics.countsLength
        var sums = [Double](repeating: 0, count: batches.count * fields)
        for j in stride(from: communicator.rank, to: batches.count, by: communicator.size) {
            let rows = batches[j]
            let (lossSum, count, correct) = run(data, rows: rows, feedPrediction: nil)
            let decoded = decode(data, rows: rows, beam: beam, lengthPenalty: lengthPenalty,
                                 maxLength: maxLength ?? pairs.maxDecodeLength)
            var stats = Bleu.Statistics()
            var exact = 0
            for (row, hypothesis) in zip(rows, decoded) {
                let reference = Array(data.target(row))
                if hypothesis == reference { exact += 1 }
                stats.add(Bleu.statistics(hypothesis: hypothesis, reference: reference))
            }
            let slot = j * fields
            sums[slot] = lossSum
            sums[slot + 1] = Double(count)
            sums[slot + 2] = Double(correct)
            sums[slot + 3] = Double(rows.count)
            sums[slot + 4] = Double(exact)
            for (k, c) in stats.counts.enumerated() { sums[slot + 5 + k] = Double(c) }
        }
        try sums.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        var total = [Double](repeating: 0, count: fields)
        for j in 0..<batches.count { for f in 0..<fields { total[f] += sums[j * fields + f] } }
        let bleu = Bleu.Statistics(counts: total[5...].map { Int($0) })
        return Seq2SeqEvaluation(lossSum: total[0], count: Int(total[1]), correctTokens: Int(total[2]),
                                 sequences: Int(total[3]), exactMatches: Int(total[4]), bleu: bleu)
    }

    // MARK: reporting

    public var setupDescription: String {
        "\(communicator.size) rank(s) sharing batches of \(config.batchSize) pairs, \(train?.count ?? 0) pairs, "
            + "\(stepsPerEpoch) steps per epoch"
    }

    public var targetUnit: String { "tok" }

    public func lossFigures(meanLoss: Double) -> [Metric] { [Metric("ppl", exp(meanLoss), digits: 3)] }

    /// The share of decoder steps that were real (not padding) since the last progress line.
    public func progressNote() -> String? {
        padding.note()
    }

    // MARK: checkpoint

    public static func parameterLayout(_ config: TrainingConfig) -> ParameterLayout {
        guard let pairs = config.seq2seq else { preconditionFailure("not an encoder–decoder task") }
        return .seq2seqModel(pairs.modelConfig(config.model))
    }

    /// Both vocabularies: what turns a checkpoint's inputs and outputs into text. Nothing is
    /// carried between steps.
    public func checkpointState(progress: TrainingProgress) throws -> TaskState {
        var saved = TaskState()
        saved.append("source_vocab", strings: sourceVocabulary)
        saved.append("target_vocab", strings: targetVocabulary)
        return saved
    }

    public static func checkpointSchema(_ config: TrainingConfig) -> TaskStateSchema {
        var schema = TaskStateSchema()
        guard let p = config.seq2seq else { return schema }
        schema.add("source_vocab", .strings, shape: [p.sourceVocabSize])
        schema.add("target_vocab", .strings, shape: [p.targetVocabSize])
        schema.check = { state, _ in
            for path in ["source_vocab", "target_vocab"] {
                guard let v = state.strings(path), v.count >= 3 else { continue }
                if Array(v.prefix(3)) != ["<unk>", "<bos>", "<eos>"] {
                    return "/\(path): expected <unk>, <bos>, <eos> as entries 0, 1, 2, found \(v.prefix(3).joined(separator: ", "))"
                }
            }
            return nil
        }
        return schema
    }

    public func restore(_ saved: TaskState, file: String) throws {
        try checkSameData(saved, label: file)
    }

    /// Same vocabularies, entry for entry.
    public func checkSameData(_ saved: TaskState, label: String) throws {
        try saved.requireSameStrings("source_vocab", as: sourceVocabulary, label: label, data: config.data)
        try saved.requireSameStrings("target_vocab", as: targetVocabulary, label: label, data: config.data)
    }
}
