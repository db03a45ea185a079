// Tests of `unroll prepare sequences` (SequencePreparation): directories of class text files
// (stratified per-seed split, train-only vocabulary, <unk>, separate valid/test directories), NumPy
// .npz inputs written here with ZIPFoundation (classes, values, per-step targets, lengths, train
// statistics) and by NumPy itself when it is installed, one-line refusals of bad input, and the
// h5py example in Sources/UnrollData/DatasetFormat.md (skipped with a reason when python3 cannot import h5py).
import Foundation
import Testing
import ZIPFoundation
@testable import UnrollData

/// Writes an .npz with the given arrays (`compression` for every member).
func writeNPZ(_ path: String, _ arrays: [String: NumPyArray], compression: CompressionMethod = .deflate,
              fortran: Set<String> = []) throws {
    let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .create)
    for (name, array) in arrays.sorted(by: { $0.key < $1.key }) {
        let data = NumPyReader.npyBytes(array, fortranOrder: fortran.contains(name))
        try archive.addEntry(with: name + ".npy", type: .file, uncompressedSize: Int64(data.count),
                             compressionMethod: compression) { position, size in
            data.subdata(in: Int(position)..<(Int(position) + size))
        }
    }
}

/// Runs `arguments` with /usr/bin/env in `directory`; returns status and combined output.
func runProcess(_ arguments: [String], in directory: String? = nil) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// Whether `python3 -c 'import MODULE'` works; the reason when it does not.
func pythonImports(_ module: String) -> (ok: Bool, reason: String) {
    do {
        let (status, output) = try runProcess(["python3", "-c", "import \(module)"])
        return status == 0 ? (true, "") : (false, "python3 cannot import \(module): \(output.split(separator: "\n").last ?? "")")
    } catch {
        return (false, "cannot run python3: \(error)")
    }
}

@Suite struct PrepareSequencesTests {
    /// Three classes of lines ("a…", "b…", "c…"), 10 lines each, in DIR.
    static func classDirectory(_ dir: TempDir, name: String = "corpus", lines: Int = 10) throws -> String {
        let root = dir.file(name)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (c, stem) in ["alpha", "beta", "gamma"].enumerated() {
            let text = (0..<lines).map { i in String(repeating: "abc".map(String.init)[c], count: i % 4 + 1) + "\(c)" }
            try (text.joined(separator: "\n") + "\n\n").write(toFile: root + "/\(stem).txt", atomically: false, encoding: .utf8)
        }
        return root
    }

    @Test func classDirectorySplitIsStratifiedDeterministicAndTheVocabularyComesFromTrain() throws {
        let dir = try TempDir()
        let input = try Self.classDirectory(dir)
        let make = { (seed: UInt64, name: String) throws -> (SequencePrepareSummary, Data) in
            let summary = try SequencePreparation.prepare(
                input: input, splitting: .fractions([0.8, 0.1, 0.1], seed: seed), options: SequencePrepareOptions(level: .char),
                output: dir.file(name))
            return (summary, try Data(contentsOf: URL(fileURLWithPath: dir.file(name))))
        }
        let (summary, a) = try make(7, "a.h5")
        let (_, b) = try make(7, "b.h5")
        let (_, c) = try make(8, "c.h5")
        #expect(a == b && a != c)
        #expect(summary.sequences == ["train": 24, "valid": 3, "test": 3])
        #expect(summary.skippedLines == 3)  // one blank line per file
        let set = try SequenceSet(path: dir.file("a.h5"))
        #expect(set.classNames == ["alpha", "beta", "gamma"] && set.inputKind == .tokens && set.level == "char")
        #expect(set.task == "corpus" && set.unk == "<unk>" && set.vocabulary.last == "<unk>")
        #expect(Set(set.vocabulary) == Set(["a", "b", "c", "0", "1", "2", "<unk>"]))
        for name in DatasetFormat.splits {
            let split = try set.split(name)
            guard case let .classes(ids) = split.targets, case let .tokens(tokens) = try split.loadInputs() else {
                Issue.record("token inputs and class targets expected")
                return
            }
            #expect(Set(ids) == [0, 1, 2])  // stratified: every class in every split
            for i in 0..<split.count {
                // Each line is letters of its class followed by the class digit.
                let text = tokens[Int(split.offsets[i])..<Int(split.offsets[i + 1])].map { set.vocabulary[Int($0)] }
                #expect(text.last == String(ids[i]) && text.dropLast().allSatisfy { $0 == ["a", "b", "c"][Int(ids[i])] })
            }
        }
    }

    @Test func separateValidAndTestDirectoriesMapUnseenWordsToUnknown() throws {
        let dir = try TempDir()
        let train = dir.file("train"), valid = dir.file("valid"), test = dir.file("test")
        for d in [train, valid, test] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try "good film\nvery good\n".write(toFile: train + "/pos.txt", atomically: false, encoding: .utf8)
        try "bad film\r\nvery bad".write(toFile: train + "/neg.txt", atomically: false, encoding: .utf8)
        try "good plot\n".write(toFile: valid + "/pos.txt", atomically: false, encoding: .utf8)
        try "awful\n".write(toFile: test + "/neg.txt", atomically: false, encoding: .utf8)
        let summary = try SequencePreparation.prepare(
            input: train, splitting: .inputs(valid: valid, test: test),
            options: SequencePrepareOptions(level: .word, task: "reviews"), output: dir.file("r.h5"))
        #expect(summary.unknown == ["train": 0, "valid": 1, "test": 1])
        let set = try SequenceSet(path: dir.file("r.h5"))
        #expect(set.classNames == ["neg", "pos"] && set.task == "reviews")
        // Train counts: good 2, film 2, very 2, bad 2; ties by first occurrence in train order
        // (neg.txt first: class order).
        #expect(set.vocabulary == ["bad", "film", "very", "good", "<unk>"])
        #expect(try set.split("valid").loadInputs() == .tokens([3, 4]))
        #expect(try set.split("test").loadInputs() == .tokens([4]))
        #expect(try set.split("test").targets == .classes([0]))

        try "x\n".write(toFile: test + "/other.txt", atomically: false, encoding: .utf8)
        let message = dataErrorMessage {
            _ = try SequencePreparation.prepare(input: train, splitting: .inputs(valid: valid, test: test),
                                                options: SequencePrepareOptions(level: .word), output: dir.file("s.h5"))
        }?.1
        #expect(message == "\(test)/other.txt: class: expected a class of the training directory (\"neg\", \"pos\"), found \"other\"")
    }

    @Test func emptyAndDuplicateClassFilesAreRefused() throws {
        let dir = try TempDir()
        let input = try Self.classDirectory(dir)
        try "".write(toFile: input + "/delta.txt", atomically: false, encoding: .utf8)
        let options = SequencePrepareOptions(level: .byte)
        var message = dataErrorMessage {
            _ = try SequencePreparation.prepare(input: input, splitting: .fractions([0.8, 0.1, 0.1], seed: 1),
                                                options: options, output: dir.file("o.h5"))
        }?.1
        #expect(message == "\(input)/delta.txt: lines: expected at least one non-empty line (one sequence per line), found an empty class file")
        try FileManager.default.removeItem(atPath: input + "/delta.txt")
        try "x\n".write(toFile: input + "/beta.csv", atomically: false, encoding: .utf8)
        message = dataErrorMessage {
            _ = try SequencePreparation.prepare(input: input, splitting: .fractions([0.8, 0.1, 0.1], seed: 1),
                                                options: options, output: dir.file("o.h5"))
        }?.1
        #expect(message == "\(input)/beta.txt: class name: expected one file per class, found \"beta\" also from beta.csv")
        #expect(!FileManager.default.fileExists(atPath: dir.file("o.h5")))
    }

    /// x (4, 3, 2) with lengths [3, 1, 2, 3]; y as given.
    static func npzArrays(y: NumPyArray, lengths: Bool = true) -> [String: NumPyArray] {
        let x = (0..<24).map { Float($0) }
        var arrays = ["x": NumPyArray(dtype: "<f8", shape: [4, 3, 2], elements: .floats(x)), "y": y]
        if lengths { arrays["lengths"] = NumPyArray(dtype: "<i8", shape: [4], elements: .integers([3, 1, 2, 3])) }
        return arrays
    }

    @Test(arguments: [false, true])
    func npzClassesAreSplitByTheSeedAndStatisticsComeFromTrain(deflate: Bool) throws {
        let dir = try TempDir()
        let input = dir.file("x.npz")
        try writeNPZ(input, Self.npzArrays(y: NumPyArray(dtype: "<i4", shape: [4], elements: .integers([0, 1, 2, 1]))),
                     compression: deflate ? .deflate : .none)
        let summary = try SequencePreparation.prepare(input: input, splitting: .fractions([0.5, 0.25, 0.25], seed: 3),
                                                      options: SequencePrepareOptions(), output: dir.file("o.h5"))
        #expect(summary.sequences == ["train": 2, "valid": 1, "test": 1])
        let set = try SequenceSet(path: dir.file("o.h5"))
        #expect(set.inputKind == .features && set.inputDim == 2 && set.numClasses == 3 && set.classNames == ["0", "1", "2"])
        #expect(!set.perStep && set.task == "x")
        // Reassemble: every sequence appears once, with its own rows and label.
        let rowsOf: [Int: [Float]] = [0: Array((0..<6).map { Float($0) }), 1: [6, 7], 2: Array((12..<16).map { Float($0) }),
                                      3: Array((18..<24).map { Float($0) })]
        let labelOf: [Int32] = [0, 1, 2, 1]
        var seen: [Int] = []
        var trainRows: [Float] = []
        for name in DatasetFormat.splits {
            let split = try set.split(name)
            guard case let .features(rows) = try split.loadInputs(), case let .classes(ids) = split.targets else {
                Issue.record("features and classes expected")
                return
            }
            if name == "train" { trainRows = rows }
            for i in 0..<split.count {
                let mine = Array(rows[Int(split.offsets[i]) * 2..<Int(split.offsets[i + 1]) * 2])
                let k = try #require(rowsOf.first { $0.value == mine }?.key)
                #expect(labelOf[k] == ids[i])
                seen.append(k)
            }
        }
        #expect(seen.sorted() == [0, 1, 2, 3])
        let expected = FeatureNormalization.statistics(of: trainRows, dim: 2)
        #expect(set.featureNormalization == expected)
    }

    @Test func npzPerStepTargetsKeepOnlyTheStepsWithinLengths() throws {
        let dir = try TempDir()
        let input = dir.file("tags.npz"), valid = dir.file("v.npz"), test = dir.file("t.npz")
        let tags = NumPyArray(dtype: "<i8", shape: [4, 3], elements: .integers([1, 2, 3, 4, -1, -1, 5, 6, -1, 7, 8, 9]))
        try writeNPZ(input, Self.npzArrays(y: tags))
        let values = NumPyArray(dtype: "<f4", shape: [4, 3, 1], elements: .floats((0..<12).map { Float($0) / 2 }))
        try writeNPZ(valid, Self.npzArrays(y: tags))
        try writeNPZ(test, Self.npzArrays(y: tags))
        _ = try SequencePreparation.prepare(input: input, splitting: .inputs(valid: valid, test: test),
                                            options: SequencePrepareOptions(), output: dir.file("o.h5"))
        let set = try SequenceSet(path: dir.file("o.h5"))
        #expect(set.perStep && set.targetKind == "class" && set.numClasses == 10)
        let train = try set.split("train")
        #expect(train.offsets == [0, 3, 4, 6, 9])
        #expect(train.targets == .classes([1, 2, 3, 4, 5, 6, 7, 8, 9]))

        try writeNPZ(dir.file("values.npz"), Self.npzArrays(y: values, lengths: false))
        _ = try SequencePreparation.prepare(input: dir.file("values.npz"), splitting: .fractions([0.5, 0.25, 0.25], seed: 1),
                                            options: SequencePrepareOptions(), output: dir.file("v.h5"))
        let valueSet = try SequenceSet(path: dir.file("v.h5"))
        #expect(valueSet.perStep && valueSet.targetKind == "value" && valueSet.targetDim == 1)
        #expect(try valueSet.split("train").targets.count == 6)
    }

    /// A bad .npz and the exact line it must give (PATH stands for the archive's path).
    static let badArchives: [(String, [String: NumPyArray], Set<String>, String)] = [
        ("shapes", npzArrays(y: NumPyArray(dtype: "<i8", shape: [3], elements: .integers([0, 1, 0]))), [],
         "PATH: y: expected targets (4) or (4, d) matching x (N), found shape [3]"),
        ("pickle", npzArrays(y: NumPyArray(dtype: "|O", shape: [4], elements: .integers([0, 0, 0, 0]))), [],
         "PATH: y: expected a numeric array, found dtype '|O': a pickled object array (refused: nothing is unpickled)"),
        ("fortran", npzArrays(y: NumPyArray(dtype: "<i8", shape: [4], elements: .integers([0, 1, 0, 1]))), ["x"],
         "PATH: x: expected C order, found fortran_order True (save with np.ascontiguousarray)"),
        ("label", npzArrays(y: NumPyArray(dtype: "<i8", shape: [4], elements: .integers([0, 1, -2, 1]))), [],
         "PATH: y[2]: expected a class id in 0..<1048576 (labels out of range), found -2"),
        ("lengths", {
            var a = npzArrays(y: NumPyArray(dtype: "<i8", shape: [4], elements: .integers([0, 1, 0, 1])))
            a["lengths"] = NumPyArray(dtype: "<i4", shape: [4], elements: .integers([3, 0, 2, 3]))
            return a
        }(), [], "PATH: lengths[1]: expected 1...3 (T of x; no empty sequence), found 0"),
        ("nan", {
            var a = npzArrays(y: NumPyArray(dtype: "<f4", shape: [4], elements: .floats([0, 1, 0, 1])))
            var x = (0..<24).map { Float($0) }
            x[13] = .nan
            a["x"] = NumPyArray(dtype: "<f4", shape: [4, 3, 2], elements: .floats(x))
            return a
        }(), [], "PATH: x[2, 0, 1]: expected a finite value (as float32), found nan"),
        ("missing", ["x": NumPyArray(dtype: "<f4", shape: [1, 1], elements: .floats([1]))], [],
         "PATH: y: expected an array y of targets, found missing"),
    ]

    @Test(arguments: badArchives.indices)
    func badArchivesAreRefusedInOneLine(index: Int) throws {
        let (label, arrays, fortran, expected) = Self.badArchives[index]
        let dir = try TempDir(label)
        let input = dir.file("\(label).npz")
        try writeNPZ(input, arrays, fortran: fortran)
        let message = dataErrorMessage {
            _ = try SequencePreparation.prepare(input: input, splitting: .fractions([0.5, 0.25, 0.25], seed: 1),
                                                options: SequencePrepareOptions(), output: dir.file("o.h5"))
        }?.1
        #expect(message == expected.replacingOccurrences(of: "PATH", with: input))
        #expect(!FileManager.default.fileExists(atPath: dir.file("o.h5")))
    }

    @Test func npyHeadersOfVersions2And3AreRead() throws {
        var data = NumPyReader.npyBytes(NumPyArray(dtype: "<i4", shape: [2, 2], elements: .integers([1, -2, 3, 4])))
        // Rewrite as version 3: 4-byte header length.
        let length = Int(data[8]) | Int(data[9]) << 8
        data.replaceSubrange(6..<10, with: [3, 0, UInt8(length & 0xFF), UInt8(length >> 8), 0, 0])
        let array = try NumPyReader.parse(data, file: "f.npy", field: "a")
        #expect(array.shape == [2, 2] && array.elements == .integers([1, -2, 3, 4]))
        let bools = NumPyReader.npyBytes(NumPyArray(dtype: "|b1", shape: [3], elements: .integers([1, 0, 1])))
        #expect(try NumPyReader.parse(bools, file: "f.npy", field: "b").elements == .integers([1, 0, 1]))
        let big = NumPyReader.npyBytes(NumPyArray(dtype: ">f4", shape: [1], elements: .floats([1])))
        #expect(dataErrorMessage { _ = try NumPyReader.parse(big, file: "f.npy", field: "c") }?.1
                == "f.npy: c: expected dtype <f4, <f8, <i4, <i8, |u1 or |b1 (little-endian), found '>f4'")
    }

    @Test func anArchiveWrittenByNumPyIsRead() throws {
        let probe = pythonImports("numpy")
        guard probe.ok else {
            print("SKIPPED anArchiveWrittenByNumPyIsRead: \(probe.reason)")
            return
        }
        let dir = try TempDir()
        let script = """
            import numpy as np
            rng = np.random.default_rng(0)
            np.savez_compressed("np.npz", x=rng.standard_normal((20, 5, 3)), lengths=rng.integers(1, 6, 20),
                                y=rng.integers(0, 4, 20))
            np.savez("vals.npz", x=rng.standard_normal((20, 5, 3)).astype(np.float32), y=rng.standard_normal((20, 2)))
            """
        let (status, output) = try runProcess(["python3", "-c", script], in: dir.path)
        #expect(status == 0, "\(output)")
        _ = try SequencePreparation.prepare(input: dir.file("np.npz"), splitting: .fractions([0.6, 0.2, 0.2], seed: 2),
                                            options: SequencePrepareOptions(), output: dir.file("c.h5"))
        let set = try SequenceSet(path: dir.file("c.h5"))
        #expect(set.inputDim == 3 && set.targetKind == "class" && set.numClasses <= 4)
        #expect(try set.split("train").count == 12)
        _ = try SequencePreparation.prepare(input: dir.file("vals.npz"), splitting: .fractions([0.6, 0.2, 0.2], seed: 2),
                                            options: SequencePrepareOptions(), output: dir.file("v.h5"))
        let values = try SequenceSet(path: dir.file("v.h5"))
        #expect(values.targetKind == "value" && values.targetDim == 2 && !values.perStep)
    }

    /// The h5py example of Sources/UnrollData/DatasetFormat.md (the first ```python block after
    /// "### Writing a sequence set with h5py") writes a file the reader accepts.
    @Test func readmeH5pyExampleWritesAValidFile() throws {
        let probe = pythonImports("h5py")
        guard probe.ok else {
            print("SKIPPED readmeH5pyExampleWritesAValidFile: \(probe.reason) (pip install h5py)")
            return
        }
        let readme = try String(contentsOfFile: packageRoot + "/Sources/UnrollData/DatasetFormat.md", encoding: .utf8)
        let section = try #require(readme.range(of: "### Writing a sequence set with h5py"))
        let start = try #require(readme.range(of: "```python\n", range: section.upperBound..<readme.endIndex))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let script = String(readme[start.upperBound..<end.lowerBound])
        #expect(script.split(separator: "\n").count <= 12)
        let dir = try TempDir()
        let (status, output) = try runProcess(["python3", "-c", script], in: dir.path)
        #expect(status == 0, "\(output)")
        let set = try SequenceSet(path: dir.file("toy.h5"))
        #expect(set.version == 2 && set.inputKind == .features && set.classNames == ["neg", "pos"])
        #expect(set.normalization != nil)
        for name in DatasetFormat.splits { _ = try set.split(name).loadInputs() }
    }
}
