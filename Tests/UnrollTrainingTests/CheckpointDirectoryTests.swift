// The checkpoint directory of a run: `step-NNNNNNNN.h5` files listed by step, `latest.h5` and
// `best.h5` links, pruning that keeps the newest K and the best; and a run that checkpoints into
// such a directory, resumed from "latest", ends with the same parameters as an uninterrupted run.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

@Suite struct CheckpointDirectoryTests {
    typealias F = CheckpointFixtures

    private func touch(_ path: String) throws {
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
    }

    private func stepFiles(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("step-") }.sorted()
    }

    private func linkTarget(_ dir: String, _ link: String) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + link)
    }

    @Test func fileNamesAreZeroPaddedToEightDigits() {
        #expect(CheckpointDirectory.fileName(step: 0) == "step-00000000.h5")
        #expect(CheckpointDirectory.fileName(step: 1234) == "step-00001234.h5")
        #expect(CheckpointDirectory.fileName(step: 123_456_789) == "step-123456789.h5")
    }

    @Test func listOrdersByStepNumberAndIgnoresOtherFiles() throws {
        let dir = try CheckpointScratch()
        for name in ["step-00000010.h5", "step-00000002.h5", "step-123456789.h5", "step-5.h5", "step-00000100.h5",
                     "step-00000003.h5.tmp.4242", "step-x.h5", "notes.txt", "best.h5.tmp.1"] {
            try touch(dir.file(name))
        }
        try CheckpointDirectory.setLink("latest.h5", to: dir.file("step-00000100.h5"), in: dir.path)
        let listed = CheckpointDirectory.list(dir.path)
        #expect(listed.map(\.step) == [2, 5, 10, 100, 123_456_789])
        #expect(listed.map(\.path) == ["step-00000002.h5", "step-5.h5", "step-00000010.h5", "step-00000100.h5",
                                       "step-123456789.h5"].map(dir.file))
        #expect(CheckpointDirectory.latest(dir.path) == dir.file("step-123456789.h5"))
    }

    @Test func emptyOrMissingDirectoryHasNoLatest() throws {
        let dir = try CheckpointScratch()
        #expect(CheckpointDirectory.list(dir.path).isEmpty)
        #expect(CheckpointDirectory.latest(dir.path) == nil)
        #expect(CheckpointDirectory.latest(dir.file("absent")) == nil)
    }

    @Test func setLinkIsRelativeReplacesTheOldTargetAndLeavesNoTemporary() throws {
        let dir = try CheckpointScratch()
        for s in [1, 2] { try touch(dir.file(CheckpointDirectory.fileName(step: s))) }
        try CheckpointDirectory.setLink("latest.h5", to: dir.file("step-00000001.h5"), in: dir.path)
        try CheckpointDirectory.setLink("latest.h5", to: dir.file("step-00000002.h5"), in: dir.path)
        // Relative, so the directory can be moved or copied as a whole.
        #expect(try linkTarget(dir.path, "latest.h5") == "step-00000002.h5")
        #expect(try dir.contents() == ["latest.h5", "step-00000001.h5", "step-00000002.h5"])
    }

    @Test(arguments: [(2, 2, ["step-00000002.h5", "step-00000005.h5", "step-00000006.h5"]),
                      (2, 6, ["step-00000005.h5", "step-00000006.h5"]),
                      (1, 1, ["step-00000001.h5", "step-00000006.h5"]),
                      (10, 3, ["step-00000001.h5", "step-00000002.h5", "step-00000003.h5", "step-00000004.h5",
                               "step-00000005.h5", "step-00000006.h5"])])
    func pruneKeepsTheNewestAndTheBest(keep: Int, best: Int, remaining: [String]) throws {
        let dir = try CheckpointScratch("prune\(keep)\(best)")
        for s in 1...6 { try touch(dir.file(CheckpointDirectory.fileName(step: s))) }
        try CheckpointDirectory.setLink("best.h5", to: dir.file(CheckpointDirectory.fileName(step: best)), in: dir.path)
        try CheckpointDirectory.setLink("latest.h5", to: dir.file("step-00000006.h5"), in: dir.path)
        CheckpointDirectory.prune(dir.path, keep: keep)
        #expect(try stepFiles(dir.path) == remaining)
        // Both links still resolve.
        for link in ["best.h5", "latest.h5"] {
            #expect(FileManager.default.fileExists(atPath: dir.file(link)), "\(link) dangles")
        }
    }

    @Test func pruneWithoutABestLinkKeepsTheNewest() throws {
        let dir = try CheckpointScratch()
        for s in 1...4 { try touch(dir.file(CheckpointDirectory.fileName(step: s))) }
        CheckpointDirectory.prune(dir.path, keep: 2)
        #expect(try stepFiles(dir.path) == ["step-00000003.h5", "step-00000004.h5"])
    }

    /// A run checkpointing every step keeps K files plus the best, its links resolve, and a run
    /// resumed from "latest" finishes with exactly the parameters of an uninterrupted run.
    @Test func runKeepsKCheckpointsAndResumingFromLatestEqualsAnUninterruptedRun() throws {
        let dir = try CheckpointScratch()
        let data = dir.file("arith.h5")
        let vocab = try F.makeArith(data)
        var config = F.config(data: data, vocab: vocab, cell: .lstm, optimizer: .adam)
        // A constant rate: the interrupted run validates once more (at its last step), which would
        // move a plateau schedule.
        config.schedule = .constant
        config.evalEvery = 2
        config.checkpointEvery = 1
        config.keep = 2
        let quiet: LogSink = { _ in }

        var whole = config
        whole.steps = 7
        whole.checkpointDir = dir.file("whole")
        try FileManager.default.createDirectory(atPath: whole.checkpointDir!, withIntermediateDirectories: true)
        let uninterrupted = try TrainingRun(config: whole, communicator: SingleProcessCommunicator(), resume: nil, log: quiet)
        _ = try uninterrupted.run()

        var first = config
        first.steps = 5
        first.checkpointDir = dir.file("parts")
        try FileManager.default.createDirectory(atPath: first.checkpointDir!, withIntermediateDirectories: true)
        let summary = try TrainingRun(config: first, communicator: SingleProcessCommunicator(), resume: nil, log: quiet).run()
        #expect(summary.lastCheckpoint == dir.file("parts/step-00000005.h5"))
        let parts = dir.file("parts")
        #expect(try linkTarget(parts, "latest.h5") == "step-00000005.h5")
        let best = try linkTarget(parts, "best.h5")
        let expected = Set(["step-00000004.h5", "step-00000005.h5", best]).sorted()
        #expect(try stepFiles(parts) == expected)

        var second = first
        second.steps = 7
        let resumed = try TrainingRun(config: second, communicator: SingleProcessCommunicator(), resume: "latest", log: quiet)
        #expect(resumed.trainer.progress.step == 5)
        _ = try resumed.run()
        #expect(resumed.trainer.progress.step == 7)
        #expect(F.arenaBits(resumed.trainer) == F.arenaBits(uninterrupted.trainer))
        #expect(F.slotBits(resumed.trainer) == F.slotBits(uninterrupted.trainer))
        #expect(F.hiddenBits(resumed.trainer).h == F.hiddenBits(uninterrupted.trainer).h)
    }
}
