// Bad checkpoints and failed saves: every rejection is ONE line naming the file and the dataset,
// attribute or field, with what was expected and what was found; a failed save leaves neither a
// new file nor a temporary file, and an older checkpoint under the same name stays intact.
import Foundation
import HDF5Shim
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

@Suite struct CheckpointValidationTests {
    typealias F = CheckpointFixtures

    // MARK: Not a checkpoint at all

    @Test func missingFileIsNamed() throws {
        let dir = try CheckpointScratch()
        let path = dir.file("nothing-here.h5")
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: ["no such"])
    }

    @Test func textFileIsNotHDF5() throws {
        let dir = try CheckpointScratch()
        let path = dir.file("notes.h5")
        try "step 3, loss 2.1\n".write(toFile: path, atomically: false, encoding: .utf8)
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: ["not an HDF5 file"])
    }

    @Test(arguments: [0.5, 0.9])
    func truncatedFileIsRejected(keptFraction: Double) throws {
        let dir = try CheckpointScratch("truncated\(keptFraction)")
        let (path, _) = try F.savedCheckpoint(in: dir)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(Int(Double(bytes.count) * keptFraction)).write(to: URL(fileURLWithPath: path))
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: ["truncated"])
    }

    @Test func emptyFileIsRejected() throws {
        let dir = try CheckpointScratch()
        let path = dir.file("empty.h5")
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        F.expectOneLine(F.message { try Checkpoint.verify(path) }, naming: path, in: dir, mentions: ["empty file"])
    }

    // MARK: Complete verification

    @Test func verifyAcceptsAGoodCheckpoint() throws {
        let dir = try CheckpointScratch()
        let (path, _) = try F.savedCheckpoint(in: dir)
        try Checkpoint.verify(path)
    }

    /// A chunk dropped from a dataset's chunk index: HDF5 would read it as zeros without an error;
    /// `load` and `verify` refuse the file, naming the dataset and the chunk counts.
    @Test(arguments: ["/params/rnn.weight_hh_l0", "/params/decoder.bias", "/optimizer/exp_avg/embedding.weight",
                      "/hidden/l1/c"])
    func missingChunkIsNamed(object: String) throws {
        let dir = try CheckpointScratch("missingChunk\(object)")
        let (path, _) = try F.savedCheckpoint(in: dir, cell: .lstm, optimizer: .adam)
        try F.dropLastChunkFromIndex(of: object, in: path)
        // The damage leaves the file openable and the dataset readable (as zeros) by HDF5 itself.
        let raw = try H5File.open(path)
        let id = H5Dopen2(raw.objectID, object, H5P_DEFAULT)
        #expect(id >= 0)
        if id >= 0 { H5Dclose(id) }
        let readers: [() throws -> Void] = [{ _ = try Checkpoint.load(path) }, { try Checkpoint.verify(path) }]
        for body in readers {
            F.expectOneLine(F.message(body), naming: path, in: dir, mentions: [object, "expected 1 chunk, found 0"])
        }
    }

    /// The four ways a checkpoint file is commonly broken, each refused by `verify` with one line.
    @Test func verifyRejectsTruncatedEmptyChecksumFailingAndChunkMissingFiles() throws {
        let dir = try CheckpointScratch()
        let (good, _) = try F.savedCheckpoint(in: dir)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        func copy(_ name: String) throws -> String {
            let path = dir.file(name)
            try bytes.write(to: URL(fileURLWithPath: path))
            return path
        }
        let truncated = dir.file("truncated.h5")
        try bytes.prefix(bytes.count * 2 / 3).write(to: URL(fileURLWithPath: truncated))
        let empty = dir.file("empty.h5")
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        let flipped = try copy("flipped.h5")
        let chunk = try F.firstChunk(of: "/params/rnn.weight_ih_l0", in: flipped)
        try F.flipByte(flipped, at: chunk.offset + chunk.size / 2)
        let holey = try copy("holey.h5")
        try F.dropLastChunkFromIndex(of: "/params/rnn.weight_ih_l0", in: holey)
        for (path, mention) in [(truncated, "truncated"), (empty, "empty file"), (flipped, "checksum"),
                                (holey, "expected 1 chunk, found 0")] {
            F.expectOneLine(F.message { try Checkpoint.verify(path) }, naming: path, in: dir, mentions: [mention])
        }
        try Checkpoint.verify(good)
    }

    // MARK: Format and version

    @Test func otherFormatNameIsRejected() throws {
        let dir = try CheckpointScratch()
        let (path, _) = try F.savedCheckpoint(in: dir)
        try F.edit(path) { try $0.setAttribute("format", string: "unroll.dataset") }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) },
                        naming: path, in: dir, mentions: ["format", "expected unroll.checkpoint", "found unroll.dataset"])
        // A dataset file (format unroll.dataset) handed to load is named the same way.
        let data = dir.file("arith.h5")
        F.expectOneLine(F.message { _ = try Checkpoint.load(data) }, naming: data, in: dir, mentions: ["format", "unroll.dataset"])
    }

    @Test func otherVersionIsRejected() throws {
        let dir = try CheckpointScratch()
        let (path, _) = try F.savedCheckpoint(in: dir)
        try F.edit(path) { try $0.setAttribute("version", Int64(3)) }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: ["version", "expected 1 or 2", "found 3"])
    }

    @Test(arguments: [("/", "format"), ("/", "version"), ("/", "config"), ("/", "world_size"), ("/", "data_file"),
                      ("/", "data_sha256"), ("/", "unroll_version"), ("/", "created"), ("/optimizer", "kind"),
                      ("/optimizer", "step"), ("/state", "progress"), ("/state", "step"), ("/state", "epoch")])
    func missingAttributeIsNamed(object: String, attribute: String) throws {
        let dir = try CheckpointScratch("missingAttribute\(object)\(attribute)")
        let (path, _) = try F.savedCheckpoint(in: dir)
        try F.edit(path) { try F.deleteAttribute($0, object: object, attribute) }
        let field = object == "/" ? "attribute \(attribute)" : "\(object) attribute \(attribute)"
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: [field, "missing"])
    }

    /// The progress is stored twice (JSON for restoring, plain attributes and the per-stream cursor
    /// for other readers); copies that disagree mean a damaged or hand-edited file.
    @Test func inconsistentProgressCopiesAreNamed() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir, steps: 3)
        try F.edit(path) { try $0.openGroup("state").setAttribute("step", Int64(99)) }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir,
                        mentions: ["/state attributes step", "expected 3", "found 99"])

        let (again, _) = try F.savedCheckpoint(in: dir, steps: 3)
        let B = t.config.batchSize
        try F.edit(again) {
            try F.replace($0, group: "/state", "stream_cursor", [Int64](repeating: 3, count: B - 1) + [7], shape: [B])
        }
        F.expectOneLine(F.message { _ = try Checkpoint.load(again) }, naming: again, in: dir,
                        mentions: ["/state/stream_cursor[\(B - 1)]", "expected 3", "found 7"])
    }

    @Test func optimizerKindDifferentFromTheConfigIsNamed() throws {
        let dir = try CheckpointScratch()
        let (path, _) = try F.savedCheckpoint(in: dir, optimizer: .adam)
        try F.edit(path) { try $0.openGroup("optimizer").setAttribute("kind", string: "sgd") }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir,
                        mentions: ["/optimizer attribute kind", "expected adam", "found sgd"])
    }

    @Test func unreadableConfigIsNamed() throws {
        let dir = try CheckpointScratch()
        let (path, _) = try F.savedCheckpoint(in: dir)
        try F.edit(path) { try $0.setAttribute("config", string: "{\"batchSize\": 4,\n \"bptt\": }") }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: ["config", "JSON"])
    }

    /// A saved checkpoint whose stored configuration was changed by `edit`; returns its path.
    private func checkpointWithEditedConfig(in dir: CheckpointScratch, _ edit: (inout TrainingConfig) -> Void) throws -> String {
        let (path, t) = try F.savedCheckpoint(in: dir)
        var config = t.config
        edit(&config)
        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        try F.edit(path) { try $0.setAttribute("config", string: json) }
        return path
    }

    @Test func impossibleModelInConfigIsNamed() throws {
        let dir = try CheckpointScratch()
        let path = try checkpointWithEditedConfig(in: dir) { $0.model.hiddenSize = 0 }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: ["config", "--hidden must be ≥ 1, got 0"])
    }

    /// A stored configuration whose model would need more memory than the machine has (layers 1e9)
    /// is refused before anything is allocated.
    @Test func hugeModelInConfigIsRefusedBeforeAllocating() throws {
        let dir = try CheckpointScratch()
        let path = try checkpointWithEditedConfig(in: dir) { $0.model.layers = 1_000_000_000 }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir,
                        mentions: ["config", "needs", "GB, this machine has"])
    }

    // MARK: Datasets

    @Test(arguments: ["/params", "/params/rnn.weight_hh_l1", "/params/decoder.bias", "/optimizer",
                      "/optimizer/exp_avg", "/optimizer/exp_avg_sq/embedding.weight", "/state", "/state/stream_cursor",
                      "/hidden", "/hidden/l1", "/hidden/l0/c", "/vocab"])
    func missingObjectIsNamed(object: String) throws {
        let dir = try CheckpointScratch("missing\(object)")
        let (path, _) = try F.savedCheckpoint(in: dir, cell: .lstm, optimizer: .adam)
        try F.edit(path) { try F.delete($0, object) }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: [object, "missing"])
    }

    @Test func wrongShapeIsNamedWithExpectedAndFound() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        let V = t.config.model.vocabSize, H = t.config.model.hiddenSize
        try F.edit(path) {
            try F.replace($0, group: "/params", "decoder.weight", [Float](repeating: 0.5, count: V * (H + 1)),
                          shape: [V, H + 1])
        }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) },
                        naming: path, in: dir, mentions: ["/params/decoder.weight", "expected shape [\(V), \(H)]", "found [\(V), \(H + 1)]"])
    }

    @Test func wrongHiddenShapeIsNamed() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        let B = t.config.batchSize, H = t.config.model.hiddenSize
        try F.edit(path) {
            try F.replace($0, group: "/hidden/l1", "h", [Float](repeating: 0, count: (B - 1) * H), shape: [B - 1, H])
        }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) },
                        naming: path, in: dir, mentions: ["/hidden/l1/h", "expected shape [\(B), \(H)]", "found [\(B - 1), \(H)]"])
    }

    @Test func wrongDtypeIsNamedWithExpectedAndFound() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        let V = t.config.model.vocabSize
        try F.edit(path) { try F.replace($0, group: "/params", "decoder.bias", [Double](repeating: 0, count: V), shape: [V]) }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) },
                        naming: path, in: dir, mentions: ["/params/decoder.bias", "expected float32", "found float64"])
    }

    @Test func wrongStreamCursorIsNamed() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        let B = t.config.batchSize
        try F.edit(path) { try F.replace($0, group: "/state", "stream_cursor", [Int32](repeating: 3, count: B), shape: [B]) }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) },
                        naming: path, in: dir, mentions: ["/state/stream_cursor", "expected int64", "found int32"])
    }

    @Test func vocabularyOfTheWrongSizeIsNamed() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        let V = t.config.model.vocabSize
        try F.edit(path) { f in
            try F.delete(f, "/vocab")
            try f.writeStrings("vocab", (0..<(V - 1)).map { "w\($0)" })
        }
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) },
                        naming: path, in: dir, mentions: ["/vocab", "expected \(V)", "found \(V - 1)"])
    }

    /// One flipped byte inside the first chunk of a dataset fails its Fletcher32 checksum.
    @Test(arguments: ["/params/rnn.weight_hh_l0", "/params/decoder.bias", "/optimizer/exp_avg_sq/embedding.weight",
                      "/hidden/l1/c"])
    func flippedByteFailsTheChecksum(object: String) throws {
        let dir = try CheckpointScratch("flipped\(object)")
        let (path, _) = try F.savedCheckpoint(in: dir, cell: .lstm, optimizer: .adam)
        let chunk = try F.firstChunk(of: object, in: path)
        #expect(chunk.size > 8)
        try F.flipByte(path, at: chunk.offset + chunk.size / 2)
        F.expectOneLine(F.message { _ = try Checkpoint.load(path) }, naming: path, in: dir, mentions: [object, "checksum"])
    }

    // MARK: Restoring into a run that does not fit

    @Test func checkpointOfAnotherCellKindIsRejected() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir, cell: .lstm)
        var config = t.config
        config.model.cell = .gru
        let gru = try F.trainer(config)
        let content = try Checkpoint.load(path)
        F.expectOneLine(F.message { try Checkpoint.restore(content, into: gru, file: path) },
                        naming: path, in: dir, mentions: ["cell", "expects gru", "has lstm"])
    }

    @Test func checkpointOfAnotherHiddenSizeIsRejected() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir, hidden: 7)
        var config = t.config
        config.model.hiddenSize = 9
        let other = try F.trainer(config)
        let content = try Checkpoint.load(path)
        F.expectOneLine(F.message { try Checkpoint.restore(content, into: other, file: path) },
                        naming: path, in: dir, mentions: ["hidden size", "expects 9", "has 7"])
    }

    @Test func checkpointOfAnotherBatchSizeIsRejected() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        var config = t.config
        config.batchSize = 2
        let other = try F.trainer(config)
        let content = try Checkpoint.load(path)
        F.expectOneLine(F.message { try Checkpoint.restore(content, into: other, file: path) },
                        naming: path, in: dir, mentions: ["batch size", "expects 2", "has 4"])
    }

    @Test func checkpointOfAnotherWindowLengthIsRejected() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        var config = t.config
        config.bptt = 5
        let other = try F.trainer(config)
        let content = try Checkpoint.load(path)
        F.expectOneLine(F.message { try Checkpoint.restore(content, into: other, file: path) }, naming: path, in: dir,
                        mentions: ["bptt", "expects windows of 5", "counts windows of 6"])
    }

    @Test func vocabularyDifferentFromTheDatasetIsRejected() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        // Same size, one entry different: the model would load but read the wrong characters.
        var vocab = try t.dataset.vocabulary()
        let V = vocab.count
        let original = vocab[5]
        vocab[5] = "§"
        let other = dir.file("other.h5")
        let tokens = (0..<3000).map { Int32($0 * 7 % V) }
        try TokenDatasetWriter.write(TokenDatasetContent(level: .char, vocabulary: vocab,
                                                         splits: ["train": tokens, "valid": Array(tokens.prefix(300)),
                                                                  "test": Array(tokens.prefix(300))],
                                                         sources: [:]), to: other)
        var config = t.config
        config.data = other
        let trainer = try F.trainer(config)
        let content = try Checkpoint.load(path)
        F.expectOneLine(F.message { try Checkpoint.restore(content, into: trainer, file: path) },
                        naming: path, in: dir, mentions: ["/vocab entry 5", "expected \"§\"", "/other.h5", "found \"\(original)\""])
    }

    // MARK: Failed saves

    @Test func unwritableDirectoryIsNamed() throws {
        let dir = try CheckpointScratch()
        let (_, t) = try F.savedCheckpoint(in: dir)
        // Root ignores permission bits, so use a path below a regular file.
        let plain = dir.file("plain")
        try "x".write(toFile: plain, atomically: false, encoding: .utf8)
        let path = plain + "/ck.h5"
        F.expectOneLine(F.message { try Checkpoint.save(t, to: path, dataSHA256: "") }, naming: path, in: dir, mentions: ["Not a directory"])
        #expect(try dir.contents() == ["arith.h5", "ck.h5", "plain"])
    }

    /// A full disk (simulated by AtomicFile's failure hook) at either stage of the write: one line
    /// "checkpoint PATH: no space left on device (wrote X of Y MB)", no new file and no temporary
    /// file exist, the older checkpoint under the same name is intact and still loads.
    @Test(arguments: [AtomicFile.Stage.contentWritten, .synced])
    func diskFullLeavesThePreviousCheckpointIntact(stage: AtomicFile.Stage) throws {
        let dir = try CheckpointScratch("diskFull\(stage)")
        let (path, t) = try F.savedCheckpoint(in: dir, steps: 2)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        _ = try t.step()
        let full = DataError.io(path: AtomicFile.temporaryPath(for: path), operation: "write",
                                reason: "No space left on device")
        let message = F.message {
            try Checkpoint.save(t, to: path, dataSHA256: "", failureHook: { s in if s == stage { throw full } })
        }
        #expect(message?.hasPrefix("checkpoint \(path): no space left on device (wrote ") == true, "\(message ?? "nil")")
        #expect(message?.hasSuffix(" MB)") == true && message?.contains("\n") == false, "\(message ?? "nil")")
        #expect(try dir.contents() == ["arith.h5", "ck.h5"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try Checkpoint.load(path).progress.step == 2)
        // The same trainer can still save once the disk has room again.
        try Checkpoint.save(t, to: path, dataSHA256: "")
        #expect(try Checkpoint.load(path).progress.step == 3)
    }
}
