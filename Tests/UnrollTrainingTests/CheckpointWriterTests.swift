// Background checkpoint writes (CheckpointWriter): the file a background write leaves is byte for
// byte the file a foreground save of the same state writes, even while training goes on during the
// write; a failed background write is reported by the next wait in the one-line form of a
// foreground failure, with no temporary file left and the earlier checkpoint intact; a TrainingRun
// that saves at every step reports its failure at the next save.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
@testable import UnrollTraining

private typealias F = CheckpointFixtures

@Suite struct CheckpointWriterTests {
    @Test func backgroundWriteIsByteIdenticalToAForegroundSave() throws {
        #expect(HDF5Library.isThreadSafe, "libhdf5 is not thread-safe here: the writer runs in the foreground")
        let dir = try CheckpointScratch()
        let data = dir.file("arith.h5")
        let vocab = try F.makeArith(data)
        let t = try F.trainer(F.config(data: data, vocab: vocab), steps: 3)
        let created: time_t = 1_700_000_000
        let foreground = dir.file("fg.h5"), background = dir.file("bg.h5")
        try Checkpoint.write(try Checkpoint.snapshot(t, dataSHA256: "sha", runId: "run", created: created), to: foreground)

        let writer = CheckpointWriter()
        #expect(writer.isBackground)
        // The write pauses until the trainer has moved on: the snapshot must not see the step.
        let gate = DispatchSemaphore(value: 0)
        var storage: UnsafePointer<Float>?
        do {
            let snapshot = try Checkpoint.snapshot(t, dataSHA256: "sha", runId: "run", created: created)
            storage = snapshot.parameters.withUnsafeBufferPointer { $0.baseAddress }
            writer.start(snapshot, to: background, failureHook: { stage in if stage == .contentWritten { gate.wait() } })
        }
        let before = F.arenaBits(t)
        _ = try t.step()
        _ = try t.step()
        #expect(F.arenaBits(t) != before)
        gate.signal()
        #expect(writer.wait() == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: background)) == Data(contentsOf: URL(fileURLWithPath: foreground)))
        #expect(try Checkpoint.load(background).progress.step == 3)

        // The next snapshot refills the staging buffers in place (no copy on write) with the
        // trainer's new state.
        let again = try Checkpoint.snapshot(t, dataSHA256: "sha", runId: "run", staging: writer.takeStaging(), created: created)
        #expect(again.parameters.withUnsafeBufferPointer { $0.baseAddress } == storage)
        #expect(again.parameters.map(\.bitPattern) == Array(F.arenaBits(t).prefix(again.parameters.count)))
    }

    @Test func failedBackgroundWriteIsReportedByWaitInOneLine() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir, steps: 2)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        _ = try t.step()
        let full = DataError.io(path: AtomicFile.temporaryPath(for: path), operation: "write", reason: "No space left on device")
        let writer = CheckpointWriter()
        writer.start(try Checkpoint.snapshot(t, dataSHA256: ""), to: path, failureHook: { _ in throw full })
        let message = writer.wait().map { String(describing: $0) }
        #expect(message?.hasPrefix("checkpoint \(path): no space left on device (wrote ") == true, "\(message ?? "nil")")
        #expect(message?.contains("\n") == false)
        #expect(writer.wait() == nil)  // reported once
        #expect(try dir.contents() == ["arith.h5", "ck.h5"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    /// A run whose first save fails stops at its next save with that save's one-line error,
    /// having trained on in between (the failure is found when the next save waits for it).
    @Test func runReportsABackgroundFailureAtTheNextSave() throws {
        let dir = try CheckpointScratch()
        let data = dir.file("arith.h5")
        var config = F.config(data: data, vocab: try F.makeArith(data))
        config.steps = 6
        config.checkpointEvery = 2
        config.checkpointDir = dir.file("c")
        try FileManager.default.createDirectory(atPath: config.checkpointDir!, withIntermediateDirectories: true)
        let run = try TrainingRun(config: config, communicator: SingleProcessCommunicator(), resume: nil, log: { _ in })
        let full = DataError.io(path: "x", operation: "write", reason: "No space left on device")
        run.checkpointFailureHook = { _ in throw full }
        let message = F.message { _ = try run.run() }
        let first = dir.file("c/step-00000002.h5")
        #expect(message?.contains("checkpoint \(first): no space left on device (wrote ") == true, "\(message ?? "nil")")
        #expect(run.trainer.progress.step == 4)
        #expect(run.checkpointStalls.count == 1)  // the second save stopped at its wait
    }
}
