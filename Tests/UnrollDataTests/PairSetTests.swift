// Tests of layout `pairs` (PairSet, PairSetWriter): round trip, what the writer refuses, one-line
// refusals of damaged files written with raw HDF5 calls, `unroll inspect`'s description, and the
// h5py example in Sources/UnrollData/DatasetFormat.md (skipped with a reason without h5py).
import Foundation
import Testing
@testable import UnrollData

/// Writes a pair file with raw HDF5 calls, so tests can break any part of the layout.
struct RawPairFile {
    var kind = "pairs"
    var version: Int64 = 2
    var level = "char"
    var sourceVocab = PairSet.specials + ["a", "b"]
    var targetVocab = PairSet.specials + ["x"]
    var sourceVocabSize: Int64? = nil
    var source: [Int32] = [3, 4, 3]
    var sourceOffsets: [Int64] = [0, 2, 3]
    var target: [Int32] = [3, 3, 3]
    var targetOffsets: [Int64] = [0, 1, 3]
    /// Split whose `source` is written as float32.
    var floatSource = false
    var omit: String? = nil

    func write(_ path: String) throws {
        let file = try H5File.create(path)
        try file.setAttribute("format", string: DatasetFormat.name)
        try file.setAttribute("version", version)
        try file.setAttribute("kind", string: kind)
        try file.setAttribute("task", string: "raw")
        try file.setAttribute("level", string: level)
        try file.setAttribute("source_vocab_size", sourceVocabSize ?? Int64(sourceVocab.count))
        try file.setAttribute("target_vocab_size", Int64(targetVocab.count))
        try file.writeStrings("source_vocab", sourceVocab)
        try file.writeStrings("target_vocab", targetVocab)
        for name in DatasetFormat.splits {
            let group = try file.createGroup(name)
            if floatSource {
                try group.write("source", source.map { Float($0) })
            } else {
                try group.write("source", source, chunk: [4], fletcher32: true)
            }
            if omit != "source_offsets" { try group.write("source_offsets", sourceOffsets, chunk: [4], fletcher32: true) }
            try group.write("target", target, chunk: [4], fletcher32: true)
            try group.write("target_offsets", targetOffsets, chunk: [4], fletcher32: true)
        }
        try file.close()
    }
}

@Suite struct PairSetTests {
    static func content() -> PairSetContent {
        let train = PairSplit(pairs: [(source: [3, 4, 5], target: [3]), (source: [4], target: [4, 3, 4, 4])])
        let valid = PairSplit(pairs: [(source: [0, 3], target: [3, 0])])
        let test = PairSplit(pairs: [(source: [5, 5, 5, 5, 5], target: [4]), (source: [3], target: [3])])
        return PairSetContent(task: "toy", level: .word, sourceVocabulary: PairSet.specials + ["a", "b", "c"],
                              targetVocabulary: PairSet.specials + ["x", "y"],
                              splits: ["train": train, "valid": valid, "test": test],
                              extraAttributes: ["generator": .string("hand")])
    }

    @Test func roundTripKeepsEveryPairVocabularyAndAttribute() throws {
        let dir = try TempDir()
        let content = Self.content()
        try PairSetWriter.write(content, to: dir.file("p.h5"))
        let set = try PairSet.open(path: dir.file("p.h5"))
        #expect(set.task == "toy" && set.level == .word && set.version == DatasetFormat.pairsVersion)
        #expect(set.sourceVocabulary == content.sourceVocabulary && set.targetVocabulary == content.targetVocabulary)
        #expect(set.counts == ["train": 2, "valid": 1, "test": 2])
        #expect(set.longestSource == 5 && set.longestTarget == 4)
        for name in DatasetFormat.splits {
            #expect(try set.split(name) == content.splits[name]!)
        }
        let train = try set.split("train")
        #expect(Array(train.source(0)) == [3, 4, 5] && Array(train.target(1)) == [4, 3, 4, 4])
        #expect(Array(train.source(1)) == [4] && Array(train.target(0)) == [3])
        #expect(set.attributes().contains { $0 == ("generator", "\"hand\"") })
        #expect(try datasetKind(dir.file("p.h5")) == "pairs")
        // Equal content, equal bytes.
        try PairSetWriter.write(content, to: dir.file("q.h5"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("p.h5")))
                == Data(contentsOf: URL(fileURLWithPath: dir.file("q.h5"))))
        let message = dataErrorMessage { _ = try set.split("dev") }?.1
        #expect(message == "split: expected train, valid, test, found \"dev\"")
    }

    @Test func inspectDescribesAPairFile() throws {
        let dir = try TempDir()
        try PairSetWriter.write(Self.content(), to: dir.file("p.h5"))
        #expect(try DatasetInspector.kind(of: dir.file("p.h5")) == "pairs")
        let text = try DatasetInspector.describe(dir.file("p.h5"))
        #expect(text.contains("pairs 'toy'") && text.contains("level word"))
        #expect(text.contains("/source_vocab: 6 entries: \"<unk>\" \"<bos>\" \"<eos>\" \"a\""))
        #expect(text.contains("/test: 2 pairs, source 6 tokens (lengths 1...5), target 2 tokens (lengths 1...1)"))
        #expect(text.contains("longest source 5, longest target 4"))
    }

    @Test func writerRefusesInconsistentContentInOneLine() throws {
        let dir = try TempDir()
        var cases: [(PairSetContent, String)] = []
        var c = Self.content()
        c.sourceVocabulary = ["<bos>", "<unk>", "<eos>", "a", "b", "c"]
        cases.append((c, "source vocabulary[0]: expected \"<unk>\" (ids 0, 1, 2 are <unk>, <bos>, <eos>), found \"<bos>\""))
        c = Self.content()
        c.targetVocabulary = PairSet.specials + ["x", "x"]
        cases.append((c, "target vocabulary[4]: expected distinct entries, found \"x\" again (first at 3)"))
        c = Self.content()
        c.splits["valid"] = PairSplit(sourceTokens: [3], sourceOffsets: [0, 1], targetTokens: [], targetOffsets: [0, 0])
        cases.append((c, "split valid target_offsets[1]: expected increasing offsets (no empty target), found 0 after 0"))
        c = Self.content()
        c.splits["test"] = PairSplit(pairs: [(source: [6], target: [3])])
        cases.append((c, "split test source[0]: expected token id < source_vocab_size 6, found 6"))
        c = Self.content()
        c.splits["train"] = nil
        cases.append((c, "split train: expected present, found missing"))
        for (content, expected) in cases {
            let message = dataErrorMessage { try PairSetWriter.write(content, to: dir.file("bad.h5")) }?.1
            #expect(message == expected)
        }
        #expect(try dir.contents().isEmpty)
    }

    @Test func readerRefusesDamagedFilesInOneLine() throws {
        let dir = try TempDir()
        var cases: [(RawPairFile, String)] = []
        var raw = RawPairFile()
        raw.source = [3, 4]
        raw.sourceOffsets = [0, 2, 2]
        cases.append((raw, "/train/source_offsets[2]: expected increasing offsets (no empty source), found 2 after 2"))
        raw = RawPairFile()
        raw.targetOffsets = [0, 1, 4]
        cases.append((raw, "/train/target_offsets: expected offsets from 0 to 3 (tokens in target), found first 0, last 4"))
        raw = RawPairFile()
        raw.target = [3, 9, 3]
        cases.append((raw, "/train/target[1]: expected token id < target_vocab_size 4, found 9"))
        raw = RawPairFile()
        raw.source = [3, -1, 3]
        cases.append((raw, "/train/source[1]: expected token id < source_vocab_size 5, found -1"))
        raw = RawPairFile()
        raw.targetOffsets = [0, 3]
        cases.append((raw, "/train/target_offsets: expected 3 offsets (as source_offsets), found 2"))
        raw = RawPairFile()
        raw.sourceVocab = ["<unk>", "<eos>", "<bos>", "a", "b"]
        cases.append((raw, "/source_vocab[1]: expected \"<bos>\" (ids 0, 1, 2 are <unk>, <bos>, <eos>), found \"<eos>\""))
        raw = RawPairFile()
        raw.sourceVocabSize = 7
        cases.append((raw, "/source_vocab: expected 7 strings (source_vocab_size), found string shape [5]"))
        raw = RawPairFile()
        raw.floatSource = true
        cases.append((raw, "/train/source: expected int32 token ids (tokens), found float32 shape [3]"))
        raw = RawPairFile()
        raw.omit = "source_offsets"
        cases.append((raw, "/train/source_offsets: expected a dataset, found missing"))
        raw = RawPairFile()
        raw.level = "phoneme"
        cases.append((raw, "attribute 'level': expected char, byte or word, found \"phoneme\""))
        raw = RawPairFile()
        raw.kind = "sequences"
        cases.append((raw, "attribute 'kind': expected \"pairs\", found \"sequences\""))
        raw = RawPairFile()
        raw.version = 1
        cases.append((raw, "attribute 'version': expected 2, found 1"))
        for (i, (raw, expected)) in cases.enumerated() {
            let path = dir.file("bad\(i).h5")
            try raw.write(path)
            let message = dataErrorMessage { _ = try PairSet(path: path) }?.1
            #expect(message == "\(path): \(expected)")
        }
        // The unbroken file opens.
        try RawPairFile().write(dir.file("good.h5"))
        #expect(try PairSet(path: dir.file("good.h5")).counts["valid"] == 2)
    }

    @Test func readmeH5pyExampleWritesAValidFile() throws {
        let probe = pythonImports("h5py")
        guard probe.ok else {
            print("SKIPPED readmeH5pyExampleWritesAValidFile: \(probe.reason) (pip install h5py)")
            return
        }
        let readme = try String(contentsOfFile: packageRoot + "/Sources/UnrollData/DatasetFormat.md", encoding: .utf8)
        let section = try #require(readme.range(of: "### Writing pairs with h5py"))
        let start = try #require(readme.range(of: "```python\n", range: section.upperBound..<readme.endIndex))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let script = String(readme[start.upperBound..<end.lowerBound])
        let dir = try TempDir()
        let (status, output) = try runProcess(["python3", "-c", script], in: dir.path)
        #expect(status == 0, "\(output)")
        let set = try PairSet(path: dir.file("pairs.h5"))
        #expect(set.task == "reverse" && set.level == .char && set.counts == ["train": 20, "valid": 5, "test": 5])
        let train = try set.split("train")
        for i in 0..<train.count { #expect(Array(train.target(i)) == train.source(i).reversed()) }
    }
}
