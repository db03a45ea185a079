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

    @Test(arguments: [OptimizerKind.sgd, .adam])
    func languageModelMicroBatchesGiveTheUnsplitStep(optimizer: OptimizerKind) throws {
        let dir = try CheckpointScratch("accLM\(optimizer)")
        let data = dir.file("arith.h5")
        var config = F.config(data: data, vocab: try F.makeArith(data), optimizer: optimizer)
        config.batchSize = 8
        config.clip = 0.5  // clipping fires on some steps: the norm must agree to decide it alike
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
        config.reductionGroup = 2
        #expect(config.problem()?.hasPrefix("--accumulate 2 and --reduction-group 2 exclude each other") == true)
        var sequence = try SequenceTaskTests.config(.parity, in: dir)
        sequence.accumulate = 9
        let s = F.message { _ = try Trainer(config: sequence, communicator: SingleProcessCommunicator()) }
        #expect(s == "configuration: --accumulate 9 exceeds each rank's 8 sequence(s) per batch (--batch-size 8 over 1 rank(s))")
    }
}
