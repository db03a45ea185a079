// Validating reader of layout `sequences` (DatasetFormat.md, "Layout `sequences`"), versions 1 and 2:
// independent, possibly ragged sequences. Per split group: `inputs` (float32 features
// (total_steps, input_dim), or in v2 int32 token ids (total_steps)), `offsets` int64 (N+1; sequence i
// is rows offsets[i]..<offsets[i+1]) and `targets` (int32 class ids or float32 values, (N, d), or in
// v2 (total_steps, d) when `per_step` = 1). v2 adds `/vocab`, `/classes` and `/normalization`.
import Foundation

/// An open, validated sequence-set file (layout `sequences`, version 1 or 2).
public final class SequenceSet {
    /// Path as given.
    public let path: String
    public let task: String
    /// The file's `version` attribute (1 or 2).
    public let version: Int
    public let inputKind: SequenceInputKind
    /// Features per step (1 for tokens).
    public let inputDim: Int
    /// Token inputs: entry i is the text of token id i; [] for features.
    public let vocabulary: [String]
    /// Token inputs: `char`, `byte` or `word`; nil for features.
    public let level: String?
    /// Token inputs: the unknown token, if the vocabulary has one.
    public let unk: String?
    /// `class` or `value`.
    public let targetKind: String
    public let targetDim: Int
    /// Number of classes (0 for value targets).
    public let numClasses: Int
    /// Class targets: `numClasses` names (`/classes`; "0", "1", … when the file has none, as v1
    /// files); [] for values.
    public let classNames: [String]
    /// Targets per input step, (total_steps, target_dim), instead of per sequence (N, target_dim).
    public let perStep: Bool
    /// Feature inputs: train statistics when stored (`/normalization`); every std is finite and > 0.
    public let normalization: (mean: [Float], std: [Float])?
    let file: H5File

    /// Opens `path` and checks format, version (1 or 2), `kind` = "sequences", the root attributes
    /// and (v2) `/vocab`, `/classes` and `/normalization`. Splits are checked by `split(_:)`.
    /// - Throws: `DataError` with one line naming the file and the field.
    public init(path: String) throws {
        self.path = path
        file = try openDatasetFile(path, kind: "sequences", versions: 1...DatasetFormat.sequencesVersion)
        version = try requireInt(file, "version")
        task = try requireString(file, "task")
        inputDim = try requireInt(file, "input_dim")
        targetDim = try requireInt(file, "target_dim")
        targetKind = try requireString(file, "target_kind")
        numClasses = try requireInt(file, "num_classes")
        if version >= 2 {
            let kindName = try requireString(file, "input_kind")
            guard let kind = SequenceInputKind(rawValue: kindName) else {
                throw DataError.invalid(file: path, field: "attribute 'input_kind'", expected: "\"tokens\" or \"features\"",
                                        found: quoted(kindName))
            }
            inputKind = kind
            let flag = try requireInt(file, "per_step")
            guard flag == 0 || flag == 1 else {
                throw DataError.invalid(file: path, field: "attribute 'per_step'", expected: "0 or 1", found: "\(flag)")
            }
            perStep = flag == 1
        } else {
            inputKind = .features
            perStep = false
        }
        guard inputDim >= 1, inputKind == .features || inputDim == 1 else {
            throw DataError.invalid(file: path, field: "attribute 'input_dim'",
                                    expected: inputKind == .features ? "≥ 1" : "1 for token inputs", found: "\(inputDim)")
        }
        guard targetDim >= 1 else {
            throw DataError.invalid(file: path, field: "attribute 'target_dim'", expected: "≥ 1", found: "\(targetDim)")
        }
        guard targetKind == "class" || targetKind == "value" else {
            throw DataError.invalid(file: path, field: "attribute 'target_kind'", expected: "\"class\" or \"value\"",
                                    found: quoted(targetKind))
        }
        guard targetKind == "value" || numClasses >= 1 else {
            throw DataError.invalid(file: path, field: "attribute 'num_classes'", expected: "≥ 1 for class targets",
                                    found: "\(numClasses)")
        }
        if inputKind == .tokens {
            let levelName = try requireString(file, "level")
            guard TokenLevel(rawValue: levelName) != nil else {
                throw DataError.invalid(file: path, field: "attribute 'level'", expected: "char, byte or word",
                                        found: quoted(levelName))
            }
            level = levelName
            let size = try requireInt(file, "vocab_size")
            guard size >= 1 else {
                throw DataError.invalid(file: path, field: "attribute 'vocab_size'", expected: "≥ 1", found: "\(size)")
            }
            vocabulary = try Self.readStrings(file, "vocab", count: size, what: "vocab_size")
            let u = try file.hasAttribute("unk") ? try requireString(file, "unk") : ""
            unk = u.isEmpty ? nil : u
            if let u = unk, !vocabulary.contains(u) {
                throw DataError.invalid(file: path, field: "attribute 'unk'", expected: "an entry of /vocab",
                                        found: quoted(u))
            }
        } else {
            level = nil
            vocabulary = []
            unk = nil
        }
        if targetKind == "class", version >= 2, try file.contains("classes") {
            let names = try Self.readStrings(file, "classes", count: numClasses, what: "num_classes")
            try checkClassNames(names, numClasses: numClasses) { field, expected, found in
                DataError.invalid(file: path, field: field, expected: expected, found: found)
            }
            classNames = names
        } else {
            classNames = targetKind == "class" ? (0..<numClasses).map(String.init) : []
        }
        normalization = try Self.readNormalization(file, inputKind: inputKind, inputDim: inputDim, version: version)
    }

    /// The normalization statistics as a value, or nil.
    public var featureNormalization: FeatureNormalization? {
        normalization.map { FeatureNormalization(mean: $0.mean, std: $0.std) }
    }

    /// Opens and validates one split: dtypes and shapes of `inputs`, `offsets` and `targets`,
    /// offsets increasing from 0 to total_steps (no empty sequence), class ids < num_classes, and
    /// finite value targets. Inputs are checked by `loadInputs()`.
    public func split(_ name: String) throws -> SequenceSplit {
        guard DatasetFormat.splits.contains(name) else {
            throw DataError.argument(name: "split", expected: DatasetFormat.splits.joined(separator: ", "),
                                     found: quoted(name))
        }
        guard try file.contains(name) else {
            throw DataError.invalid(file: path, field: "/\(name)", expected: "a split group", found: "missing")
        }
        let group = try file.openGroup(name)
        for member in ["inputs", "offsets", "targets"] where !(try group.contains(member)) {
            throw DataError.invalid(file: path, field: "/\(name)/\(member)", expected: "a dataset", found: "missing")
        }
        let inputs = try group.openDataset("inputs")
        let steps: Int
        switch inputKind {
        case .features:
            guard inputs.elementType == .float32, inputs.shape.count == 2, inputs.shape[1] == inputDim else {
                throw DataError.invalid(file: path, field: "/\(name)/inputs", expected: "float32 (steps, \(inputDim))",
                                        found: "\(inputs.elementType) shape \(inputs.shape)")
            }
            steps = inputs.shape[0]
        case .tokens:
            guard inputs.elementType == .int32 || inputs.elementType == .uint8, inputs.shape.count == 1 else {
                throw DataError.invalid(file: path, field: "/\(name)/inputs", expected: "int32 token ids (steps)",
                                        found: "\(inputs.elementType) shape \(inputs.shape)")
            }
            steps = inputs.shape[0]
        }
        let offsetsSet = try group.openDataset("offsets")
        guard offsetsSet.elementType == .int64, offsetsSet.shape.count == 1, offsetsSet.count >= 2 else {
            throw DataError.invalid(file: path, field: "/\(name)/offsets", expected: "int64 (N+1) with N ≥ 1",
                                    found: "\(offsetsSet.elementType) shape \(offsetsSet.shape)")
        }
        let offsets = try offsetsSet.read(as: Int64.self)
        guard offsets.first == 0, offsets.last == Int64(steps) else {
            throw DataError.invalid(file: path, field: "/\(name)/offsets",
                                    expected: "offsets from 0 to \(steps) (rows of inputs)",
                                    found: "first \(offsets.first!), last \(offsets.last!)")
        }
        if let bad = offsets.indices.dropFirst().first(where: { offsets[$0] <= offsets[$0 - 1] }).map({ $0 - 1 }) {
            throw DataError.invalid(file: path, field: "/\(name)/offsets[\(bad + 1)]",
                                    expected: "increasing offsets (no empty sequence)",
                                    found: "\(offsets[bad + 1]) after \(offsets[bad])")
        }
        let n = offsets.count - 1
        let rows = perStep ? steps : n
        let targetsSet = try group.openDataset("targets")
        let wantType: H5ElementType = targetKind == "class" ? .int32 : .float32
        guard targetsSet.elementType == wantType, targetsSet.shape == [rows, targetDim] else {
            throw DataError.invalid(file: path, field: "/\(name)/targets",
                                    expected: "\(wantType) (\(rows), \(targetDim))\(perStep ? " (per step)" : "")",
                                    found: "\(targetsSet.elementType) shape \(targetsSet.shape)")
        }
        let targets: SequenceTargets
        let unit = perStep ? "step" : "sequence"
        if targetKind == "class" {
            let ids = try targetsSet.read(as: Int32.self)
            if let bad = ids.firstIndex(where: { $0 < 0 || Int($0) >= numClasses }) {
                throw DataError.invalid(file: path, field: "/\(name)/targets[\(bad / targetDim)]",
                                        expected: "class id < num_classes \(numClasses) (\(unit) \(bad / targetDim))",
                                        found: "\(ids[bad])")
            }
            targets = .classes(ids)
        } else {
            let values = try targetsSet.read(as: Float.self)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw DataError.invalid(file: path, field: "/\(name)/targets[\(bad / targetDim)]",
                                        expected: "a finite value (\(unit) \(bad / targetDim))", found: "\(values[bad])")
            }
            targets = .values(values)
        }
        return SequenceSplit(name: name, inputs: inputs, offsets: offsets, targets: targets, inputKind: inputKind,
                             inputDim: inputDim, targetDim: targetDim, vocabSize: vocabulary.count)
    }

    /// Root attribute names and values as text, strings quoted (for `unroll inspect`).
    public func attributes() throws -> [(String, String)] {
        try attributeTexts(file)
    }

    private static func readStrings(_ file: H5File, _ name: String, count: Int, what: String) throws -> [String] {
        guard try file.contains(name) else {
            throw DataError.invalid(file: file.path, field: "/\(name)", expected: "a string dataset", found: "missing")
        }
        let dataset = try file.openDataset(name)
        guard dataset.elementType == .string, dataset.shape == [count] else {
            throw DataError.invalid(file: file.path, field: "/\(name)", expected: "\(count) strings (\(what))",
                                    found: "\(dataset.elementType) shape \(dataset.shape)")
        }
        return try dataset.readStrings()
    }

    private static func readNormalization(_ file: H5File, inputKind: SequenceInputKind, inputDim: Int,
                                          version: Int) throws -> (mean: [Float], std: [Float])? {
        guard version >= 2, try file.contains("normalization") else { return nil }
        let path = file.path
        guard inputKind == .features else {
            throw DataError.invalid(file: path, field: "/normalization", expected: "none for token inputs",
                                    found: "a normalization group")
        }
        let group = try file.openGroup("normalization")
        var columns: [[Float]] = []
        for member in ["mean", "std"] {
            guard try group.contains(member) else {
                throw DataError.invalid(file: path, field: "/normalization/\(member)", expected: "a dataset", found: "missing")
            }
            let dataset = try group.openDataset(member)
            guard dataset.elementType == .float32, dataset.shape == [inputDim] else {
                throw DataError.invalid(file: path, field: "/normalization/\(member)",
                                        expected: "float32 (\(inputDim)) (input_dim)",
                                        found: "\(dataset.elementType) shape \(dataset.shape)")
            }
            columns.append(try dataset.read(as: Float.self))
        }
        let (mean, std) = (columns[0], columns[1])
        if let bad = mean.firstIndex(where: { !$0.isFinite }) {
            throw DataError.invalid(file: path, field: "/normalization/mean[\(bad)]", expected: "a finite value",
                                    found: "\(mean[bad])")
        }
        if let bad = std.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw DataError.invalid(file: path, field: "/normalization/std[\(bad)]", expected: "a finite value > 0",
                                    found: "\(std[bad])")
        }
        return (mean, std)
    }
}

/// One split of a sequence set: offsets and targets in memory, inputs read on demand.
public final class SequenceSplit {
    public let name: String
    /// N+1 offsets into the input rows, increasing from 0 to total_steps.
    public let offsets: [Int64]
    /// All targets, row-major (N, target_dim), or (total_steps, target_dim) when per step.
    public let targets: SequenceTargets
    public let inputKind: SequenceInputKind
    /// Features per step (1 for tokens).
    public let inputDim: Int
    public let targetDim: Int
    /// Token inputs: ids must be < this; 0 for features.
    public let vocabSize: Int
    let inputs: H5Dataset

    init(name: String, inputs: H5Dataset, offsets: [Int64], targets: SequenceTargets, inputKind: SequenceInputKind,
         inputDim: Int, targetDim: Int, vocabSize: Int) {
        self.name = name
        self.inputs = inputs
        self.offsets = offsets
        self.targets = targets
        self.inputKind = inputKind
        self.inputDim = inputDim
        self.targetDim = targetDim
        self.vocabSize = vocabSize
    }

    /// File the split belongs to.
    public var path: String { inputs.file.path }

    /// Number of sequences N.
    public var count: Int { offsets.count - 1 }

    /// Steps in all sequences.
    public var totalSteps: Int { Int(offsets[count]) }

    /// Steps of sequence `i`.
    public func length(of i: Int) -> Int { Int(offsets[i + 1] - offsets[i]) }

    /// Reads and validates the whole split: `.features` (total_steps, input_dim) or `.tokens`
    /// (total_steps).
    /// - Throws: `DataError` naming the file and field for a NaN/Inf feature (with its row and
    ///   feature), a token id outside the vocabulary, or a failed read.
    public func loadInputs() throws -> SequenceInputs {
        switch inputKind {
        case .features:
            let rows = try inputs.read(as: Float.self)
            if let bad = rows.firstIndex(where: { !$0.isFinite }) {
                throw DataError.invalid(file: path, field: "/\(name)/inputs[row \(bad / inputDim), feature \(bad % inputDim)]",
                                        expected: "a finite value", found: "\(rows[bad])")
            }
            return .features(rows)
        case .tokens:
            let ids = try inputs.read(as: Int32.self)
            if let bad = ids.firstIndex(where: { $0 < 0 || Int($0) >= vocabSize }) {
                throw DataError.invalid(file: path, field: "/\(name)/inputs[\(bad)]",
                                        expected: "token id < vocab_size \(vocabSize)", found: "\(ids[bad])")
            }
            return .tokens(ids)
        }
    }

    /// Like `loadInputs()`, with feature rows normalized by `normalization` ((x − mean) / std)
    /// when it is given; token inputs are returned as they are.
    public func loadInputs(normalizedBy normalization: FeatureNormalization?) throws -> SequenceInputs {
        let loaded = try loadInputs()
        guard let normalization, case var .features(rows) = loaded else { return loaded }
        guard normalization.mean.count == inputDim, normalization.std.count == inputDim else {
            throw DataError.argument(name: "normalization", expected: "\(inputDim) means and stds (input_dim)",
                                     found: "\(normalization.mean.count) and \(normalization.std.count)")
        }
        normalization.apply(to: &rows)
        return .features(rows)
    }

    /// Feature inputs of sequence `i`, row-major (length, input_dim), as stored (not checked).
    public func inputs(of i: Int) throws -> [Float] {
        guard i >= 0, i < count else {
            throw DataError.argument(name: "\(path): /\(name) sequence", expected: "index < \(count)", found: "\(i)")
        }
        return try inputs(of: i..<(i + 1)).inputs
    }

    /// Feature inputs of sequences `range` in one read, row-major (steps, input_dim), with their
    /// offsets rebased to start at 0 (not checked; `loadInputs()` checks).
    public func inputs(of range: Range<Int>) throws -> (inputs: [Float], offsets: [Int64]) {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw DataError.argument(name: "\(path): /\(name) sequences", expected: "within 0..<\(count)",
                                     found: "\(range)")
        }
        guard inputKind == .features else {
            throw DataError.argument(name: "\(path): /\(name) inputs", expected: "feature inputs (use loadInputs())",
                                     found: "token ids")
        }
        let base = offsets[range.lowerBound]
        let rows = Int(base)..<Int(offsets[range.upperBound])
        return (try inputs.readRows(rows, as: Float.self), offsets[range.lowerBound...range.upperBound].map { $0 - base })
    }
}
