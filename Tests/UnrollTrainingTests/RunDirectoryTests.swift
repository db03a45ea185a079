// A run owns its checkpoint directory: a second run is refused with the owner's host and pid, a
// dead owner's lock is taken over, temporaries of dead writers are removed, a new run refuses a
// directory that holds checkpoints, a resume skips damaged newest checkpoints (setting them aside)
// and refuses a directory that mixes runs, and pruning never removes the checkpoint just written.
// Also the configuration policy of a resumed run (ConfigMerge) and `--init-from`.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

@Suite struct RunDirectoryTests {
    typealias F = CheckpointFixtures
    let quiet: LogSink = { _ in }

    /// Collects log lines (tests run the log sink synchronously on one thread).
    final class Lines: @unchecked Sendable {
        var lines: [String] = []
        var sink: LogSink { { [self] in lines.append($0) } }
    }

    @Test func aSecondOwnerIsRefusedWithTheOwnersHostAndPid() throws {
        let dir = try CheckpointScratch()
        let first = try RunDirectoryLock(directory: dir.path, runId: "run-a")
        #expect(first.previousOwner == nil)
        let message = F.message { _ = try RunDirectoryLock(directory: dir.path, runId: "run-b") }
        let text = try #require(message)
        #expect(!text.contains("\n"))
        #expect(text.contains("in use by run run-a"))
        #expect(text.contains("host \(RunDirectoryLock.hostName())"))
        #expect(text.contains("pid \(getpid())"))
        first.release()
        // Released cleanly: the next owner takes it without a takeover.
        let second = try RunDirectoryLock(directory: dir.path, runId: "run-b")
        #expect(second.previousOwner == nil)
    }

    @Test func aDeadOwnersLockIsTakenOver() throws {
        let dir = try CheckpointScratch()
        // What a killed owner leaves: its text in the file, no flock (the kernel dropped it).
        let dead = DirectoryOwner(host: "node7", pid: 999_999, runId: "run-dead", since: "2026-11-30T00:00:00Z")
        try JSONEncoder().encode(dead).write(to: URL(fileURLWithPath: dir.file(RunDirectoryLock.fileName)))
        let lock = try RunDirectoryLock(directory: dir.path, runId: "run-new")
        #expect(lock.previousOwner == dead)
        let text = try String(contentsOfFile: dir.file(RunDirectoryLock.fileName), encoding: .utf8)
        #expect(text.contains("run-new") && !text.contains("run-dead"))
    }

    @Test func staleTemporariesAreRemovedWhenTheDirectoryIsTaken() throws {
        let dir = try CheckpointScratch()
        for name in ["step-00000004.h5.tmp.4242", "latest.h5.tmp.17", "step-00000002.h5", "notes.tmp.txt"] {
            try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file(name)))
        }
        let lines = Lines()
        _ = try RunDirectory(path: dir.path, runId: "r", communicator: SingleProcessCommunicator(), log: lines.sink)
        #expect(try dir.contents() == ["notes.tmp.txt", "step-00000002.h5", "unroll.lock"])
        #expect(lines.lines.count == 2)
        #expect(lines.lines.allSatisfy { $0.contains("left by a writer that died") })
    }

    @Test func pruneNeverRemovesTheProtectedCheckpoint() throws {
        let dir = try CheckpointScratch()
        for s in [1, 2, 3, 9] { try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file(CheckpointDirectory.fileName(step: s)))) }
        // Step 2 was just written (a resumed run behind an older, larger step number).
        CheckpointDirectory.prune(dir.path, keep: 1, protected: dir.file(CheckpointDirectory.fileName(step: 2)))
        #expect(try dir.contents() == ["step-00000002.h5", "step-00000009.h5"])
    }

    /// Three checkpoints of one run, steps 2, 4, 6, in `dir/c`.
    private func threeCheckpoints(_ dir: CheckpointScratch) throws -> (config: TrainingConfig, ckpt: String) {
        let data = dir.file("arith.h5")
        let vocab = try F.makeArith(data)
        var config = F.config(data: data, vocab: vocab)
        config.schedule = .constant
        config.checkpointDir = dir.file("c")
        config.checkpointEvery = 2
        config.evalEvery = 1000
        config.keep = 5
        config.steps = 6
        _ = try TrainingRun(config: config, communicator: SingleProcessCommunicator(), resume: nil, log: quiet).run()
        return (config, dir.file("c"))
    }

    @Test func aNewRunRefusesADirectoryHoldingCheckpoints() throws {
        let dir = try CheckpointScratch()
        let (config, ckpt) = try threeCheckpoints(dir)
        let message = F.message {
            _ = try TrainingRun(config: config, communicator: SingleProcessCommunicator(), resume: nil, log: quiet)
        }
        let text = try #require(message)
        #expect(text.contains(ckpt) && text.contains("already holds checkpoints of run") && text.contains("steps 2–6"))
        #expect(text.contains("--resume latest"))
    }

    @Test(arguments: ["truncated", "empty", "checksum", "chunkIndex"])
    func resumeLatestSkipsADamagedNewestCheckpoint(damage: String) throws {
        let dir = try CheckpointScratch("skip\(damage)")
        let (config, ckpt) = try threeCheckpoints(dir)
        let newest = ckpt + "/" + CheckpointDirectory.fileName(step: 6)
        switch damage {
        case "truncated":
            let size = try FileManager.default.attributesOfItem(atPath: newest)[.size] as! Int
            #expect(truncate(newest, off_t(size / 2)) == 0)
        case "empty":
            #expect(truncate(newest, 0) == 0)
        case "chunkIndex":
            try F.dropLastChunkFromIndex(of: "/params/rnn.weight_hh_l0", in: newest)
        default:
            let chunk = try F.firstChunk(of: "/params/rnn.weight_hh_l0", in: newest)
            try F.flipByte(newest, at: chunk.offset + chunk.size / 2)
        }
        let lines = Lines()
        var more = config
        more.steps = 8
        let run = try TrainingRun(config: more, communicator: SingleProcessCommunicator(), resume: "latest", log: lines.sink)
        #expect(run.trainer.progress.step == 4)
        #expect(lines.lines.contains { $0.contains("skipping \(newest)") && $0.contains("damaged") })
        if damage == "chunkIndex" {
            // Caught by the chunk count (a missing chunk would otherwise read as zeros, silently).
            #expect(lines.lines.contains { $0.contains(": /params/rnn.weight_hh_l0: expected 1 chunk, found 0") }, "\(lines.lines)")
        }
        // Set aside, not deleted; latest.h5 repaired to the checkpoint resumed from.
        #expect(FileManager.default.fileExists(atPath: newest + ".damaged"))
        #expect(!FileManager.default.fileExists(atPath: newest))
        #expect(CheckpointDirectory.linkTarget("latest.h5", in: ckpt) == CheckpointDirectory.fileName(step: 4))
        _ = try run.run()
        #expect(CheckpointDirectory.list(ckpt).map(\.step) == [2, 4, 6, 8])
    }

    @Test func resumeRefusesADirectoryMixingRuns() throws {
        let dir = try CheckpointScratch()
        let (config, ckpt) = try threeCheckpoints(dir)
        // A checkpoint of another run copied in.
        var other = config
        other.checkpointDir = dir.file("other")
        other.steps = 1
        other.checkpointEvery = 1
        _ = try TrainingRun(config: other, communicator: SingleProcessCommunicator(), resume: nil, log: quiet).run()
        try FileManager.default.copyItem(atPath: dir.file("other/step-00000001.h5"), toPath: ckpt + "/step-00000001.h5")
        let message = F.message {
            _ = try TrainingRun(config: config, communicator: SingleProcessCommunicator(), resume: "latest", log: quiet)
        }
        let text = try #require(message)
        #expect(text.contains("several runs") && text.contains("step 1") && text.contains("steps 2–6"))
    }

    @Test func resumingAnOlderFileSetsNewerOnesAsideAndKeepsTheRunId() throws {
        let dir = try CheckpointScratch()
        let (config, ckpt) = try threeCheckpoints(dir)
        let id = try Checkpoint.runId(ckpt + "/step-00000002.h5")
        #expect(id != nil)
        let run = try TrainingRun(config: config, communicator: SingleProcessCommunicator(),
                                  resume: ckpt + "/step-00000002.h5", log: quiet)
        #expect(run.runId == id)
        #expect(CheckpointDirectory.list(ckpt).map(\.step) == [2])
        #expect(FileManager.default.fileExists(atPath: ckpt + "/step-00000006.h5.abandoned"))
        _ = try run.run()
        #expect(try Checkpoint.runId(ckpt + "/step-00000006.h5") == id)
    }

    // MARK: Configuration of a resumed run

    private func option(_ flag: String, _ kind: GivenOption.Kind, _ value: Float) -> GivenOption {
        GivenOption(flag, kind, given: "\(value)", apply: { $0.model.dropout = value }, current: { "\($0.model.dropout)" })
    }

    @Test func aFixedOptionThatChangesTheRunIsRefusedInOneLine() throws {
        var saved = TrainingConfig(data: "d.h5", model: ModelConfig(cell: .lstm, vocabSize: 5, embeddingSize: 4, hiddenSize: 4, layers: 1))
        saved.model.dropout = 0.25
        // The same value is fine.
        _ = try ConfigMerge.resume(saved, file: "ck.h5", step: 7, [option("--dropout", .fixed, 0.25)])
        let message = F.message { _ = try ConfigMerge.resume(saved, file: "ck.h5", step: 7, [option("--dropout", .fixed, 0.5)]) }
        #expect(message?.contains("--dropout: the checkpoint ck.h5 has 0.25, given 0.5") == true)
        #expect(message?.contains("\n") == false)
    }

    @Test func overridableOptionsAreRecordedAndFreeOnesApplySilently() throws {
        let saved = TrainingConfig(data: "d.h5", model: ModelConfig(cell: .gru, vocabSize: 5, embeddingSize: 4, hiddenSize: 4, layers: 1))
        let lr = GivenOption("--lr", .overridable, given: "0.1", apply: { $0.learningRate = 0.1 }, current: { "\($0.learningRate)" })
        let keep = GivenOption("--keep", .free, given: "9", apply: { $0.keep = 9 }, current: { "\($0.keep)" })
        let (config, overrides) = try ConfigMerge.resume(saved, file: "ck.h5", step: 12, [lr, keep])
        #expect(config.learningRate == 0.1 && config.keep == 9)
        #expect(overrides == [ConfigOverride(step: 12, flag: "--lr", from: "1.0", to: "0.1")])
    }

    @Test func overridesAreSavedInTheCheckpoint() throws {
        let dir = try CheckpointScratch()
        var (config, ckpt) = try threeCheckpoints(dir)
        config.learningRate = 0.005
        config.steps = 8
        let change = ConfigOverride(step: 6, flag: "--lr", from: "0.01", to: "0.005")
        _ = try TrainingRun(config: config, communicator: SingleProcessCommunicator(), resume: "latest",
                            overrides: [change], log: quiet).run()
        let content = try Checkpoint.load(ckpt + "/step-00000008.h5")
        #expect(content.progress.overrides == [change])
        #expect(content.config.learningRate == 0.005)
    }

    // MARK: --init-from

    @Test func initFromStartsANewRunFromTheWeights() throws {
        let dir = try CheckpointScratch()
        let (config, ckpt) = try threeCheckpoints(dir)
        let source = ckpt + "/step-00000006.h5"
        var fine = config
        fine.checkpointDir = dir.file("fine")
        fine.learningRate = 0.001
        let run = try TrainingRun(config: fine, communicator: SingleProcessCommunicator(), resume: nil, initFrom: source, log: quiet)
        #expect(run.trainer.progress.step == 0)
        #expect(run.trainer.optimizer.stepCount == 0)
        let saved = try Checkpoint.load(source)
        #expect(F.parameters(run.trainer) == saved.parameters)
        #expect(run.runId != saved.runId)

        var wider = fine
        wider.checkpointDir = dir.file("wider")
        wider.model.hiddenSize = 9
        let message = F.message {
            _ = try TrainingRun(config: wider, communicator: SingleProcessCommunicator(), resume: nil, initFrom: source, log: quiet)
        }
        #expect(message?.contains("--hidden: the checkpoint has 7, the run has 9") == true)
    }
}

/// The parent of a checkpoint directory path, without Foundation's path helpers (which trapped on
/// `--checkpoint-dir c`).
@Test(arguments: [("c", nil), ("ab", nil), ("a/b", "a"), ("a/b/", "a"), ("/a", "/"), ("/", nil), ("a//b", "a"),
                  ("/x/y/z", "/x/y"), ("./c", ".")] as [(String, String?)])
func parentDirectoryOfCheckpointPaths(path: String, parent: String?) {
    #expect(RunDirectoryLock.parentDirectory(path) == parent)
}
