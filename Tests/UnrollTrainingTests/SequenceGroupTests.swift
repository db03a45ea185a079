// Reduction groups on sequence tasks (SequenceTask+Groups.swift): one step's gradient and loss with
// groups equal those without to summation order, and the batch split over 2 or 4 pretend ranks —
// each running its whole groups, the shares then folded by the halving tree over ranks as the
// communicator does — gives exactly the bits of one process (without groups it does not: control).
// Measured: grouped vs ungrouped gradients within 2e-6 of the largest element (Jordan; others ≤ 7e-7). Covered: float and token inputs,
// sequence and per-step heads, classes and values, padding (lengths 3…12, copy 23…32), windows
// carried within a sequence, bidirectional, 2 layers, dropout, and the cells rnn, lstm, gru,
// leaky (learned rates), jordan, clockwork and skip connections; a full and a short last batch
// (whose last groups are empty).
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

/// Rank `rank` of `size` for tasks that only read their share: every collective is unreachable.
private final class PretendRank: Communicator {
    var collectiveTimeout: Double = 600
    let rank: Int, size: Int
    init(_ rank: Int, of size: Int) { (self.rank, self.size) = (rank, size) }
    func allreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws { preconditionFailure("no collectives here") }
    func allreduceSum(_ x: UnsafeMutableBufferPointer<Double>) throws { preconditionFailure("no collectives here") }
    func allreduceMax(_ x: UnsafeMutableBufferPointer<Double>) throws { preconditionFailure("no collectives here") }
    func broadcast(_ bytes: inout [UInt8], root: Int) throws { preconditionFailure("no collectives here") }
    func barrier() throws { preconditionFailure("no collectives here") }
    func allAgree(_ ok: Bool) throws -> Bool { preconditionFailure("no collectives here") }
    func checkIdentical(_ value: String, what: String) throws { preconditionFailure("no collectives here") }
    func startAllreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws -> ReductionHandle {
        preconditionFailure("no collectives here")
    }
    func wait(_ h: ReductionHandle) throws { preconditionFailure("no collectives here") }
    func poll(_ h: ReductionHandle) throws -> Bool { preconditionFailure("no collectives here") }
    func abort(_ message: String, code: Int32) -> Never { fatalError(message) }
}

@Suite struct SequenceGroupTests {
    enum Case: String, CaseIterable, CustomStringConvertible {
        case gruBidirectionalMaxDropout, lstmWindows, rnnTokensPerStepDropout, leakyLearnedWindows, jordanTokens
        case clockworkMean, skipReluTokens
        var description: String { rawValue }
    }

    static func config(_ c: Case, in dir: CheckpointScratch) throws -> TrainingConfig {
        var config: TrainingConfig
        switch c {
        case .gruBidirectionalMaxDropout:
            config = try SequenceTaskTests.config(.parity, in: dir, bidirectional: true, pool: .max)
            config.model.dropout = 0.2
        case .lstmWindows:
            config = try SequenceTaskTests.config(.adding, in: dir)
            config.model.cell = .lstm
            config.bptt = 5
        case .rnnTokensPerStepDropout:
            config = try SequenceTaskTests.config(.copy, in: dir)
            config.model.cell = .rnnTanh
            config.model.embeddingSize = 4
            config.model.dropout = 0.1
            config.bptt = 10
        case .leakyLearnedWindows:
            config = try SequenceTaskTests.config(.adding, in: dir)
            config.model.cell = .leaky
            config.model.leak = .learned(low: 0.05, high: 0.9)
            config.model.layers = 1
            config.bptt = 4
        case .jordanTokens:
            config = try SequenceTaskTests.config(.copy, in: dir)
            config.model.cell = .jordan
            config.model.embeddingSize = 4
            config.model.layers = 1
        case .clockworkMean:
            config = try SequenceTaskTests.config(.parity, in: dir, pool: .mean)
            config.model.cell = .clockwork
            config.model.hiddenSize = 8
            config.model.layers = 1
        case .skipReluTokens:
            config = try SequenceTaskTests.config(.copy, in: dir)
            config.model.cell = .rnnRelu
            config.model.embeddingSize = 4
            config.model.skipSteps = [2]
            config.model.layers = 1
        }
        if config.sequence!.tokens { config.model.vocabSize = try SequenceSet(path: config.data).vocabulary.count }
        #expect(config.problem() == nil, "\(c): \(config.problem() ?? "")")
        return config
    }

    /// One step's (gradient, loss sum, count) on `size` pretend ranks, the shares folded as the
    /// communicator does: by the halving tree over ranks ((x0 + x1) + (x2 + x3)).
    static func step(_ config: TrainingConfig, position: Int, size: Int) throws -> (gradient: [Float], loss: Double, count: Int) {
        let shares = try (0..<size).map { rank in
            let task = try SequenceTask(config: config, communicator: PretendRank(rank, of: size))
            task.startEpoch(1, at: 0)
            _ = try task.prepareStep(position)
            task.arena.zeroGradients()
            let (loss, count) = task.forwardBackward(step: 3, microBatch: .whole, ready: { _ in }, progress: {})
            return (gradient: task.arena.gradients.array, loss: loss, count: count)
        }
        func fold(_ lo: Int, _ hi: Int) -> (gradient: [Float], loss: Double, count: Int) {
            if hi - lo == 1 { return shares[lo] }
            let mid = lo + (hi - lo) / 2
            let a = fold(lo, mid), b = fold(mid, hi)
            return (zip(a.gradient, b.gradient).map { $0 + $1 }, a.loss + b.loss, a.count + b.count)
        }
        return fold(0, size)
    }

    /// The batch positions to test: the first, and the short last batch of the epoch (60 = 7·8 + 4
    /// sequences: with groups of 2, groups 2 and 3 are empty and ranks 1… of 2 or 4 get nothing).
    static func positions(_ config: TrainingConfig) throws -> [Int] {
        let split = try SequenceSet(path: config.data).split("train")
        let batches = SequenceBatches.trainingEpoch(lengths: (0..<split.count).map { split.length(of: $0) },
                                                    batchSize: config.batchSize, seed: config.seed, epoch: 1)
        let short = try #require(batches.firstIndex { $0.count < config.batchSize })
        #expect(batches[short].count == 4)
        return [short == 0 ? 1 : 0, short]
    }

    @Test(arguments: Case.allCases)
    func groupedStepMatchesUngroupedAndIsTheSameBitsOnTwoAndFourRanks(_ c: Case) throws {
        let dir = try CheckpointScratch("seqGroups\(c)")
        var config = try Self.config(c, in: dir)
        for position in try Self.positions(config) {
            config.reductionGroup = nil
            let plain = try Self.step(config, position: position, size: 1)
            config.reductionGroup = 2
            let one = try Self.step(config, position: position, size: 1)
            #expect(one.count == plain.count && one.count > 0)
            #expect(AccumulationTests.relative(plain.loss, one.loss) < 1e-6, "\(c) @\(position): loss \(plain.loss) vs \(one.loss)")
            let d = AccumulationTests.relativeDifference(plain.gradient, one.gradient)
            #expect(d < 5e-6, "\(c) @\(position): grouped gradient differs by \(d) relative")
            for size in [2, 4] {
                let split = try Self.step(config, position: position, size: size)
                #expect(split.count == one.count)
                #expect(split.loss.bitPattern == one.loss.bitPattern, "\(c) @\(position) np=\(size): loss \(split.loss) vs \(one.loss)")
                let differing = zip(split.gradient, one.gradient).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(c) @\(position) np=\(size): \(differing) gradient elements differ from np=1")
            }
            // Control: without groups the two ranks' sums are associated differently.
            config.reductionGroup = nil
            let ungroupedSplit = try Self.step(config, position: position, size: 2)
            let control = zip(ungroupedSplit.gradient, plain.gradient).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(control > 0, "\(c) @\(position): without groups np=2 should differ from np=1 (test too weak)")
        }
    }

    @Test func rankCountsThatCannotHoldWholeSubtreesAreRefusedInOneLine() throws {
        let dir = try CheckpointScratch()
        var config = try SequenceTaskTests.config(.parity, in: dir)
        config.reductionGroup = 2  // 4 groups of 2
        let message = CheckpointFixtures.message { _ = try SequenceTask(config: config, communicator: PretendRank(0, of: 8)) }
        #expect(message?.hasPrefix("configuration: --reduction-group 2 cuts --batch-size 8 into 4 groups, which 8 ranks cannot share") == true,
                "\(message ?? "accepted")")
        #expect(config.reductionGroupProblem(worldSize: 4) == nil && config.reductionGroupProblem(worldSize: 3) != nil)
        config.accumulate = 2
        #expect(config.problem()?.hasPrefix("--accumulate 2 and --reduction-group 2 exclude each other on sequence tasks") == true)
    }
}
