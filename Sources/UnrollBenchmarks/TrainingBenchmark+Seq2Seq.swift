// The encoder–decoder benchmark (config G): the real Trainer step of a Seq2SeqTask — global batches
// of B pairs grouped by source length (SequenceBatches), packed bidirectional encoder, tanh bridge,
// teacher-forced decoder with additive attention, output softmax, backward, bucketed allreduce, clip,
// SGD — on a random pairs set written for the occasion. Batches vary in length, so throughput counts
// target tokens (each target and its <eos>, what the loss is averaged over): per step, the global
// batch's target tokens over the step time, median over the timed steps (as F), plus pairs/s.
// launch/bench_torch.py config G is the same model, data distribution and batching in PyTorch.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels
import UnrollTraining
#if canImport(Glibc)
import Glibc
#endif

/// An encoder–decoder benchmark shape: random pairs with independently uniform source and target lengths.
public struct Seq2SeqBenchmarkShape: Sendable {
    public let name: String
    /// Cell, target vocabulary, embedding, hidden size and layers (of the encoder and of the decoder).
    public let model: ModelConfig
    /// Source vocabulary (the three specials included, as the target's `model.vocabSize`).
    public let sourceVocabSize: Int
    public let bidirectional: Bool
    public let attention: AttentionKind
    /// Source and target lengths (tokens, without <bos>/<eos>) are uniform over these ranges.
    public let sourceLengths: ClosedRange<Int>
    public let targetLengths: ClosedRange<Int>
    /// Global batch B (pairs per step).
    public let batch: Int
    /// Pairs in the generated train split.
    public let pairs: Int

    /// Config G: bidirectional GRU 1×256 encoder, GRU 1×256 decoder with additive attention, tanh
    /// bridge, no input feeding, V = 1000 per side (3 specials first), E = 128, source and target
    /// lengths 10–50, B = 64, 100 batches per epoch.
    public static let reference: [Seq2SeqBenchmarkShape] = [
        .init(name: "G", model: .init(cell: .gru, vocabSize: 1000, embeddingSize: 128, hiddenSize: 256, layers: 1),
              sourceVocabSize: 1000, bidirectional: true, attention: .additive, sourceLengths: 10...50,
              targetLengths: 10...50, batch: 64, pairs: 6400),
    ]

    public var summary: String {
        "V=\(sourceVocabSize)/\(model.vocabSize) E=\(model.embeddingSize) \(bidirectional ? "bi-" : "")\(model.cell.rawValue) "
            + "\(model.layers)×\(model.hiddenSize) encoder, \(model.cell.rawValue) decoder, \(attention.rawValue) attention, "
            + "lengths \(sourceLengths.lowerBound)–\(sourceLengths.upperBound) / \(targetLengths.lowerBound)–\(targetLengths.upperBound), B=\(batch)"
    }

    /// The set the benchmark trains on: `pairs` train pairs (and a batch each for valid and test)
    /// with lengths uniform over the ranges and tokens uniform over the non-special ids, from a fixed seed.
    public func content() -> PairSetContent {
        var rng = SplitMix64(seed: 23)
        let specials = UInt64(PairSet.specials.count)
        func sequence(_ lengths: ClosedRange<Int>, vocab: Int) -> [Int32] {
            let n = lengths.lowerBound + Int(rng.next() % UInt64(lengths.count))
            return (0..<n).map { _ in Int32(specials + rng.next() % (UInt64(vocab) - specials)) }
        }
        func split(_ n: Int) -> PairSplit {
            PairSplit(pairs: (0..<n).map { _ in
                let source = sequence(sourceLengths, vocab: sourceVocabSize)
                return (source, sequence(targetLengths, vocab: model.vocabSize))
            })
        }
        func vocabulary(_ size: Int, _ prefix: String) -> [String] {
            PairSet.specials + (PairSet.specials.count..<size).map { "\(prefix)\($0)" }
        }
        return PairSetContent(task: "bench-\(name)", level: .word, sourceVocabulary: vocabulary(sourceVocabSize, "s"),
                              targetVocabulary: vocabulary(model.vocabSize, "t"),
                              splits: ["train": split(pairs), "valid": split(batch), "test": split(batch)])
    }

    /// Model FLOPs of one training step on pairs of these source and target lengths (targets
    /// counted with their <eos>): 3 × the forward's multiply-adds × 2, valid positions only.
    /// Forward per pair: encoder 2·G·H·(E + H) per source step and direction, key projection
    /// 2·A·D per source step, bridge 2·H·D; decoder 2·G·H·(E + H), query 2·A·H, combine 2·H·(D + H)
    /// and output 2·V·H per target step; additive scores 3·A (q + k, v·u) and context 2·D per
    /// (target, source) position pair. Activations (tanh, softmax) are not counted.
    public func trainingFlops(sourceLengths: [Int], targetLengths: [Int]) -> Double {
        let G = Double(model.cell.gateCount), H = Double(model.hiddenSize), E = Double(model.embeddingSize)
        let V = Double(model.vocabSize), dirs = bidirectional ? 2.0 : 1.0, D = dirs * H, A = H
        var forward = 0.0
        for (s, t) in zip(sourceLengths, targetLengths) {
            let S = Double(s), T = Double(t)
            forward += S * (dirs * 2 * G * H * (E + H) + 2 * A * D) + 2 * H * D
            forward += T * (2 * G * H * (E + H) + 2 * A * H + 2 * H * (D + H) + 2 * V * H)
            forward += T * S * (3 * A + 2 * D)
        }
        return 3 * forward * Double(model.layers)  // one layer in G: the per-layer count is exact there
    }
}

extension TrainingBenchmark {
    /// Runs encoder–decoder shape `shape` with global batch `globalBatch` over `communicator`'s ranks
    /// (collective). `tokensPerSecond` in the result counts target tokens with their <eos> (median
    /// per-step rate); `pairsPerSecond` is pairs/s; `paddingEfficiency` is the decoder's
    /// (target tokens / (B × (longest target + 1))); `meanLength` the mean target length with <eos>.
    /// - Throws: when the data cannot be written or the run cannot be set up.
    public static func run(_ shape: Seq2SeqBenchmarkShape, globalBatch: Int, communicator comm: any Communicator,
                           workdir: String, warmup: Int, seconds: Double,
                           extras: Bool, bucketBytes: Int = 4 << 20) throws -> TrainingBenchmarkResult {
        let path = try writeOnRankZero(workdir: workdir, name: "\(shape.name)-\(globalBatch)", communicator: comm) {
            try PairSetWriter.write(shape.content(), to: $0)
        }
        defer { if comm.rank == 0 { unlink(path) } }

        let set = try PairSet(path: path)
        let train = try set.split("train")
        var config = TrainingConfig(data: path, model: shape.model)
        let task = try Seq2SeqTask.taskConfig(for: set, bidirectional: shape.bidirectional, bridge: .tanh,
                                              attention: shape.attention, inputFeeding: false, scheduledSampling: nil)
        config.seq2seq = task
        config.model.vocabSize = task.targetVocabSize
        config.bptt = task.longestTarget + 1
        config.batchSize = globalBatch
        config.learningRate = 0.1
        config.clip = 5
        config.steps = 1 << 30
        config.bucketBytes = bucketBytes
        let trainer = try Trainer(config: config, communicator: comm)
        guard let s2s = trainer.task as? Seq2SeqTask else { preconditionFailure("a pairs set makes a Seq2SeqTask") }
        for _ in 0..<warmup { _ = try trainer.step() }
        var probe: [Double] = []
        for _ in 0..<3 { probe.append(try trainer.step().stepSeconds) }
        var pace = [probe.max() ?? 1]
        try pace.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        let count = max(5, min(5000, Int(seconds / max(pace[0], 1e-6))))
        var reports: [StepReport] = []
        var valid: [Int] = [], padded: [Int] = [], flops: [Double] = [], pairs: [Int] = []
        reports.reserveCapacity(count)
        // The source and target lengths of each step's pairs (for the FLOP count and pairs/s): the
        // epoch plan the task follows, recomputed (SequenceBatches over source lengths, same seed).
        let sourceLengths = (0..<train.count).map { train.source($0).count }
        let targetLengths = (0..<train.count).map { train.target($0).count + 1 }
        var plans: [Int: [[Int]]] = [:]
        for _ in 0..<count {
            reports.append(try trainer.step())
            // The step just taken was window − 1 of this epoch (an epoch's rollover happens before it).
            let epoch = trainer.progress.epoch, position = trainer.progress.window - 1
            valid.append(s2s.preparedSteps.valid)
            padded.append(s2s.preparedSteps.padded)
            if plans[epoch] == nil {
                plans = [epoch: SequenceBatches.trainingEpoch(lengths: sourceLengths, batchSize: globalBatch,
                                                              seed: config.seed, epoch: epoch)]
            }
            let batch = plans[epoch].flatMap { position < $0.count ? $0[position] : nil } ?? []
            guard batch.reduce(0, { $0 + targetLengths[$1] }) == s2s.preparedSteps.valid else {
                throw TrainingError.data("benchmark \(shape.name): the recomputed epoch plan differs from the task's batches")
            }
            pairs.append(batch.count)
            flops.append(shape.trainingFlops(sourceLengths: batch.map { sourceLengths[$0] },
                                             targetLengths: batch.map { targetLengths[$0] }))
        }
        let rates = zip(valid, reports).map { Double($0) / $1.stepSeconds }
        let totalSeconds = reports.reduce(0) { $0 + $1.stepSeconds }
        let totalValid = valid.reduce(0, +), totalPadded = padded.reduce(0, +)
        let meanLength = Double(totalValid) / Double(max(pairs.reduce(0, +), 1))
        let tokensPerSecond = median(rates)
        var slowest = reports.map(\.computeSeconds), fastest = reports.map { -$0.computeSeconds }
        try slowest.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        try fastest.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        var result = TrainingBenchmarkResult(
            config: shape.name, ranks: comm.size, globalBatch: globalBatch, bptt: config.bptt, steps: count,
            tokensPerSecond: tokensPerSecond, medianStepMs: median(reports.map(\.stepSeconds)) * 1000,
            computeMs: median(reports.map(\.computeSeconds)) * 1000,
            communicationMs: median(reports.map(\.communicationSeconds)) * 1000,
            rankSpreadMs: median(zip(slowest, fastest).map { $0 + $1 }) * 1000,
            ioMs: median(reports.map(\.ioSeconds)) * 1000,
            gflops: median(zip(flops, reports).map { $0 / $1.stepSeconds }) / 1e9,
            peakRssMB: 0, gradientBytes: trainer.task.arena.gradients.count * 4)
        result.pairsPerSecond = median(zip(pairs, reports).map { Double($0) / $1.stepSeconds })
        result.aggregateTokensPerSecond = Double(totalValid) / totalSeconds
        result.paddingEfficiency = Double(totalValid) / Double(max(totalPadded, 1))
        result.meanLength = meanLength
        if extras {
            try timeAllreduces(of: trainer, communicator: comm, into: &result)
        }
        var rss = [peakResidentMiB()]
        try rss.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        result.peakRssMB = rss[0]
        return result
    }
}
