// Tests of layout `sequences` v2 (writer and validating reader) and of reading v1 files: round
// trips of feature/token inputs, per-sequence/per-step targets, class names and statistics; one-line
// refusals naming file and field for every kind of bad content; `inspect` on a v2 file.
import Foundation
import Testing
@testable import UnrollData

/// Writes a sequence set with raw HDF5 calls (the v1 layout by default), so tests can produce old
/// files and break any part of the format.
struct RawSequenceFile {
    var version: Int64 = 1
    var inputKind: String? = nil           // v2 attribute; nil = not written
    var perStep: Int64? = nil              // v2 attribute; nil = not written
    var inputDim: Int64 = 2
    var targetKind = "class"
    var numClasses: Int64 = 3
    var inputs: [Float] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]       // 5 rows of 2
    var offsets: [Int64] = [0, 2, 5]
    var classTargets: [Int32] = [0, 2]
    var classes: [String]? = nil

    func write(_ path: String) throws {
        let file = try H5File.create(path)
        try file.setAttribute("format", string: DatasetFormat.name)
        try file.setAttribute("version", version)
        try file.setAttribute("kind", string: "sequences")
        try file.setAttribute("task", string: "raw")
        try file.setAttribute("input_dim", inputDim)
        try file.setAttribute("target_kind", string: targetKind)
        try file.setAttribute("target_dim", Int64(1))
        try file.setAttribute("num_classes", numClasses)
        if let inputKind { try file.setAttribute("input_kind", string: inputKind) }
        if let perStep { try file.setAttribute("per_step", perStep) }
        if let classes { try file.writeStrings("classes", classes) }
        for name in DatasetFormat.splits {
            let group = try file.createGroup(name)
            try group.write("inputs", inputs, shape: [inputs.count / Int(inputDim), Int(inputDim)])
            try group.write("offsets", offsets)
            try group.write("targets", classTargets, shape: [classTargets.count, 1])
        }
        try file.close()
    }
}

@Suite struct SequenceSetTests {
    static func featureContent(perStep: Bool = false) -> SequenceSetContent {
        // Two sequences of 2 and 3 steps, 2 features; targets per step (5 rows) or per sequence.
        let split = SequenceSplitContent(inputs: [1, 10, 2, 20, 3, 30, 4, 40, 5, 50], offsets: [0, 2, 5],
                                         targets: .values(perStep ? [0.5, 1, 1.5, 2, 2.5] : [0.25, 0.75]))
        return SequenceSetContent(task: "toy", inputDim: 2, targetDim: 1,
                                  splits: ["train": split, "valid": split, "test": split], perStep: perStep,
                                  normalization: FeatureNormalization.statistics(of: [1, 10, 2, 20, 3, 30, 4, 40, 5, 50], dim: 2))
    }

    static func tokenContent() -> SequenceSetContent {
        let split = SequenceSplitContent(inputs: .tokens([0, 1, 2, 3, 1]), offsets: [0, 3, 5], targets: .classes([1, 0]))
        return SequenceSetContent(task: "words", inputDim: 1, targetDim: 1, numClasses: 2,
                                  splits: ["train": split, "valid": split, "test": split], classNames: ["neg", "pos"],
                                  vocabulary: ["<unk>", "a", "b", "c"], level: .word, unk: "<unk>")
    }

    @Test func featureSetWithPerStepValuesAndStatisticsRoundTrips() throws {
        let dir = try TempDir()
        let path = dir.file("f.h5")
        try SequenceSetWriter.write(Self.featureContent(perStep: true), to: path)
        let set = try SequenceSet(path: path)
        #expect(set.version == 2 && set.inputKind == .features && set.inputDim == 2 && set.perStep)
        #expect(set.targetKind == "value" && set.numClasses == 0 && set.classNames.isEmpty && set.vocabulary.isEmpty)
        #expect(set.level == nil)
        let stats = try #require(set.normalization)
        #expect(stats.mean == [3, 30])
        #expect(abs(stats.std[0] - Float(2).squareRoot()) < 1e-6 && abs(stats.std[1] - Float(200).squareRoot()) < 1e-4)
        let train = try set.split("train")
        #expect(train.count == 2 && train.length(of: 1) == 3 && train.totalSteps == 5)
        #expect(train.targets == .values([0.5, 1, 1.5, 2, 2.5]))
        #expect(try train.loadInputs() == .features([1, 10, 2, 20, 3, 30, 4, 40, 5, 50]))
        guard case let .features(normalized) = try train.loadInputs(normalizedBy: set.featureNormalization) else {
            Issue.record("features expected")
            return
        }
        #expect(abs(normalized[4]) < 1e-6 && abs(normalized[0] + Float(2).squareRoot()) < 1e-5)
    }

    @Test func tokenSetRoundTripsVocabularyLevelAndClassNames() throws {
        let dir = try TempDir()
        let path = dir.file("t.h5")
        try SequenceSetWriter.write(Self.tokenContent(), to: path)
        let set = try SequenceSet(path: path)
        #expect(set.inputKind == .tokens && set.inputDim == 1 && set.level == "word" && set.unk == "<unk>")
        #expect(set.vocabulary == ["<unk>", "a", "b", "c"] && set.classNames == ["neg", "pos"] && set.numClasses == 2)
        #expect(!set.perStep && set.normalization == nil)
        let valid = try set.split("valid")
        #expect(try valid.loadInputs() == .tokens([0, 1, 2, 3, 1]))
        #expect(valid.targets == .classes([1, 0]))
        let description = try DatasetInspector.describe(path, scan: true)
        #expect(description.contains("token inputs (level word, vocab size 4)"))
        #expect(description.contains("per-sequence class targets × 1, 2 classes"))
        #expect(description.contains("0=\"neg\" 1=\"pos\""))
        #expect(description.contains("all ids < 4"))
    }

    @Test func inspectDescribesFeaturesPerStepAndNormalization() throws {
        let dir = try TempDir()
        let path = dir.file("f.h5")
        try SequenceSetWriter.write(Self.featureContent(perStep: true), to: path)
        let description = try DatasetInspector.describe(path, scan: true)
        #expect(description.contains("v2, feature inputs (input_dim 2), per-step value targets × 1"))
        #expect(description.contains("normalization (train mean±std per feature): 3±1.414 30±14.14"))
        #expect(description.contains("/train: 2 sequences, 5 steps, lengths 2...3, all features finite"))
    }

    @Test func aVersion1FileStillOpensWithDefaultClassNames() throws {
        let dir = try TempDir()
        let path = dir.file("v1.h5")
        try RawSequenceFile().write(path)
        let set = try SequenceSet(path: path)
        #expect(set.version == 1 && set.inputKind == .features && !set.perStep && set.normalization == nil)
        #expect(set.classNames == ["0", "1", "2"] && set.vocabulary.isEmpty && set.level == nil)
        let test = try set.split("test")
        #expect(test.count == 2 && test.targets == .classes([0, 2]))
        #expect(try test.loadInputs() == .features([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
        #expect(try DatasetInspector.describe(path).contains("v1, feature inputs (input_dim 2)"))
    }

    @Test func syntheticParityAndAddingAreVersion2WithParityClassNames() throws {
        let dir = try TempDir()
        for task in [SyntheticTask.parity, .adding] {
            let path = dir.file("\(task).h5")
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: task, seed: 3, sizes: [10, 5, 5]), output: path)
            let set = try SequenceSet(path: path)
            #expect(set.version == 2 && set.inputKind == .features && !set.perStep)
            #expect(set.classNames == (task == .parity ? ["even", "odd"] : []))
            for name in DatasetFormat.splits { _ = try set.split(name).loadInputs() }
        }
    }

    /// A broken file and what its one-line refusal must mention.
    struct BadFile: CustomTestStringConvertible, Sendable {
        var label: String
        var file: RawSequenceFile
        var field: String
        var words: String
        var atLoad = false
        var testDescription: String { label }
    }

    static let badFiles: [BadFile] = {
        var cases: [BadFile] = []
        var f = RawSequenceFile()
        f.offsets = [0, 2, 2, 5]
        f.classTargets = [0, 1, 2]
        cases.append(BadFile(label: "empty sequence", file: f, field: "/train/offsets[2]", words: "increasing offsets"))
        f = RawSequenceFile()
        f.offsets = [0, 3, 2, 5]
        f.classTargets = [0, 1, 2]
        cases.append(BadFile(label: "decreasing offsets", file: f, field: "/train/offsets[2]", words: "found 2 after 3"))
        f = RawSequenceFile()
        f.classTargets = [0, 3]
        cases.append(BadFile(label: "label out of range", file: f, field: "/train/targets[1]", words: "class id < num_classes 3"))
        f = RawSequenceFile()
        f.inputs[7] = .nan
        cases.append(BadFile(label: "NaN feature", file: f, field: "/train/inputs[row 3, feature 1]", words: "finite value, found nan",
                             atLoad: true))
        f = RawSequenceFile()
        f.inputs[0] = .infinity
        cases.append(BadFile(label: "Inf feature", file: f, field: "/train/inputs[row 0, feature 0]", words: "found inf", atLoad: true))
        f = RawSequenceFile()
        f.version = 2
        f.inputKind = "features"
        f.perStep = 0
        f.classes = ["a", "b", "a"]
        cases.append(BadFile(label: "duplicate class names", file: f, field: "/classes[2]", words: "distinct class names"))
        f.classes = ["a", "b"]
        cases.append(BadFile(label: "class name count", file: f, field: "/classes", words: "3 strings (num_classes)"))
        f = RawSequenceFile()
        f.version = 2
        cases.append(BadFile(label: "v2 without input_kind", file: f, field: "attribute 'input_kind'", words: "missing"))
        f = RawSequenceFile()
        f.version = 3
        cases.append(BadFile(label: "newer version", file: f, field: "attribute 'version'", words: "expected 1 to 2, found 3 (written by a newer unroll)"))
        return cases
    }()

    @Test(arguments: badFiles)
    func badContentIsRefusedInOneLineNamingFileAndField(_ bad: BadFile) throws {
        let dir = try TempDir()
        let path = dir.file("bad.h5")
        try bad.file.write(path)
        let result = dataErrorMessage {
            let set = try SequenceSet(path: path)
            let train = try set.split("train")
            if bad.atLoad { _ = try train.loadInputs() }
        }
        let message = try #require(result?.1)
        #expect(message.hasPrefix("\(path): \(bad.field): "), "\(message)")
        #expect(message.contains(bad.words), "\(message)")
        #expect(!message.contains("\n"))
    }

    @Test func tokenIdsOutsideTheVocabularyAreRefusedAtLoad() throws {
        let dir = try TempDir()
        let path = dir.file("t.h5")
        try SequenceSetWriter.write(Self.tokenContent(), to: path)
        // Overwrite /test/inputs in place with an id ≥ vocab_size.
        do {
            let file = try H5File.open(path, mode: .readWrite)
            try file.openGroup("test").openDataset("inputs").write([Int32]([0, 1, 7, 3, 1]))
            try file.close()
        }
        let message = try #require(dataErrorMessage { _ = try SequenceSet(path: path).split("test").loadInputs() }?.1)
        #expect(message == "\(path): /test/inputs[2]: expected token id < vocab_size 4, found 7")
    }

    @Test func writerRefusesEmptySequencesNonFiniteValuesAndBadIdsBeforeWriting() throws {
        let dir = try TempDir()
        let path = dir.file("w.h5")
        var cases: [(SequenceSetContent, String)] = []
        var c = Self.featureContent()
        c.splits["valid"]!.offsets = [0, 0, 5]
        cases.append((c, "split valid offsets[1]: expected increasing offsets (no empty sequence), found 0 after 0"))
        c = Self.featureContent()
        c.splits["test"]!.inputs = .features([1, 10, 2, 20, 3, .nan, 4, 40, 5, 50])
        cases.append((c, "split test inputs[row 2, feature 1]: expected a finite value, found nan"))
        c = Self.tokenContent()
        c.splits["train"]!.targets = .classes([1, 2])
        cases.append((c, "split train targets[1]: expected class id < num_classes 2, found 2"))
        c = Self.tokenContent()
        c.splits["train"]!.inputs = .tokens([0, 1, 2, 4, 1])
        cases.append((c, "split train inputs[3]: expected token id < vocabulary size 4, found 4"))
        c = Self.tokenContent()
        c.classNames = ["x", "x"]
        cases.append((c, "/classes[1]: expected distinct class names, found \"x\" again (first at 0)"))
        c = Self.featureContent(perStep: true)
        c.splits["train"]!.targets = .values([1, 2])
        cases.append((c, "split train targets: expected 5 values (5 × 1), found 2"))
        for (content, expected) in cases {
            let message = dataErrorMessage { try SequenceSetWriter.write(content, to: path) }?.1
            #expect(message == expected)
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }
}
