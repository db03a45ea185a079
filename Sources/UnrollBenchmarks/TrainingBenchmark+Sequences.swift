// The sequence-task benchmark (config F): the real Trainer step of a SequenceTask — length-grouped
// global batches of whole sequences, packed-sequence forward and backward, bucketed allreduce, clip,
// SGD — on a random token set written for the occasion. Batches vary in length, so throughput counts
// real (unpadded) steps only: per step, the global batch's valid steps over the step time, median
// over the timed steps (as A–E take the median step), plus the aggregate over all timed steps.
// launch/bench_torch.py config F is the same model, data distribution and batching in PyTorch.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels
import UnrollTraining
#if canImport(Glibc)
import Glibc
#endif

/// A sequence-classification benchmark shape: token inputs of uniformly random lengths.
public struct SequenceBenchmarkShape: Sendable {
    public let name: String
    /// Cell, vocabulary, embedding, hidden size and layers of the encoder.
    public let model: ModelConfig
    public let bidirectional: Bool
    public let classes: Int
    /// Sequence lengths are uniform over this range (both ends included).
    public let lengths: ClosedRange<Int>
    /// Global batch B (sequences per step).
    public let batch: Int
    /// Sequences in the generated train split.
    public let sequences: Int

    /// Config F: bidirectional LSTM 1×256 classifier (V=1000, E=128, 4 classes, h_n of both
    /// directions into the head), lengths 20–200, B=64, 100 batches per epoch.
    public static let reference: [SequenceBenchmarkShape] = [
        .init(name: "F", model: .init(cell: .lstm, vocabSize: 1000, embeddingSize: 128, hiddenSize: 256, layers: 1),
              bidirectional: true, classes: 4, lengths: 20...200, batch: 64, sequences: 6400),
    ]

    public var summary: String {
        "V=\(model.vocabSize) E=\(model.embeddingSize) \(bidirectional ? "bidirectional " : "")\(model.cell.rawValue) "
            + "\(model.layers)×\(model.hiddenSize) \(classes) classes, lengths \(lengths.lowerBound)–\(lengths.upperBound), B=\(batch)"
    }

    /// The set the benchmark trains on: `sequences` train sequences (and a few for valid and test)
    /// with lengths uniform over `lengths`, random tokens and random classes, from a fixed seed.
    public func content() -> SequenceSetContent {
        var rng = SplitMix64(seed: 17)
        func split(_ n: Int) -> SequenceSplitContent {
            var offsets: [Int64] = [0], tokens: [Int32] = [], labels: [Int32] = []
            let span = UInt64(lengths.count)
            for _ in 0..<n {
                let length = lengths.lowerBound + Int(rng.next() % span)
                for _ in 0..<length { tokens.append(Int32(rng.next() % UInt64(model.vocabSize))) }
                offsets.append(offsets.last! + Int64(length))
                labels.append(Int32(rng.next() % UInt64(classes)))
            }
            return SequenceSplitContent(inputs: .tokens(tokens), offsets: offsets, targets: .classes(labels))
        }
        return SequenceSetContent(task: "bench-\(name)", inputDim: 1, targetDim: 1, numClasses: classes,
                                  splits: ["train": split(sequences), "valid": split(batch), "test": split(batch)],
                                  vocabulary: (0..<model.vocabSize).map { "w\($0)" }, level: .word)
    }
}

extension TrainingBenchmark {
    /// Runs sequence shape `shape` with global batch `globalBatch` over `communicator`'s ranks
    /// (collective). `tokensPerSecond` in the result counts real steps only (median per-step rate).
    /// `reductionGroup`: sequences per reduction group, as `train --reduction-group` (nil: what a
    /// new run picks).
    /// - Throws: when the data cannot be written or the run cannot be set up.
    public static func run(_ shape: SequenceBenchmarkShape, globalBatch: Int, communicator comm: any Communicator,
                           workdir: String, warmup: Int, seconds: Double,
                           extras: Bool, bucketBytes: Int = 4 << 20,
                           reductionGroup: Int? = nil) throws -> TrainingBenchmarkResult {
        let path = try writeOnRankZero(workdir: workdir, name: "\(shape.name)-\(globalBatch)", communicator: comm) {
            try SequenceSetWriter.write(shape.content(), to: $0)
        }
        defer { if comm.rank == 0 { unlink(path) } }

        let set = try SequenceSet(path: path)
        var config = TrainingConfig(data: path, model: shape.model)
        config.sequence = try SequenceTask.taskConfig(for: set, bidirectional: shape.bidirectional, pool: .last,
                                                      normalize: false)
        config.bptt = config.sequence?.longest ?? shape.lengths.upperBound
        config.batchSize = globalBatch
        config.learningRate = 0.1
        config.clip = 5
        config.steps = 1 << 30
        config.bucketBytes = bucketBytes
        config.reductionGroup = reductionGroup
        _ = config.adoptDefaultReductionGroup(worldSize: comm.size)
        let trainer = try Trainer(config: config, communicator: comm)
        guard let task = trainer.task as? SequenceTask else { preconditionFailure("a sequence set makes a SequenceTask") }
        for _ in 0..<warmup { _ = try trainer.step() }
        var probe: [Double] = []
        for _ in 0..<3 { probe.append(try trainer.step().stepSeconds) }
        var pace = [probe.max() ?? 1]
        try pace.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        let count = max(5, min(5000, Int(seconds / max(pace[0], 1e-6))))
        var reports: [StepReport] = []
        var valid: [Int] = [], padded: [Int] = []
        reports.reserveCapacity(count)
        for _ in 0..<count {
            reports.append(try trainer.step())
            valid.append(task.preparedSteps.valid)
            padded.append(task.preparedSteps.padded)
        }
        let rates = zip(valid, reports).map { Double($0) / $1.stepSeconds }
        let totalSeconds = reports.reduce(0) { $0 + $1.stepSeconds }
        let totalValid = valid.reduce(0, +), totalPadded = padded.reduce(0, +)
        let meanLength = Double(totalValid) / Double(count * globalBatch)
        let tokensPerSecond = median(rates)
        var slowest = reports.map(\.computeSeconds), fastest = reports.map { -$0.computeSeconds }
        try slowest.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        try fastest.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        let flopsPerStep = config.sequence.map { $0.modelConfig(config.model).trainingFlopsPerStep } ?? 0
        var result = TrainingBenchmarkResult(
            config: shape.name, ranks: comm.size, globalBatch: globalBatch, bptt: config.bptt, steps: count,
            tokensPerSecond: tokensPerSecond, medianStepMs: median(reports.map(\.stepSeconds)) * 1000,
            computeMs: median(reports.map(\.computeSeconds)) * 1000,
            communicationMs: median(reports.map(\.communicationSeconds)) * 1000,
            rankSpreadMs: median(zip(slowest, fastest).map { $0 + $1 }) * 1000,
            ioMs: median(reports.map(\.ioSeconds)) * 1000,
            gflops: flopsPerStep * tokensPerSecond / 1e9,
            peakRssMB: 0, gradientBytes: trainer.task.arena.gradients.count * 4)
        result.sequencesPerSecond = tokensPerSecond / meanLength
        result.aggregateTokensPerSecond = Double(totalValid) / totalSeconds
        result.paddingEfficiency = Double(totalValid) / Double(max(totalPadded, 1))
        result.reductionGroup = config.effectiveReductionGroup
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

extension TrainingBenchmark {
    /// A fresh path under `workdir` (the same on every rank) that rank 0 fills with `write`; every
    /// rank throws if rank 0 failed (collective). The caller unlinks it on rank 0.
    static func writeOnRankZero(workdir: String, name: String, communicator comm: any Communicator,
                                write: (String) throws -> Void) throws -> String {
        var bytes = Array("\(workdir)/bench-\(name)-\(getpid()).h5".utf8)
        try comm.broadcast(&bytes, root: 0)
        let path = String(decoding: bytes, as: UTF8.self)
        var failure: (any Error)?
        if comm.rank == 0 {
            do {
                try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
                try write(path)
            } catch { failure = error }
        }
        guard try comm.allAgree(failure == nil) else {
            throw failure ?? TrainingError.data("\(path): benchmark data could not be written on rank 0")
        }
        return path
    }
}
