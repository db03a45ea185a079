// The encoder–decoder task through the training core: a checkpoint carries the task's configuration
// and both vocabularies, and restoring it continues the same run; one step's update is the mean
// gradient over the global batch's target tokens; scheduled sampling is deterministic and changes
// what the decoder reads; evaluation decodes and scores exact match and BLEU consistently.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

struct Seq2SeqTaskTests {
    /// A reversal set (digits, lengths 2…6) with `sizes` train/valid/test pairs written into `dir`.
    static func reversalSet(in dir: CheckpointScratch, sizes: [Int] = [48, 16, 16], seed: UInt64 = 3) throws -> String {
        var rng = SplitMix64(seed: seed)
        let vocabulary = PairSet.specials + (0..<10).map { "\($0)" }
        func split(_ n: Int) -> PairSplit {
            PairSplit(pairs: (0..<n).map { _ in
                let length = 2 + Int(rng.next() % 5)
                let source = (0..<length).map { _ in Int32(3 + rng.next() % 10) }
                return (source, Array(source.reversed()))
            })
        }
        let path = dir.file("reverse.h5")
        try PairSetWriter.write(PairSetContent(task: "reverse", level: .char, sourceVocabulary: vocabulary,
                                               targetVocabulary: vocabulary,
                                               splits: ["train": split(sizes[0]), "valid": split(sizes[1]),
                                                        "test": split(sizes[2])]), to: path)
        return path
    }

    /// A small encoder–decoder configuration on `path`.
    static func config(_ path: String, attention: AttentionKind = .general, bidirectional: Bool = true,
                       sampling: SamplingSchedule? = nil) throws -> TrainingConfig {
        let set = try PairSet(path: path)
        var c = TrainingConfig(data: path, model: ModelConfig(cell: .gru, vocabSize: set.targetVocabulary.count,
                                                              embeddingSize: 6, hiddenSize: 8, layers: 1))
        c.seq2seq = try Seq2SeqTask.taskConfig(for: set, bidirectional: bidirectional, bridge: .tanh, attention: attention,
                                               inputFeeding: false, scheduledSampling: sampling)
        c.batchSize = 8
        c.optimizer = OptimizerConfig(kind: .adam)
        c.learningRate = 0.01
        return c
    }

    @Test func checkpointCarriesVocabulariesAndRestoresExactly() throws {
        let dir = try CheckpointScratch()
        let config = try Self.config(try Self.reversalSet(in: dir))
        #expect(config.problem() == nil)
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
        for _ in 0..<4 { _ = try trainer.step() }
        let path = dir.file("c.h5")
        try Checkpoint.save(trainer, to: path, dataSHA256: "test")
        let content = try Checkpoint.load(path)
        #expect(content.config.seq2seq == config.seq2seq)
        #expect(content.taskState.strings("source_vocab")?.prefix(3) == ["<unk>", "<bos>", "<eos>"])
        #expect(content.taskState.strings("target_vocab")?.count == 13)

        let again = try Trainer(config: config, communicator: SingleProcessCommunicator())
        try Checkpoint.restore(content, into: again, file: path)
        #expect(again.task.arena.parameters.array == trainer.task.arena.parameters.array)
        #expect(try again.task.evaluate(split: "valid") == (try trainer.task.evaluate(split: "valid")))
        let a = try trainer.step(), b = try again.step()
        #expect(a.loss == b.loss && a.gradNorm == b.gradNorm)
        #expect(again.task.arena.parameters.array == trainer.task.arena.parameters.array)
    }

    @Test func oneStepIsTheMeanGradientOverTheBatchsTargetTokens() throws {
        let dir = try CheckpointScratch()
        var config = try Self.config(try Self.reversalSet(in: dir))
        config.optimizer = OptimizerConfig(kind: .sgd)
        config.learningRate = 0.1
        config.clip = 1e9
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
        let task = try #require(trainer.task as? Seq2SeqTask)
        let before = task.arena.parameters.array
        let report = try trainer.step()
        // Every pair of the batch counts its target tokens and its <eos>.
        let set = try PairSet(path: config.data), train = try set.split("train")
        let batch = SequenceBatches.trainingEpoch(lengths: (0..<train.count).map { train.source($0).count },
                                                  batchSize: config.batchSize, seed: config.seed, epoch: 1)[0]
        #expect(report.tokens == batch.reduce(0) { $0 + train.target($1).count + 1 })

        // The same batch through a fresh model: gradient of the loss sum, divided by the count.
        let model = Seq2SeqModel(config: config.seq2seq!.modelConfig(config.model), seed: config.seed,
                                 maxSourceSteps: 6, maxTargetSteps: 7, maxBatch: 8)
        #expect(model.arena.parameters.array == before)
        let sources = batch.map { Array(train.source($0)) }, targets = batch.map { Array(train.target($0)) }
        let S = sources.map(\.count).max()!, T = targets.map(\.count).max()! + 1, B = batch.count
        var source = [Int32](repeating: 0, count: S * B), input = [Int32](repeating: 0, count: T * B)
        var output = [Int32](repeating: 0, count: T * B)
        for b in 0..<B {
            for t in 0..<sources[b].count { source[t * B + b] = sources[b][t] }
            let y = targets[b]
            for t in 0...y.count {
                input[t * B + b] = t == 0 ? Seq2SeqTaskConfig.bos : y[t - 1]
                output[t * B + b] = t < y.count ? y[t] : Seq2SeqTaskConfig.eos
            }
        }
        model.arena.zeroGradients()
        let (lossSum, count, _) = model.forward(source: source, sourceLengths: sources.map(\.count), sourceSteps: S,
                                                targetInput: input, targetOutput: output,
                                                targetLengths: targets.map { $0.count + 1 }, targetSteps: T, batch: B,
                                                feedPrediction: nil)
        model.backward()
        #expect(count == report.tokens)
        #expect(abs(lossSum / Double(count) - report.loss) < 1e-6)
        let after = task.arena.parameters.array, gradient = model.arena.gradients.array
        var worst: Float = 0
        for i in before.indices {
            let expected = before[i] - 0.1 * gradient[i] / Float(count)
            worst = max(worst, abs(after[i] - expected))
        }
        #expect(worst < 1e-6)
    }

    @Test func scheduledSamplingIsDeterministicAndFeedsPredictions() throws {
        let dir = try CheckpointScratch()
        let path = try Self.reversalSet(in: dir)
        // ε = 0.5^step: step 0 is pure teacher forcing, later steps mostly read predictions.
        let sampled = try Self.config(path, sampling: .exponential(k: 0.5))
        let forced = try Self.config(path)
        func losses(_ config: TrainingConfig) throws -> [Double] {
            let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
            return try (0..<4).map { _ in try trainer.step().loss }
        }
        let a = try losses(sampled), b = try losses(sampled), c = try losses(forced)
        #expect(a == b)
        // Step 0 (ε = 1) feeds only true tokens: the same loss, up to the step-by-step decoder's
        // summation order (the teacher-forced one runs all steps as one GEMM).
        #expect(abs(a[0] - c[0]) < 1e-6 * c[0])
        #expect(a[3] != c[3])
    }

    @Test func schedulesDecayAsPublished() {
        #expect(SamplingSchedule.linear(steps: 100).teacherProbability(step: 25) == 0.75)
        #expect(SamplingSchedule.linear(steps: 100).teacherProbability(step: 500) == 0)
        #expect(abs(SamplingSchedule.exponential(k: 0.99).teacherProbability(step: 100) - pow(0.99, 100)) < 1e-12)
        #expect(abs(SamplingSchedule.inverseSigmoid(k: 10).teacherProbability(step: 0) - 10.0 / 11) < 1e-12)
        #expect(SamplingSchedule.parse("inverse-sigmoid:50") == .inverseSigmoid(k: 50))
        #expect(SamplingSchedule.parse("linear") == .linear(steps: 10_000))
        #expect(SamplingSchedule.parse("cosine") == nil && SamplingSchedule.parse("linear:x") == nil)
        #expect(SamplingSchedule.exponential(k: 1.5).problem?.contains("--scheduled-sampling") == true)
    }

    @Test func evaluationScoresDecodedOutputsAgainstTargets() throws {
        let dir = try CheckpointScratch()
        let config = try Self.config(try Self.reversalSet(in: dir))
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
        for _ in 0..<3 { _ = try trainer.step() }
        let task = try #require(trainer.task as? Seq2SeqTask)
        let e = try task.evaluateFully(split: "valid")
        #expect(e.sequences == 16)
        let set = try PairSet(path: config.data), valid = try set.split("valid")
        #expect(e.count == (0..<valid.count).reduce(0) { $0 + valid.target($1).count + 1 })
        // Greedy outputs, decoded again one by one through `translate`, give the same scores.
        let sources = (0..<valid.count).map { Array(valid.source($0)) }
        let outputs = task.translate(sources, beam: nil, lengthPenalty: 0, maxLength: nil)
        let references = (0..<valid.count).map { Array(valid.target($0)) }
        #expect(zip(outputs, references).filter { $0 == $1 }.count == e.exactMatches)
        #expect(Bleu.statistics(hypotheses: outputs, references: references) == e.bleu)
        // A beam of one is greedy decoding.
        for (source, greedy) in zip(sources, outputs) {
            #expect(task.model.beamSearch(source: source, beam: 1, lengthPenalty: 0, bos: Seq2SeqTaskConfig.bos,
                                          eos: Seq2SeqTaskConfig.eos, maxLength: config.seq2seq!.maxDecodeLength) == greedy)
        }
    }
}
