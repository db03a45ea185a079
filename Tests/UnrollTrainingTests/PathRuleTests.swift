// Paths that are not what they should be: a `--checkpoint-dir` that is a file (or lies below one)
// gets one line naming the path in the way, not a Foundation error dump; and the data path stored
// in a checkpoint, when relative, is found from the current directory, the checkpoint's directory
// or a directory above it, with one line naming the places tried when it is nowhere.
import Foundation
import Testing
@testable import UnrollTraining

@Suite struct PathRuleTests {
    typealias F = CheckpointFixtures

    @Test func aCheckpointDirThatIsAFileIsOneLine() throws {
        let dir = try CheckpointScratch()
        let file = dir.file("plain")
        try "x".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(F.message { _ = try RunDirectoryLock(directory: file, runId: "r") }
                == "--checkpoint-dir \(file): not a directory (a regular file is there)")
        let below = file + "/sub/dir"
        #expect(F.message { _ = try RunDirectoryLock(directory: below, runId: "r") }
                == "--checkpoint-dir \(below): cannot create the directory: \(file): not a directory (a regular file is there)")
        #expect(F.message { _ = try RunDirectoryLock(directory: "/proc/unroll-test/c", runId: "r") }
                == "--checkpoint-dir /proc/unroll-test/c: cannot create the directory: /proc/unroll-test: No such file or directory")
        // Nested directories that do not exist yet are still created.
        let nested = dir.file("a/b/c")
        _ = try RunDirectoryLock(directory: nested, runId: "r")
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    @Test func aCheckpointDirThatCannotBeCreatedSaysWhy() throws {
        guard getuid() != 0 else { return }  // root may create anything: nothing to refuse
        let dir = try CheckpointScratch()
        let locked = dir.file("locked")
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false)
        chmod(locked, 0o500)
        defer { chmod(locked, 0o700) }
        let target = locked + "/c"
        #expect(F.message { _ = try RunDirectoryLock(directory: target, runId: "r") }
                == "--checkpoint-dir \(target): cannot create the directory: Permission denied")
    }

    @Test func aRelativeDataPathIsFoundFromTheCurrentDirectoryThenBesideAndAboveTheCheckpoint() throws {
        let cwd = FileManager.default.currentDirectoryPath
        func resolve(_ stored: String, _ checkpoint: String, _ present: Set<String>) throws -> String {
            try CheckpointDataPath.resolve(stored: stored, checkpoint: checkpoint, exists: { present.contains($0) })
        }
        #expect(try resolve("/abs/d.h5", "/p/runs/a/step.h5", []) == "/abs/d.h5")
        #expect(try resolve("data/d.h5", "/p/runs/a/step.h5", ["data/d.h5", "/p/data/d.h5"]) == "data/d.h5")
        #expect(try resolve("d.h5", "/p/runs/a/step.h5", ["/p/runs/a/d.h5", "/p/d.h5"]) == "/p/runs/a/d.h5")
        #expect(try resolve("data/d.h5", "/p/runs/a/step.h5", ["/p/data/d.h5"]) == "/p/data/d.h5")
        #expect(try resolve("d.h5", "runs/a/step.h5", ["\(cwd)/runs/d.h5"]) == "\(cwd)/runs/d.h5")
        let message = F.message { _ = try resolve("data/d.h5", "/p/runs/a/step.h5", []) }
        #expect(message == "/p/runs/a/step.h5: data file data/d.h5 (relative, as given to train) not found in the "
                + "current directory (\(cwd)/data/d.h5) nor in the checkpoint's directory or above "
                + "(/p/runs/a/data/d.h5, …); pass --data")
    }
}
