// Helpers for the checkpoint tests: a scratch directory per test, a small synthetic arith dataset,
// a small trainer on it, in-place surgery on a saved checkpoint (delete or replace one object,
// rewrite an attribute, flip one byte inside a dataset's chunk, located with H5Dget_chunk_info),
// and capture of a thrown error's message. Names carry a `Checkpoint`/`ckpt` prefix because other
// test files of this target are written concurrently.
import Foundation
import HDF5Shim
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

/// A fresh directory under /tmp, removed when the value is released.
final class CheckpointScratch {
    let path: String

    init(_ label: String = #function) throws {
        let name = label.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "unroll-ckpt-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }  // best-effort cleanup of test scratch

    func file(_ name: String) -> String { path + "/" + name }

    /// Entries of the directory, sorted (to check that no temporary file was left).
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

enum CheckpointFixtures {
    /// The package root (…/Tests/UnrollTrainingTests/this file → …).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Writes a small synthetic arith dataset (char level) and returns its vocabulary size.
    @discardableResult
    static func makeArith(_ path: String, seed: UInt64 = 7) throws -> Int {
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .arith, seed: seed, sizes: [3000, 500, 500]),
                                             output: path)
        return try TokenDataset(path: path).vocabSize
    }

    /// A small configuration on `data`: 2 layers, dropout (so the step-dependent masks matter),
    /// batch 4, window 6.
    static func config(data: String, vocab: Int, cell: CellKind = .lstm, hidden: Int = 7,
                       optimizer: OptimizerKind = .adam) -> TrainingConfig {
        var c = TrainingConfig(data: data, model: ModelConfig(cell: cell, vocabSize: vocab, embeddingSize: 5,
                                                              hiddenSize: hidden, layers: 2, dropout: 0.25))
        c.batchSize = 4
        c.bptt = 6
        c.evalStreams = 2
        c.optimizer = OptimizerConfig(kind: optimizer)
        c.learningRate = optimizer == .sgd ? 0.5 : 0.01
        c.schedule = .plateau(factor: 0.5, patience: 1, threshold: 0.01)
        c.seed = 11
        return c
    }

    static func trainer(_ config: TrainingConfig, steps: Int = 0) throws -> Trainer {
        let t = try Trainer(config: config, communicator: SingleProcessCommunicator())
        for _ in 0..<steps { _ = try t.step() }
        return t
    }

    /// A dataset and a trainer that has taken `steps` steps, saved to `<dir>/ck.h5`.
    static func savedCheckpoint(in dir: CheckpointScratch, cell: CellKind = .lstm, hidden: Int = 7,
                                optimizer: OptimizerKind = .adam, steps: Int = 3) throws -> (path: String, trainer: Trainer) {
        let data = dir.file("arith.h5")
        let vocab = try makeArith(data)
        let t = try trainer(config(data: data, vocab: vocab, cell: cell, hidden: hidden, optimizer: optimizer),
                            steps: steps)
        let path = dir.file("ck.h5")
        try Checkpoint.save(t, to: path, dataSHA256: try fileSHA256(data))
        return (path, t)
    }

    /// The description of the error `body` throws, or nil if it does not throw.
    static func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return String(describing: error)
        }
    }

    /// Records an issue unless `message` is one line that names `file` and contains every string of
    /// `mentions` outside the scratch directory's path (which must not satisfy a mention by chance).
    static func expectOneLine(_ message: String?, naming file: String, in dir: CheckpointScratch, mentions: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) {
        guard let message else {
            Issue.record("expected an error, nothing was thrown", sourceLocation: sourceLocation)
            return
        }
        #expect(!message.contains("\n"), "not one line: \(message)", sourceLocation: sourceLocation)
        #expect(message.hasPrefix(file + ":") || message.contains(file), "does not name \(file): \(message)",
                sourceLocation: sourceLocation)
        let rest = message.replacingOccurrences(of: dir.path, with: "")
        for m in mentions {
            #expect(rest.contains(m), "message does not mention \"\(m)\": \(message)", sourceLocation: sourceLocation)
        }
    }

    // MARK: Surgery on a saved file

    /// Opens `path` read-write and runs `body` on it (the file is closed afterwards).
    static func edit(_ path: String, _ body: (H5File) throws -> Void) throws {
        let file = try H5File.open(path, mode: .readWrite)
        try body(file)
        try file.close()
    }

    /// Deletes the link `object` (absolute path, e.g. "/params/decoder.bias").
    static func delete(_ file: H5File, _ object: String) throws {
        let status = H5Ldelete(file.objectID, object, H5P_DEFAULT)
        if status < 0 { throw TrainingError.checkpoint("test helper: H5Ldelete \(object) failed in \(file.path)") }
    }

    /// Deletes attribute `name` of the object at `object` ("/" for the root).
    static func deleteAttribute(_ file: H5File, object: String, _ name: String) throws {
        if H5Adelete_by_name(file.objectID, object, name, H5P_DEFAULT) < 0 {
            throw TrainingError.checkpoint("test helper: H5Adelete_by_name \(object)@\(name) failed in \(file.path)")
        }
    }

    /// Replaces dataset `name` in group `group` by `values` stored with `shape`.
    static func replace<T: H5Scalar>(_ file: H5File, group: String, _ name: String, _ values: [T], shape: [Int]) throws {
        try delete(file, group + "/" + name)
        try file.openGroup(group).write(name, values, shape: shape)
    }

    /// File offset and size of the first chunk of a chunked dataset.
    static func firstChunk(of object: String, in path: String) throws -> (offset: Int, size: Int) {
        let file = try H5File.open(path)
        let d = try file.openDataset(object)
        let space = H5Dget_space(d.objectID)
        defer { H5Sclose(space) }
        var offsets = [hsize_t](repeating: 0, count: d.shape.count)
        var mask: UInt32 = 0, address: haddr_t = 0, size: hsize_t = 0
        guard H5Dget_chunk_info(d.objectID, space, 0, &offsets, &mask, &address, &size) >= 0 else {
            throw TrainingError.checkpoint("test helper: H5Dget_chunk_info \(object) failed in \(path)")
        }
        return (Int(address), Int(size))
    }

    /// Removes the last chunk of `object` from its chunk index the way an interrupted write or a
    /// stray write to an index without checksums would, leaving the file openable: the dataset
    /// is rewritten with every chunk but the last, each stored as it was. (In the checksummed
    /// format an in-place edit of the index is caught by its checksum instead.) HDF5 then reads
    /// that chunk as zeros without any error.
    static func dropLastChunkFromIndex(of object: String, in path: String) throws {
        do {
            let file = try H5File.open(path, mode: .readWrite)
            let d = try file.openDataset(object)
            let space = H5Dget_space(d.objectID), type = H5Dget_type(d.objectID), dcpl = H5Dget_create_plist(d.objectID)
            defer { H5Sclose(space); H5Tclose(type); H5Pclose(dcpl) }
            var n: hsize_t = 0
            _ = H5Dget_num_chunks(d.objectID, space, &n)
            // Every chunk but the last: grid offset, filter mask and stored bytes as they are.
            var chunks: [(offset: [hsize_t], mask: UInt32, bytes: [UInt8])] = []
            for i in 0..<(Int(n) - 1) {
                var offset = [hsize_t](repeating: 0, count: d.shape.count)
                var mask: UInt32 = 0, address: haddr_t = 0, size: hsize_t = 0
                guard H5Dget_chunk_info(d.objectID, space, hsize_t(i), &offset, &mask, &address, &size) >= 0 else {
                    throw TrainingError.checkpoint("test helper: \(object) in \(path): H5Dget_chunk_info")
                }
                var bytes = [UInt8](repeating: 0, count: Int(size))
                guard H5Dread_chunk(d.objectID, H5P_DEFAULT, offset, &mask, &bytes) >= 0 else { throw TrainingError.checkpoint("test helper: \(object) in \(path): H5Dread_chunk") }
                chunks.append((offset, mask, bytes))
            }
            let parent = String(object.split(separator: "/").dropLast().joined(separator: "/"))
            let leaf = String(object.split(separator: "/").last ?? "")
            let location = parent.isEmpty ? file.objectID : H5Gopen2(file.objectID, "/" + parent, H5P_DEFAULT)
            defer { if location != file.objectID { H5Gclose(location) } }
            guard H5Ldelete(location, leaf, H5P_DEFAULT) >= 0 else { throw TrainingError.checkpoint("test helper: \(object) in \(path): H5Ldelete") }
            let copy = H5Dcreate2(location, leaf, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)
            guard copy >= 0 else { throw TrainingError.checkpoint("test helper: \(object) in \(path): H5Dcreate2") }
            defer { H5Dclose(copy) }
            for chunk in chunks {
                guard H5Dwrite_chunk(copy, H5P_DEFAULT, chunk.mask, chunk.offset, chunk.bytes.count, chunk.bytes) >= 0 else {
                    throw TrainingError.checkpoint("test helper: \(object) in \(path): H5Dwrite_chunk")
                }
            }
            withExtendedLifetime((file, d)) {}
        }
    }

    /// Inverts every bit of the byte at `offset`.
    static func flipByte(_ path: String, at offset: Int) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64(offset))
        guard let byte = try handle.read(upToCount: 1)?.first else {
            throw TrainingError.checkpoint("test helper: \(path) has no byte at \(offset)")
        }
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data([~byte]))
        try handle.close()
    }

    // MARK: Reading a trainer's state

    /// Every parameter view's values by name.
    static func parameters(_ t: Trainer) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for v in t.model.arena.layout.views {
            out[v.name] = Array(UnsafeBufferPointer(start: t.model.arena.parameters(v), count: v.count))
        }
        return out
    }

    /// The whole parameter arena (padding included) as bit patterns.
    static func arenaBits(_ t: Trainer) -> [UInt32] {
        t.model.arena.parameters.array.map(\.bitPattern)
    }

    /// Every optimizer slot as bit patterns, padding included.
    static func slotBits(_ t: Trainer) -> [String: [UInt32]] {
        t.optimizer.slots.mapValues { $0.array.map(\.bitPattern) }
    }

    /// The carried state (h, and c for LSTM) as bit patterns.
    static func hiddenBits(_ t: Trainer) -> (h: [UInt32], c: [UInt32]?) {
        (t.state.h.array.map(\.bitPattern), t.state.c?.array.map(\.bitPattern))
    }
}

/// The language model's parts of the trainers these tests build (every one trains a language model).
extension Trainer {
    var languageModel: LanguageModelTask { task as! LanguageModelTask }
    var model: RecurrentLanguageModel { languageModel.model }
    var state: RecurrentState { languageModel.state }
    var reader: TrainStreamReader { languageModel.reader }
    var dataset: TokenDataset { languageModel.dataset }
}
