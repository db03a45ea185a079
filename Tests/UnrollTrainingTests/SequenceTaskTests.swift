// The sequence task through the training core: a checkpoint carries the task's configuration, its
// class names and the feature normalisation; restoring it into a new trainer gives the same model
// and the same evaluation; one step's update is the global mean gradient over the batch's targets;
// a damaged normalisation is refused in one line.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

struct SequenceTaskTests {
    /// A small sequence-task configuration on the synthetic set `task` written into `dir`.
    static func config(_ task: SyntheticTask, in dir: CheckpointScratch, bidirectional: Bool = false,
                       pool: PoolKind = .last) throws -> TrainingConfig {
        let path = dir.file("\(task).h5")
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: task, seed: 4, sizes: [60, 20, 20], minLength: 3,
                                                              maxLength: 12), output: path)
        let set = try SequenceSet(path: path)
        var c = TrainingConfig(data: path, model: ModelConfig(cell: .gru, vocabSize: 0, embeddingSize: 0, hiddenSize: 6,
                                                              layers: 2))
        c.sequence = try SequenceTask.taskConfig(for: set, bidirectional: bidirectional, pool: pool, normalize: true)
        c.bptt = c.sequence!.longest
        c.batchSize = 8
        c.optimizer = OptimizerConfig(kind: .adam)
        c.learningRate = 0.01
        return c
    }

    @Test func checkpointCarriesTaskClassesAndNormalisationAndRestoresExactly() throws {
        let dir = try CheckpointScratch()
        let config = try Self.config(.parity, in: dir, bidirectional: true, pool: .max)
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
        for _ in 0..<5 { _ = try trainer.step() }
        let path = dir.file("c.h5")
        try Checkpoint.save(trainer, to: path, dataSHA256: "test")
        let content = try Checkpoint.load(path)
        #expect(content.config.sequence == config.sequence)
        #expect(content.taskState.strings("classes") == ["even", "odd"])
        let task = try #require(trainer.task as? SequenceTask)
        let normalization = try #require(task.normalization)
        #expect(content.taskState.floats("normalization/mean") == normalization.mean)
        #expect(content.taskState.floats("normalization/std") == normalization.std)

        let again = try Trainer(config: config, communicator: SingleProcessCommunicator())
        try Checkpoint.restore(content, into: again, file: path)
        #expect(again.task.arena.parameters.array == trainer.task.arena.parameters.array)
        #expect(again.progress == trainer.progress)
        #expect(try again.task.evaluate(split: "valid") == (try trainer.task.evaluate(split: "valid")))
        // The next step is the same step in both.
        let a = try trainer.step(), b = try again.step()
        #expect(a.loss == b.loss && a.gradNorm == b.gradNorm)
        #expect(again.task.arena.parameters.array == trainer.task.arena.parameters.array)
    }

    @Test func oneStepIsTheMeanGradientOverTheBatchsTargets() throws {
        let dir = try CheckpointScratch()
        var config = try Self.config(.adding, in: dir)
        config.optimizer = OptimizerConfig(kind: .sgd)
        config.learningRate = 0.1
        config.clip = 1e9
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
        let task = try #require(trainer.task as? SequenceTask)
        let before = trainer.task.arena.parameters.array
        // The first batch of epoch 1, as the trainer will take it.
        let batch = SequenceBatches.trainingEpoch(lengths: try (0..<60).map { try SequenceSet(path: config.data).split("train").length(of: $0) },
                                                  batchSize: 8, seed: config.seed, epoch: 1)[0]
        let report = try trainer.step()
        #expect(report.tokens == batch.count)
        // Reference: the same model, each sequence alone, summed gradients / count.
        let set = try SequenceSet(path: config.data), split = try set.split("train")
        let inputs = try split.loadInputs()
        guard case .features(let x) = inputs, case .values(let y) = split.targets else {
            Issue.record("adding is float features with value targets")
            return
        }
        let reference = SequenceModel(config: config.sequence!.modelConfig(config.model), seed: config.seed, maxSteps: 12,
                                      maxBatch: 1)
        #expect(reference.arena.parameters.array == before)
        reference.arena.zeroGradients()
        let (mean, std) = try #require(task.normalization)
        var lossSum = 0.0
        for i in batch {
            let rows = Int(split.offsets[i])..<Int(split.offsets[i + 1])
            var features: [Float] = []
            for r in rows { for f in 0..<2 { features.append((x[r * 2 + f] - mean[f]) / std[f]) } }
            features.withUnsafeBufferPointer {
                reference.forward(tokens: nil, features: $0.baseAddress!, steps: rows.count, batch: 1, lengths: [rows.count],
                                  state: nil, dropout: nil)
            }
            let prediction = reference.outputs[0], target = y[i]
            lossSum += Double((prediction - target) * (prediction - target))
            var d: [Float] = [2 * (prediction - target)]
            d.withUnsafeBufferPointer { reference.backward(dOutputs: $0.baseAddress!, gradientsReady: nil, progress: nil) }
        }
        #expect(abs(report.loss - lossSum / Double(batch.count)) <= 1e-5 * max(1, abs(report.loss)))
        var worst = 0.0
        let after = trainer.task.arena.parameters.array
        for i in 0..<before.count {
            let expected = Double(before[i]) - 0.1 * Double(reference.arena.gradients[i]) / Double(batch.count)
            worst = max(worst, abs(Double(after[i]) - expected) / max(abs(expected), 1e-2))
        }
        #expect(worst < 1e-4, "largest relative difference from the reference update \(worst)")
    }

    @Test func damagedNormalisationIsRefusedInOneLine() throws {
        let dir = try CheckpointScratch()
        let config = try Self.config(.adding, in: dir)
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
        let path = dir.file("c.h5")
        try Checkpoint.save(trainer, to: path, dataSHA256: "test")
        try CheckpointFixtures.edit(path) {
            try CheckpointFixtures.replace($0, group: "/normalization", "std", [Float](repeating: 0, count: 2), shape: [2])
        }
        let message = CheckpointFixtures.message { _ = try Checkpoint.load(path) } ?? ""
        #expect(message.contains("/normalization/std[0]") && message.contains("expected a finite number > 0"))
        #expect(!message.contains("\n"))
    }

    /// A checkpoint evaluated on data longer than anything it was trained on: the state is carried
    /// across windows of the trained length, which gives what one long window gives.
    @Test func longerSequencesThanTrainedRunInWindowsWithTheStateCarried() throws {
        let dir = try CheckpointScratch()
        let config = try Self.config(.parity, in: dir)   // lengths 3…12
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator())
        for _ in 0..<4 { _ = try trainer.step() }
        let long = dir.file("long.h5")
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .parity, seed: 9, sizes: [20, 20, 20], minLength: 20,
                                                              maxLength: 30), output: long)
        var onLong = config
        onLong.data = long
        let windowed = try SequenceTask(config: onLong, communicator: SingleProcessCommunicator(), forTraining: false)
        #expect(windowed.window == 12)
        var whole = onLong
        whole.bptt = 30
        whole.sequence!.longest = 30
        let single = try SequenceTask(config: whole, communicator: SingleProcessCommunicator(), forTraining: false)
        #expect(single.window == 30)
        let normalization = try #require((trainer.task as? SequenceTask)?.normalization)
        for task in [windowed, single] {
            task.arena.parameters.pointer.update(from: trainer.task.arena.parameters.pointer, count: task.arena.count)
            var state = TaskState()
            state.append("classes", strings: ["even", "odd"])
            state.append("normalization/mean", floats: normalization.mean, shape: [1])
            state.append("normalization/std", floats: normalization.std, shape: [1])
            try task.restore(state, file: "test")
        }
        let a = try windowed.evaluateFully(split: "test"), b = try single.evaluateFully(split: "test")
        #expect(a.count == 20 && b.count == 20)
        #expect(abs(a.lossSum - b.lossSum) <= 1e-5 * abs(b.lossSum), "windowed \(a.lossSum) vs one window \(b.lossSum)")
        #expect(a.confusion == b.confusion)
    }
}
