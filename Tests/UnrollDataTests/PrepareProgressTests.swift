// Tests of the progress hook of `unroll prepare`: every preparer announces its steps before the
// first one and ends with all of them done, never counting past the total.
import Foundation
import Testing
@testable import UnrollData

@Suite struct PrepareProgressTests {
    /// Records every report and checks the invariants as they arrive.
    final class Recorder {
        var reports: [(done: Int, total: Int, stage: String)] = []
        var progress: PrepareProgress {
            PrepareProgress { [self] done, total, stage in reports.append((done, total, stage)) }
        }

        func expectComplete() {
            #expect(!reports.isEmpty)
            #expect(reports.allSatisfy { $0.done <= $0.total })
            #expect(zip(reports, reports.dropFirst()).allSatisfy { pair in pair.1.done >= pair.0.done })
            let last = reports.last!
            #expect(last.done == last.total && last.total > 1, "\(reports)")
            #expect(last.stage.hasPrefix("write "))
        }
    }

    @Test func textSplitAndFilesReachTheirTotal() throws {
        let dir = try TempDir()
        let corpus = try dir.write("corpus.txt", String(repeating: "the cat sat on the mat\n", count: 40))
        let split = Recorder()
        _ = try TextPreparation.prepare(.split(input: corpus, fractions: [0.8, 0.1, 0.1]),
                                        options: TextPrepareOptions(level: .word), output: dir.file("a.h5"),
                                        progress: split.progress)
        split.expectComplete()
        #expect(split.reports.last!.total == 5)
        let files = Recorder()
        _ = try TextPreparation.prepare(.files(train: corpus, valid: corpus, test: corpus),
                                        options: TextPrepareOptions(level: .char), output: dir.file("b.h5"),
                                        progress: files.progress)
        files.expectComplete()
        #expect(files.reports.last!.total == 9)
        #expect(files.reports.contains { $0.stage == "read corpus.txt" })
    }

    @Test func syntheticTasksReachTheirTotal() throws {
        let dir = try TempDir()
        for task in SyntheticTask.allCases {
            let recorder = Recorder()
            let sizes = task == .arith ? [20000, 2000, 2000] : [200, 20, 20]  // arith: every character in train
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: task, seed: 1, sizes: sizes),
                                                 output: dir.file("\(task).h5"), progress: recorder.progress)
            recorder.expectComplete()
            #expect(recorder.reports.contains { $0.stage == "generate train" })
        }
    }

    @Test func sequenceDirectoryReachesItsTotal() throws {
        let dir = try TempDir()
        try FileManager.default.createDirectory(atPath: dir.file("classes"), withIntermediateDirectories: true)
        for name in ["neg", "pos"] {
            _ = try dir.write("classes/\(name).txt", (0..<20).map { "\(name) line \($0)" }.joined(separator: "\n") + "\n")
        }
        let recorder = Recorder()
        _ = try SequencePreparation.prepare(input: dir.file("classes"), splitting: .fractions([0.8, 0.1, 0.1], seed: 1),
                                            options: SequencePrepareOptions(level: .word), output: dir.file("s.h5"),
                                            progress: recorder.progress)
        recorder.expectComplete()
        #expect(recorder.reports.last!.total == 3)  // two class files, the write
    }
}
