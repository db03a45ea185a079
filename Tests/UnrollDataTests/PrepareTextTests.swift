// Tests of `prepare text`: char/byte/word tokenization, vocabulary order, unknown tokens,
// --max-vocab, --split, PTB counts, and the bad-input cases (each a one-line error, nothing written).
import Foundation
import Testing
@testable import UnrollData

@Suite struct PrepareTextTests {
    @Test func wordLevelFollowsPTBConventionsAndOrdersVocabularyByFrequencyThenFirstOccurrence() throws {
        let dir = try TempDir()
        let train = try dir.write("train.txt", " the cat <unk> sat\n the dog sat \n\n dog\tthe")
        let valid = try dir.write("valid.txt", "the bird sat\n")
        let test = try dir.write("test.txt", "cat\n")
        let out = dir.file("w.h5")
        let summary = try TextPreparation.prepare(.files(train: train, valid: valid, test: test),
                                                  options: TextPrepareOptions(level: .word), output: out)
        // Lines: "the cat <unk> sat", "the dog sat", "", "dog the" (no final newline still ends with <eos>).
        // Counts: the 3, <eos> 4, sat 2, dog 2, cat 1, <unk> 1 → ties by first occurrence.
        let data = try TokenDataset(path: out)
        let vocab = try data.vocabulary()
        #expect(vocab == ["<eos>", "the", "sat", "dog", "cat", "<unk>"])
        #expect(data.level == .word)
        #expect(data.vocabSize == 6)
        #expect(data.eos == "<eos>")
        #expect(data.unk == "<unk>")
        let ids = { (words: [String]) in words.map { Int32(vocab.firstIndex(of: $0)!) } }
        #expect(try data.split("train").read(0..<13) ==
                ids(["the", "cat", "<unk>", "sat", "<eos>", "the", "dog", "sat", "<eos>", "<eos>", "dog", "the", "<eos>"]))
        #expect(data.tokenCounts["train"] == 13)
        #expect(try data.split("valid").read(0..<4) == ids(["the", "<unk>", "sat", "<eos>"]))
        #expect(try data.split("test").read(0..<2) == ids(["cat", "<eos>"]))
        #expect(summary.unknown["valid"] == 1)
        #expect(summary.topTokens.first == PrepareSummary.TokenCount(token: "<eos>", count: 4))
        #expect(summary.description.contains("valid: 4 tokens (1 mapped to unknown)"))
        // Recorded sources.
        let file = try H5File.open(out)
        #expect(try file.stringAttribute("train_source") == "train.txt")
        #expect(try file.stringAttribute("train_sha256") == SHA256Hex.hash(Array(try Data(contentsOf: URL(fileURLWithPath: train)))))
        #expect(try file.openDataset("train").elementType == .uint8)
        #expect(try file.openDataset("train").storage().fletcher32)
    }

    @Test func charLevelUsesUnicodeScalars() throws {
        let dir = try TempDir()
        let text = "héllo wörld\ne\u{301}\n"   // "e" + combining acute: two scalars
        let train = try dir.write("t.txt", text)
        let other = try dir.write("v.txt", "hello")
        let out = dir.file("c.h5")
        _ = try TextPreparation.prepare(.files(train: train, valid: other, test: other),
                                        options: TextPrepareOptions(level: .char), output: out)
        let data = try TokenDataset(path: out)
        let vocab = try data.vocabulary()
        #expect(data.tokenCounts["train"] == text.unicodeScalars.count)
        let decoded = try data.split("train").read(0..<text.unicodeScalars.count).map { vocab[Int($0)] }.joined()
        #expect(decoded == text)
        #expect(vocab.contains("\u{301}"))
        #expect(vocab.first == "l")   // l ×3, o ×2 ... most frequent first
        #expect(data.eos == nil)
    }

    @Test func byteLevelHasAFixedVocabularyOf256() throws {
        let dir = try TempDir()
        let bytes: [UInt8] = [0x00, 0xFF, 0x41, 0x0A, 0xC3, 0xA9]   // not valid UTF-8 on purpose
        let train = try dir.write("b.bin", bytes: bytes)
        let out = dir.file("b.h5")
        _ = try TextPreparation.prepare(.files(train: train, valid: train, test: train),
                                        options: TextPrepareOptions(level: .byte), output: out)
        let data = try TokenDataset(path: out)
        #expect(data.vocabSize == 256)
        #expect(try data.split("train").read(0..<6) == bytes.map { Int32($0) })
        let vocab = try data.vocabulary()
        #expect(vocab[0x41] == "A")
        #expect(vocab[0x0A] == "<0x0A>")
        #expect(vocab[0xFF] == "<0xFF>")
        #expect(Set(vocab).count == 256)
    }

    @Test func maxVocabKeepsTheMostFrequentAndReservesUnk() throws {
        let dir = try TempDir()
        let train = try dir.write("t.txt", "a a a b b c d\n")
        let valid = try dir.write("v.txt", "zzz a\n")
        let out = dir.file("m.h5")
        let summary = try TextPreparation.prepare(.files(train: train, valid: valid, test: valid),
                                                  options: TextPrepareOptions(level: .word, maxVocab: 3), output: out)
        let data = try TokenDataset(path: out)
        #expect(try data.vocabulary() == ["a", "b", "<unk>"])   // <eos> (1) loses to b (2); unk added last
        #expect(summary.unknown["train"] == 3)   // c, d, <eos>
        #expect(try data.split("valid").read(0..<3) == [2, 0, 2])
    }

    @Test func splitModeCutsTheTokenStreamByFractionsAndBuildsVocabularyFromTrainOnly() throws {
        let dir = try TempDir()
        let text = String(repeating: "ab", count: 45) + "abcdefghij"   // 100 chars; c…j only after 90%
        let input = try dir.write("all.txt", text)
        let out = dir.file("s.h5")
        let summary = try TextPreparation.prepare(.split(input: input, fractions: [0.9, 0.05, 0.05]),
                                                  options: TextPrepareOptions(level: .char, maxVocab: 10), output: out)
        #expect(summary.tokens == ["train": 90, "valid": 5, "test": 5])
        let data = try TokenDataset(path: out)
        #expect(try data.vocabulary() == ["a", "b", "<unk>"])
        #expect(try data.split("valid").read(0..<5) == [0, 1, 2, 2, 2])
        #expect(try H5File.open(out).stringAttribute("split_fractions") == "0.9,0.05,0.05")
    }

    @Test func ptbRecipeCountsMatchTheStandardSplits() throws {
        let ptb = packageRoot + "/../shared/data/ptb"
        guard FileManager.default.fileExists(atPath: ptb + "/ptb.train.txt") else {
            print("skipping PTB test: \(ptb) not found")
            return
        }
        let dir = try TempDir()
        let out = dir.file("ptb.h5")
        let summary = try TextPreparation.prepare(
            .files(train: ptb + "/ptb.train.txt", valid: ptb + "/ptb.valid.txt", test: ptb + "/ptb.test.txt"),
            options: TextPrepareOptions(level: .word), output: out)
        #expect(summary.vocabSize == 10000)
        #expect(summary.tokens == ["train": 929_589, "valid": 73_760, "test": 82_430])
        #expect(summary.unknown == ["train": 0, "valid": 0, "test": 0])
        let data = try TokenDataset(path: out)
        #expect(data.tokenCounts == ["train": 929_589, "valid": 73_760, "test": 82_430])
        #expect(try data.vocabulary().prefix(3) == ["the", "<unk>", "<eos>"])
    }

    // MARK: - bad inputs: one-line error naming the file/field, nothing written

    private func expectFailure(_ dir: TempDir, _ input: TextInput, _ options: TextPrepareOptions,
                               mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try dir.contents()
        let out = dir.file("never.h5")
        let failure = dataErrorMessage { _ = try TextPreparation.prepare(input, options: options, output: out) }
        #expect(failure != nil, "expected a DataError", sourceLocation: sourceLocation)
        for word in mentions {
            #expect(failure?.1.contains(word) == true, "\(failure?.1 ?? "nil") should mention \(word)",
                    sourceLocation: sourceLocation)
        }
        #expect(failure?.1.contains("\n") == false, sourceLocation: sourceLocation)
        #expect(try dir.contents() == before, "nothing may be written", sourceLocation: sourceLocation)
    }

    @Test func missingInputFile() throws {
        let dir = try TempDir()
        let ok = try dir.write("ok.txt", "a b\n")
        try expectFailure(dir, .files(train: ok, valid: dir.file("nope.txt"), test: ok),
                          TextPrepareOptions(level: .word), mentions: ["nope.txt", "No such file"])
    }

    @Test func unknownWordWithoutUnkEntry() throws {
        let dir = try TempDir()
        let train = try dir.write("t.txt", "a b\n")
        let valid = try dir.write("v.txt", "a q\n")
        try expectFailure(dir, .files(train: train, valid: valid, test: train), TextPrepareOptions(level: .word),
                          mentions: ["v.txt", "\"q\"", "<unk>", "--max-vocab"])
    }

    @Test func invalidUTF8AtCharLevel() throws {
        let dir = try TempDir()
        let bad = try dir.write("bad.txt", bytes: [0x61, 0xFF, 0x62])
        try expectFailure(dir, .files(train: bad, valid: bad, test: bad), TextPrepareOptions(level: .char),
                          mentions: ["bad.txt", "UTF-8", "--level byte"])
    }

    @Test func badSplitFractions() throws {
        let dir = try TempDir()
        let input = try dir.write("all.txt", "a b c\n")
        try expectFailure(dir, .split(input: input, fractions: [0.9, 0.2, 0.05]), TextPrepareOptions(level: .word),
                          mentions: ["--split", "0.9,0.2,0.05"])
    }

    @Test func splitTooSmallToFillEverySplit() throws {
        let dir = try TempDir()
        let input = try dir.write("tiny.txt", "ab")
        try expectFailure(dir, .split(input: input, fractions: [0.9, 0.05, 0.05]), TextPrepareOptions(level: .char),
                          mentions: ["tiny.txt", "at least 1 token"])
    }

    @Test func emptyInputSplit() throws {
        let dir = try TempDir()
        let ok = try dir.write("ok.txt", "a\n")
        let empty = try dir.write("empty.txt", "")
        try expectFailure(dir, .files(train: ok, valid: ok, test: empty), TextPrepareOptions(level: .word),
                          mentions: ["empty.txt", "test split"])
    }

    @Test func maxVocabWithByteLevel() throws {
        let dir = try TempDir()
        let ok = try dir.write("ok.txt", "a\n")
        try expectFailure(dir, .files(train: ok, valid: ok, test: ok), TextPrepareOptions(level: .byte, maxVocab: 10),
                          mentions: ["--max-vocab"])
    }

    @Test func outputDirectoryNotWritable() throws {
        let dir = try TempDir()
        let ok = try dir.write("ok.txt", "a\n")
        let out = ok + "/out.h5"   // under a regular file: fails even for root
        let failure = dataErrorMessage {
            _ = try TextPreparation.prepare(.files(train: ok, valid: ok, test: ok),
                                            options: TextPrepareOptions(level: .word), output: out)
        }
        #expect(failure?.1.contains(out) == true)
        #expect(failure?.1.contains("Not a directory") == true)
        #expect(try dir.contents() == ["ok.txt"])
    }

    @Test func simulatedDiskFullDuringPrepareLeavesNothing() throws {
        let dir = try TempDir()
        let ok = try dir.write("ok.txt", "a b c\n")
        let out = dir.file("out.h5")
        #expect(throws: DiskFull.self) {
            _ = try TextPreparation.prepare(.files(train: ok, valid: ok, test: ok), options: TextPrepareOptions(level: .word),
                                            output: out, failureHook: { _ in throw DiskFull() })
        }
        #expect(try dir.contents() == ["ok.txt"])
    }
}
