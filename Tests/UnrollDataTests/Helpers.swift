// Test helpers for UnrollData: unique temporary directories (tests run in parallel), small text
// files, hand-made dataset files for the bad-input cases, and the package root via #filePath.
import Foundation
import Testing
@testable import UnrollData

/// A fresh directory under /tmp, removed when the value is released.
final class TempDir {
    let path: String

    init(_ label: String = #function) throws {
        let name = label.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "unroll-data-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }  // best-effort cleanup of test scratch

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: file(name), atomically: false, encoding: .utf8)
        return file(name)
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    /// Entries in the directory (to check that nothing, not even a temp file, was left).
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

/// The package root (…/Tests/UnrollDataTests/Helpers.swift → …).
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The message of the `DataError` thrown by `body`, or nil if it did not throw one.
func dataErrorMessage(_ body: () throws -> Void) -> (DataError, String)? {
    do {
        try body()
        return nil
    } catch let error as DataError {
        return (error, error.description)
    } catch {
        return nil
    }
}

/// Writes a token dataset with raw HDF5 calls, so tests can break any part of the format.
struct RawTokenFile {
    var format = DatasetFormat.name
    var version: Int64 = 1
    var kind = "tokens"
    var level = "word"
    var vocab = ["a", "b", "c", "d"]
    var vocabSize: Int64? = nil
    var splits: [String: [Int32]] = ["train": [0, 1, 2, 3, 0, 1, 2, 3], "valid": [0, 1, 2], "test": [3, 2, 1]]
    var uint8 = true
    var floatSplit: String? = nil

    func write(_ path: String) throws {
        let file = try H5File.create(path)
        try file.setAttribute("format", string: format)
        try file.setAttribute("version", version)
        try file.setAttribute("kind", string: kind)
        try file.setAttribute("level", string: level)
        try file.setAttribute("vocab_size", vocabSize ?? Int64(vocab.count))
        try file.writeStrings("vocab", vocab)
        for (name, tokens) in splits.sorted(by: { $0.key < $1.key }) {
            if name == floatSplit {
                try file.write(name, tokens.map { Float($0) })
            } else if uint8 {
                try file.write(name, tokens.map { UInt8(truncatingIfNeeded: $0) }, chunk: [4], fletcher32: true)
            } else {
                try file.write(name, tokens, chunk: [4], fletcher32: true)
            }
        }
        try file.close()
    }
}

/// Writes a valid token dataset whose splits are the given token ids, vocabulary size `v`.
func writeTokenDataset(_ path: String, train: [Int32], valid: [Int32] = [0, 1], test: [Int32] = [1, 0],
                       vocabSize v: Int) throws {
    let content = TokenDatasetContent(level: .word, vocabulary: (0..<v).map { "w\($0)" },
                                      splits: ["train": train, "valid": valid, "test": test],
                                      sources: [:])
    try TokenDatasetWriter.write(content, to: path)
}
