// Tests of `unroll prepare pairs` (PairPreparation): separate valid/test files and a per-seed
// shuffled --split, vocabularies from train only with <unk> for the rest, --max-length drops and
// their count, levels, and every bad input refused in one line naming file, line and expectation.
import Foundation
import Testing
@testable import UnrollData

@Suite struct PreparePairsTests {
    static func decode(_ set: PairSet, _ split: PairSplit, _ i: Int) -> ([String], [String]) {
        (split.source(i).map { set.sourceVocabulary[Int($0)] }, split.target(i).map { set.targetVocabulary[Int($0)] })
    }

    @Test func separateFilesRoundTripWithVocabulariesFromTrainOnly() throws {
        let dir = try TempDir()
        let train = try dir.write("train.tsv", "the cat\tle chat\tignored column\nthe dog\tle chien\r\n\nthe <unk>\tun truc\n")
        let valid = try dir.write("valid.tsv", "a cat\tun chat\n")
        let test = try dir.write("test.tsv", "the dog\tle chien\tx\ty")
        let summary = try PairPreparation.prepare(input: train, splitting: .inputs(valid: valid, test: test),
                                                  options: PairPrepareOptions(level: .word), output: dir.file("p.h5"))
        #expect(summary.pairs == ["train": 3, "valid": 1, "test": 1])
        #expect(summary.unknown == ["train": 0, "valid": 1, "test": 0])  // "a" ("un" is a train target word)
        #expect(summary.skippedLines == 1 && summary.dropped == 0 && summary.task == "train")
        let set = try PairSet(path: dir.file("p.h5"))
        #expect(set.level == .word && set.task == "train")
        // Specials, then descending train frequency, ties by first occurrence; "<unk>" in the text is id 0.
        #expect(set.sourceVocabulary == ["<unk>", "<bos>", "<eos>", "the", "cat", "dog"])
        #expect(set.targetVocabulary == ["<unk>", "<bos>", "<eos>", "le", "chat", "chien", "un", "truc"])
        let t = try set.split("train")
        #expect(Self.decode(set, t, 0) == (["the", "cat"], ["le", "chat"]))
        #expect(Self.decode(set, t, 1) == (["the", "dog"], ["le", "chien"]))
        #expect(Array(t.source(2)) == [3, 0])
        let v = try set.split("valid")
        #expect(Array(v.source(0)) == [PairSet.unkID, 4] && Self.decode(set, v, 0).1 == ["un", "chat"])
        #expect(set.longestSource == 2 && set.longestTarget == 2)
        #expect(set.attributes().contains { $0 == ("source", "\"train.tsv\"") })
    }

    @Test func charAndByteLevelsTokenizeEachSide() throws {
        let dir = try TempDir()
        let input = try dir.write("chars.tsv", "héllo\twörld\nab\tba\n")
        let valid = try dir.write("v.tsv", "ab\tba\n"), test = try dir.write("t.tsv", "ab\tba\n")
        _ = try PairPreparation.prepare(input: input, splitting: .inputs(valid: valid, test: test),
                                        options: PairPrepareOptions(level: .char), output: dir.file("c.h5"))
        let chars = try PairSet(path: dir.file("c.h5"))
        #expect(Self.decode(chars, try chars.split("train"), 0) == (["h", "é", "l", "l", "o"], ["w", "ö", "r", "l", "d"]))
        let bytes = try dir.write("bytes.tsv", bytes: [0x61, 0xFF, 0x09, 0x62, 0x0A])
        _ = try PairPreparation.prepare(input: bytes, splitting: .inputs(valid: valid, test: test),
                                        options: PairPrepareOptions(level: .byte), output: dir.file("b.h5"))
        let set = try PairSet(path: dir.file("b.h5"))
        #expect(set.sourceVocabulary == PairSet.specials + ["a", "<0xFF>"])
        #expect(Self.decode(set, try set.split("valid"), 0) == (["a", "<unk>"], ["b", "<unk>"]))
    }

    @Test func splitIsDeterministicPerSeedAndCutByTheFractions() throws {
        let dir = try TempDir()
        let lines = (0..<100).map { "s\($0) x\t t\($0) y" }.joined(separator: "\n")
        let input = try dir.write("all.tsv", lines)
        let make = { (seed: UInt64, name: String) throws -> (PairPrepareSummary, Data) in
            let summary = try PairPreparation.prepare(input: input, splitting: .fractions([0.8, 0.1, 0.1], seed: seed),
                                                      options: PairPrepareOptions(level: .word), output: dir.file(name))
            return (summary, try Data(contentsOf: URL(fileURLWithPath: dir.file(name))))
        }
        let (summary, a) = try make(5, "a.h5")
        let (_, b) = try make(5, "b.h5")
        let (_, c) = try make(6, "c.h5")
        #expect(a == b && a != c)
        #expect(summary.pairs == ["train": 80, "valid": 10, "test": 10])
        let set = try PairSet(path: dir.file("a.h5"))
        #expect(set.attributes().contains { $0 == ("split_fractions", "\"0.8,0.1,0.1\"") })
        #expect(set.attributes().contains { $0 == ("seed", "\"5\"") })
        // Every pair lands in exactly one split, still paired; valid/test words are <unk>.
        var seen = Set<String>()
        for name in DatasetFormat.splits {
            let split = try set.split(name)
            for i in 0..<split.count {
                let (source, target) = Self.decode(set, split, i)
                #expect(source.count == 2 && target.count == 2)
                if name == "train" {
                    #expect(source[0].dropFirst() == target[0].dropFirst())
                    seen.insert(source[0])
                } else {
                    #expect(source == ["<unk>", "x"] && target == ["<unk>", "y"])
                }
            }
        }
        #expect(seen.count == 80)
    }

    @Test func maxLengthDropsAndCountsLongPairs() throws {
        let dir = try TempDir()
        let input = try dir.write("p.tsv", (1...20).map { n in
            String(repeating: "a", count: n) + "\t" + String(repeating: "b", count: 21 - n)
        }.joined(separator: "\n") + "\n")
        let summary = try PairPreparation.prepare(input: input, splitting: .fractions([0.5, 0.25, 0.25], seed: 1),
                                                  options: PairPrepareOptions(level: .char, maxLength: 15),
                                                  output: dir.file("p.h5"))
        // Kept: source n ≤ 15 and target 21 − n ≤ 15, i.e. n in 6...15.
        #expect(summary.dropped == 10 && summary.pairs.values.reduce(0, +) == 10)
        #expect(summary.description.contains("10 pairs dropped (a side longer than --max-length 15)"))
        let set = try PairSet(path: dir.file("p.h5"))
        #expect(set.longestSource <= 15 && set.longestTarget <= 15)
        #expect(set.attributes().contains { $0 == ("dropped_pairs", "10") })
        #expect(set.attributes().contains { $0 == ("max_length", "15") })
    }

    @Test func badInputIsRefusedInOneLineNamingFileAndLine() throws {
        let dir = try TempDir()
        let ok = try dir.write("ok.tsv", "a\tb\n")
        let cases: [(name: String, bytes: [UInt8], level: TokenLevel, maxLength: Int?, expected: String)] = [
            ("notab.tsv", Array("a\tb\nno tab here\n".utf8), .word, nil, "line 2: expected source<TAB>target, found no TAB in \"no tab here\""),
            ("emptysource.tsv", Array("a\tb\n\tb\n".utf8), .char, nil, "line 2: expected a non-empty source, found an empty source"),
            ("emptytarget.tsv", Array("a\tb\nc\t\td\n".utf8), .char, nil, "line 2: expected a non-empty target, found an empty target"),
            ("blanktarget.tsv", Array("a\t  \n".utf8), .word, nil, "line 1: expected a non-empty target, found a target of only whitespace"),
            ("empty.tsv", [], .char, nil, "pairs: expected at least one line source<TAB>target, found an empty file"),
            ("blank.tsv", Array("\n\r\n".utf8), .char, nil, "pairs: expected at least one line source<TAB>target, found only empty lines"),
            ("long.tsv", Array("abc\tb\nabcd\tb\n".utf8), .char, 2, "pairs: expected pairs with at most 2 tokens per side (--max-length), found none: all 2 pairs are longer"),
            ("latin1.tsv", [0x61, 0x09, 0x62, 0x0A, 0xE9, 0x09, 0x62], .char, nil, "line 2: expected UTF-8 text (or use --level byte), found invalid UTF-8"),
            ("nul.tsv", [0x61, 0x00, 0x09, 0x62], .word, nil, "line 1: expected text without NUL (or use --level byte), found a NUL byte"),
        ]
        for c in cases {
            let path = try dir.write(c.name, bytes: c.bytes)
            let message = dataErrorMessage {
                _ = try PairPreparation.prepare(input: path, splitting: .inputs(valid: ok, test: ok),
                                                options: PairPrepareOptions(level: c.level, maxLength: c.maxLength),
                                                output: dir.file("out.h5"))
            }?.1
            #expect(message == "\(path): \(c.expected)")
            // As valid file too: the message names that file.
            let asValid = dataErrorMessage {
                _ = try PairPreparation.prepare(input: ok, splitting: .inputs(valid: path, test: ok),
                                                options: PairPrepareOptions(level: c.level, maxLength: c.maxLength),
                                                output: dir.file("out.h5"))
            }?.1
            #expect(asValid == "\(path): \(c.expected)")
        }
        let few = try dir.write("few.tsv", "a\tb\nc\td\n")
        let split = dataErrorMessage {
            _ = try PairPreparation.prepare(input: few, splitting: .fractions([0.8, 0.1, 0.1], seed: 0),
                                            options: PairPrepareOptions(level: .char), output: dir.file("out.h5"))
        }?.1
        #expect(split == "\(few): valid split: expected at least 1 pair, found 0 pairs (give more lines or other --split fractions)")
        let zero = dataErrorMessage {
            _ = try PairPreparation.prepare(input: few, splitting: .inputs(valid: ok, test: ok),
                                            options: PairPrepareOptions(level: .char, maxLength: 0), output: dir.file("out.h5"))
        }?.1
        #expect(zero == "--max-length: expected ≥ 1 tokens, found 0")
        let missing = dataErrorMessage {
            _ = try PairPreparation.prepare(input: dir.file("nothere.tsv"), splitting: .inputs(valid: ok, test: ok),
                                            options: PairPrepareOptions(level: .char), output: dir.file("out.h5"))
        }?.1
        #expect(missing?.hasPrefix(dir.file("nothere.tsv") + ": cannot open input") == true)
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.h5")))
    }

    @Test func simulatedDiskFullDuringPrepareLeavesNothing() throws {
        let dir = try TempDir()
        let ok = try dir.write("ok.tsv", "a b\tc\n")
        #expect(throws: DiskFull.self) {
            _ = try PairPreparation.prepare(input: ok, splitting: .inputs(valid: ok, test: ok),
                                            options: PairPrepareOptions(level: .word), output: dir.file("out.h5"),
                                            failureHook: { _ in throw DiskFull() })
        }
        #expect(try dir.contents() == ["ok.tsv"])
    }
}
