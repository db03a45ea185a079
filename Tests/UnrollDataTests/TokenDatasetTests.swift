// Tests of the token dataset format: writer/reader round trip, dtype choice, and validation on
// open — each bad file gives one-line error naming the file and the field.
import Foundation
import Testing
@testable import UnrollData

@Suite struct TokenDatasetTests {
    @Test func roundTripWithInt32TokensWhenVocabularyExceeds256() throws {
        let dir = try TempDir()
        let path = dir.file("big.h5")
        let v = 300
        let train = (0..<5000).map { Int32($0 % v) }
        try writeTokenDataset(path, train: train, valid: [299, 0], test: [5], vocabSize: v)
        let data = try TokenDataset(path: path)
        #expect(data.vocabSize == v)
        #expect(data.tokenCounts == ["train": 5000, "valid": 2, "test": 1])
        let split = try data.split("train")
        #expect(split.dataset.elementType == .int32)
        #expect(try split.read(0..<5000) == train)
        #expect(try split.read(4990..<5000) == Array(train[4990...]))
        #expect(try data.split("valid").read(0..<2) == [299, 0])
        #expect(try split.countTokens().reduce(0, +) == 5000)
        #expect(try split.dataset.storage().chunk == [5000])   // chunk clamped to the extent
    }

    @Test func writerRejectsIdsOutsideTheVocabulary() throws {
        let dir = try TempDir()
        let failure = dataErrorMessage { try writeTokenDataset(dir.file("x.h5"), train: [0, 5], vocabSize: 5) }
        #expect(failure?.1 == "split train[1]: expected token id < vocab size 5, found 5")
        #expect(try dir.contents() == [])
    }

    private func expectOpenFailure(_ path: String, mentions: [String],
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        let failure = dataErrorMessage { _ = try TokenDataset(path: path) }
        #expect(failure != nil, "expected a DataError", sourceLocation: sourceLocation)
        for word in [path] + mentions {
            #expect(failure?.1.contains(word) == true, "\(failure?.1 ?? "nil") should mention \(word)",
                    sourceLocation: sourceLocation)
        }
        #expect(failure?.1.contains("\n") == false, sourceLocation: sourceLocation)
    }

    @Test func missingFile() throws {
        let dir = try TempDir()
        expectOpenFailure(dir.file("absent.h5"), mentions: ["No such file"])
    }

    @Test func notHDF5() throws {
        let dir = try TempDir()
        var rng = Xoshiro256(seed: 3)
        let path = try dir.write("random.h5", bytes: (0..<8192).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        expectOpenFailure(path, mentions: ["expected an HDF5 file"])
    }

    @Test func truncatedFile() throws {
        let dir = try TempDir()
        let path = dir.file("trunc.h5")
        try writeTokenDataset(path, train: (0..<20000).map { Int32($0 % 7) }, vocabSize: 7)
        #expect(truncate(path, 2048) == 0)
        expectOpenFailure(path, mentions: ["truncated"])
    }

    @Test func wrongFormatName() throws {
        let dir = try TempDir()
        let path = dir.file("f.h5")
        var raw = RawTokenFile()
        raw.format = "something.else"
        try raw.write(path)
        expectOpenFailure(path, mentions: ["format", "\"unroll.dataset\"", "\"something.else\""])
    }

    @Test func wrongVersion() throws {
        let dir = try TempDir()
        let path = dir.file("v.h5")
        var raw = RawTokenFile()
        raw.version = 3
        try raw.write(path)
        expectOpenFailure(path, mentions: ["version", "expected 1 to 2", "found 3"])
    }

    @Test func wrongKind() throws {
        let dir = try TempDir()
        let path = dir.file("k.h5")
        var raw = RawTokenFile()
        raw.kind = "sequences"
        try raw.write(path)
        expectOpenFailure(path, mentions: ["kind", "\"tokens\""])
    }

    @Test func missingSplit() throws {
        let dir = try TempDir()
        let path = dir.file("m.h5")
        var raw = RawTokenFile()
        raw.splits["valid"] = nil
        try raw.write(path)
        expectOpenFailure(path, mentions: ["/valid", "missing"])
    }

    @Test func emptySplit() throws {
        let dir = try TempDir()
        let path = dir.file("e.h5")
        var raw = RawTokenFile()
        raw.splits["test"] = []
        try raw.write(path)
        expectOpenFailure(path, mentions: ["/test", "at least 1 token", "found 0"])
    }

    @Test func wrongDtype() throws {
        let dir = try TempDir()
        let path = dir.file("d.h5")
        var raw = RawTokenFile()
        raw.floatSplit = "train"
        try raw.write(path)
        expectOpenFailure(path, mentions: ["/train", "uint8 or int32", "float32"])
    }

    @Test func vocabularySizeMismatch() throws {
        let dir = try TempDir()
        let path = dir.file("vs.h5")
        var raw = RawTokenFile()
        raw.vocabSize = 9
        try raw.write(path)
        expectOpenFailure(path, mentions: ["/vocab", "9 strings"])
    }

    @Test func tokenIdNotBelowVocabularySizeIsReportedWhenRead() throws {
        let dir = try TempDir()
        let path = dir.file("id.h5")
        var raw = RawTokenFile()
        raw.splits["train"] = [0, 1, 2, 3, 0, 9, 2, 3]
        try raw.write(path)
        let data = try TokenDataset(path: path)
        let failure = dataErrorMessage { _ = try data.split("train").read(0..<8) }
        #expect(failure?.1 == "\(path): /train[5]: expected token id < vocab_size 4, found 9")
        // Strided reads report the position in the split too.
        let strided = dataErrorMessage { _ = try data.split("train").readStrided(start: 1, stride: 4, count: 2, block: 2) }
        #expect(strided?.1.contains("/train[5]") == true)
        #expect(try data.split("train").read(0..<5) == [0, 1, 2, 3, 0])
    }
}
