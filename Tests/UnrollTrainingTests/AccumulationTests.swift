// `--accumulate K`: a step run as K micro-batches of each rank's share gives the loss, target count,
// gradient norm and update of the unsplit step up to summation order (language model with dropout
// and carried state; sequence tasks with windows carried within a batch), a run resumed at the same
// K continues bit for bit, and a K that does not fit is refused in one line naming --accumulate.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

private typealias F = CheckpointFixtures

@Suite struct AccumulationTests {
    /// Largest |a − b| relative to the largest |a| (elementwise relative error is meaningless for
    /// parameters near zero).
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        let scale = a.reduce(0) { max($0, Double(abs($1))) }
        return zip(a, b).reduce(0) { max($0, Double(abs($1.0 - $1.1))) } / max(scale, 1e-30)
    }

    static func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(a), 1e-30) }

    /// Steps `config` with K = 1 and with each of `parts`, comparing every step's figures and the
    /// parameters and carried state after the last.
    static func expectSameSteps(_ config: TrainingConfig, parts: [Int], steps: Int) throws {
        let whole = try Trainer(config: config, communicator: SingleProcessCommunicator())
        let reference = try (0..<steps).map { _ in try whole.step() }
        for k in parts {
            var c = config
            c.accumulate = k
            let split = try Trainer(config: c, communicator: SingleProcessCommunicator())
            for r in reference {
                let s = try split.step()
                #expect(s.tokens == r.tokens, "K=\(k) step \(r.step)")
                #expect(relative(r.loss, s.loss) < 1e-6, "K=\(k) step \(r.step): loss \(r.loss) vs \(s.loss)")
                #expect(relative(r.gradNorm, s.gradNorm) < 1e-6, "K=\(k) step \(r.step): norm \(r.gradNorm) vs \(s.gradNorm)")
                #expect(s.clipped == r.clipped)
            }
            let difference = relativeDifference(whole.task.arena.parameters.array, split.task.arena.parameters.array)
            #expect(difference < 1e-6, "K=\(k): parameters differ by \(difference) relative")
            if let a = whole.task as? LanguageModelTask, let b = split.task as? LanguageModelTask {
                #expect(relativeDifference(a.state.h.array, b.state.h.array) < 1e-6, "K=\(k): carried state")
            }
        }
    }

    /// A language model of 8 streams on arith data in a scratch directory (kept alive by the caller).
    static func languageModel(_ name: String, optimizer: OptimizerKind) throws -> (CheckpointScratch, TrainingConfig) {
        let dir = try CheckpointScratch(name)
        let data = dir.file("arith.h5")
        var config = F.config(data: data, vocab: try F.makeArith(data), optimizer: optimizer)
        config.batchSize = 8
        config.clip = 0.5  // clipping fires on some steps: the norm must agree to decide it alike
        return (dir, config)
    }

    @Test(arguments: [OptimizerKind.sgd, .adam])
    func languageModelMicroBatchesGiveTheUnsplitStep(optimizer: OptimizerKind) throws {
        let (dir, config) = try Self.languageModel("accLM\(optimizer)", optimizer: optimizer)
        defer { withExtendedLifetime(dir) {} }
        try Self.expectSameSteps(config, parts: [2, 4, 8], steps: 4)
    }

    @Test func sequenceMicroBatchesGiveTheUnsplitStep() throws {
        let dir = try CheckpointScratch()
        var config = try SequenceTaskTests.config(.parity, in: dir, bidirectional: true, pool: .max)
        config.optimizer = OptimizerConfig(kind: .sgd)
        config.learningRate = 0.1
        try Self.expectSameSteps(config, parts: [2, 3, 8], steps: 4)
        // Windows carried within a batch (a window shorter than the longest sequence).
        var windowed = try SequenceTaskTests.config(.adding, in: dir)
        windowed.bptt = 5
        try Self.expectSameSteps(windowed, parts: [2, 3], steps: 3)
    }

    @Test func resumeAtTheSameAccumulationIsBitIdentical() throws {
        let dir = try CheckpointScratch()
        let data = dir.file("arith.h5")
        var config = F.config(data: data, vocab: try F.makeArith(data))
        config.accumulate = 2
        config.schedule = .constant
        config.checkpointEvery = 1
        let quiet: LogSink = { _ in }
        var whole = config
        whole.steps = 6
        whole.checkpointDir = dir.file("whole")
        try FileManager.default.createDirectory(atPath: whole.checkpointDir!, withIntermediateDirectories: true)
        let uninterrupted = try TrainingRun(config: whole, communicator: SingleProcessCommunicator(), resume: nil, log: quiet)
        _ = try uninterrupted.run()

        var first = config
        first.steps = 3
        first.checkpointDir = dir.file("parts")
        try FileManager.default.createDirectory(atPath: first.checkpointDir!, withIntermediateDirectories: true)
        _ = try TrainingRun(config: first, communicator: SingleProcessCommunicator(), resume: nil, log: quiet).run()
        #expect(try Checkpoint.load(dir.file("parts/step-00000003.h5")).config.accumulate == 2)
        var second = first
        second.steps = 6
        let resumed = try TrainingRun(config: second, communicator: SingleProcessCommunicator(), resume: "latest", log: quiet)
        _ = try resumed.run()
        #expect(F.arenaBits(resumed.trainer) == F.arenaBits(uninterrupted.trainer))
        #expect(F.slotBits(resumed.trainer) == F.slotBits(uninterrupted.trainer))
        #expect(F.hiddenBits(resumed.trainer).h == F.hiddenBits(uninterrupted.trainer).h)
    }

    /// With reduction groups the micro-batches are whole subtrees of the rank's groups and their
    /// gradients are added by the halving tree: K = 2, 4, 8 give the bits of K = 1 — every step's
    /// loss and norm, the parameters, the optimizer state and the carried state.
    @Test(arguments: [OptimizerKind.sgd, .adam])
    func groupedMicroBatchesGiveTheUnsplitStepBitForBit(optimizer: OptimizerKind) throws {
        let (dir, base) = try Self.languageModel("accTree\(optimizer)", optimizer: optimizer)
        defer { withExtendedLifetime(dir) {} }
        var config = base
        config.reductionGroup = 1  // 8 groups of one stream
        let whole = try Trainer(config: config, communicator: SingleProcessCommunicator())
        let reference = try (0..<4).map { _ in try whole.step() }
        for k in [2, 4, 8] {
            var c = config
            c.accumulate = k
            let split = try Trainer(config: c, communicator: SingleProcessCommunicator())
            for r in reference {
                let s = try split.step()
                #expect(s.tokens == r.tokens && s.loss.bitPattern == r.loss.bitPattern, "K=\(k) step \(r.step): loss \(r.loss) vs \(s.loss)")
                #expect(s.gradNorm.bitPattern == r.gradNorm.bitPattern, "K=\(k) step \(r.step): norm \(r.gradNorm) vs \(s.gradNorm)")
            }
            #expect(F.arenaBits(split) == F.arenaBits(whole), "K=\(k): parameters")
            #expect(F.slotBits(split) == F.slotBits(whole), "K=\(k): optimizer state")
            #expect(F.hiddenBits(split).h == F.hiddenBits(whole).h, "K=\(k): carried state")
        }
        // Control: without groups K = 2 sums in another order, and the bits differ.
        config.reductionGroup = 0
        let plain = try Trainer(config: config, communicator: SingleProcessCommunicator())
        config.accumulate = 2
        let plainSplit = try Trainer(config: config, communicator: SingleProcessCommunicator())
        for _ in 0..<4 { _ = try plain.step(); _ = try plainSplit.step() }
        #expect(F.arenaBits(plain) != F.arenaBits(plainSplit), "control: ungrouped K = 2 should differ from K = 1")
    }

    @Test func accumulationThatDoesNotFitIsRefusedInOneLine() throws {
        let dir = try CheckpointScratch()
        let data = dir.file("arith.h5")
        var config = F.config(data: data, vocab: try F.makeArith(data))
        config.accumulate = 3  // 4 streams
        let lm = F.message { _ = try Trainer(config: config, communicator: SingleProcessCommunicator()) }
        #expect(lm == "configuration: --accumulate 3 must divide each rank's 4 streams (--batch-size 4 over 1 rank(s))")
        config.accumulate = 0
        #expect(config.problem() == "--accumulate must be ≥ 1, got 0")
        config.accumulate = 2
        config.reductionGroup = 4  // one group: no whole subtree for each of 2 micro-batches
        #expect(config.problem() == "--accumulate 2 with --reduction-group 4: each micro-batch must be a whole subtree "
                + "of the halving tree, so K must be a power of two dividing the 1 group(s) of --batch-size 4 (or set --reduction-group 0)")
        config.reductionGroup = 2
        #expect(config.problem() == nil)
        #expect(config.reductionGroupProblem(worldSize: 2)?.hasPrefix("--accumulate 2 with --reduction-group 2: each micro-batch "
                + "must be a whole subtree of the halving tree, so K must be a power of two dividing the 1 group(s) of each of 2 rank(s)") == true)
        config.reductionGroup = 1
        config.accumulate = 4
        #expect(config.problem() == nil && config.reductionGroupProblem(worldSize: 1) == nil)
        config.batchSize = 6
        config.accumulate = 3  // 6 groups of 1: 3 parts of 2 are not subtrees of the halving tree (3 + 3, then 1 + 2)
        #expect(config.problem()?.contains("K must be a power of two dividing the 6 group(s)") == true)
        var sequence = try SequenceTaskTests.config(.parity, in: dir)
        sequence.accumulate = 9
        let s = F.message { _ = try Trainer(config: sequence, communicator: SingleProcessCommunicator()) }
        #expect(s == "configuration: --accumulate 9 exceeds each rank's 8 sequence(s) per batch (--batch-size 8 over 1 rank(s))")
    }
}
