// Sequence sets in memory and their writer: layout `sequences`, version 2 (DatasetFormat.md, "Layout
// `sequences`"). Inputs are float feature rows or token ids; targets are one per sequence or one
// per step, class ids or real values; optional class names, vocabulary and per-feature train
// statistics. `SequenceSetWriter.write` checks everything `SequenceSet` checks, then writes atomically.
import Foundation

/// Inputs of one split, all sequences back to back.
public enum SequenceInputs: Sendable, Equatable {
    /// Feature rows, row-major (total_steps, input_dim).
    case features([Float])
    /// Token ids (total_steps), each < the vocabulary size.
    case tokens([Int32])

    /// `features` or `tokens`.
    public var kind: SequenceInputKind {
        switch self {
        case .features: return .features
        case .tokens: return .tokens
        }
    }

    /// Number of scalars (rows × input_dim for features, steps for tokens).
    var scalarCount: Int {
        switch self {
        case let .features(f): return f.count
        case let .tokens(t): return t.count
        }
    }
}

/// What the inputs of a sequence set are (root attribute `input_kind`).
public enum SequenceInputKind: String, Sendable, CaseIterable {
    /// Token ids into `/vocab` (int32, one per step).
    case tokens
    /// Float feature vectors (float32, input_dim per step).
    case features
}

/// Targets of one split.
public enum SequenceTargets: Sendable, Equatable {
    /// Class ids, row-major (N, target_dim), or (total_steps, target_dim) for per-step targets.
    case classes([Int32])
    /// Real values, row-major (N, target_dim), or (total_steps, target_dim) for per-step targets.
    case values([Float])

    /// `class` or `value`, as stored in the `target_kind` attribute.
    public var kindName: String {
        switch self {
        case .classes: return "class"
        case .values: return "value"
        }
    }

    var count: Int {
        switch self {
        case let .classes(c): return c.count
        case let .values(v): return v.count
        }
    }
}

/// Per-feature statistics of the training inputs, applied as (x − mean) / std.
public struct FeatureNormalization: Sendable, Equatable {
    /// Mean per feature (input_dim).
    public var mean: [Float]
    /// Standard deviation per feature (input_dim), every entry finite and > 0.
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    /// Population mean and standard deviation per feature of `rows` (row-major, `dim` columns),
    /// accumulated in double precision. A feature whose standard deviation is below 1e-6 (constant
    /// in train) gets std 1, so it is only centred (scikit-learn's `StandardScaler` convention).
    /// - Precondition: `rows.count` is a positive multiple of `dim`.
    public static func statistics(of rows: [Float], dim: Int) -> FeatureNormalization {
        precondition(dim >= 1 && rows.count >= dim && rows.count % dim == 0, "rows must be (n ≥ 1, dim)")
        let n = rows.count / dim
        var sum = [Double](repeating: 0, count: dim)
        for r in 0..<n { for f in 0..<dim { sum[f] += Double(rows[r * dim + f]) } }
        let mean = sum.map { $0 / Double(n) }
        var squares = [Double](repeating: 0, count: dim)
        for r in 0..<n {
            for f in 0..<dim {
                let d = Double(rows[r * dim + f]) - mean[f]
                squares[f] += d * d
            }
        }
        let std = squares.map { ($0 / Double(n)).squareRoot() }.map { $0 < 1e-6 ? 1 : Float($0) }
        return FeatureNormalization(mean: mean.map { Float($0) }, std: std)
    }

    /// Applies (x − mean) / std in place to row-major rows of `mean.count` columns.
    public func apply(to rows: inout [Float]) {
        let dim = mean.count
        precondition(dim >= 1 && rows.count % dim == 0, "rows must have \(dim) columns")
        rows.withUnsafeMutableBufferPointer { b in
            for i in 0..<b.count {
                let f = i % dim
                b[i] = (b[i] - mean[f]) / std[f]
            }
        }
    }
}

/// One split of a sequence set, in memory.
public struct SequenceSplitContent: Sendable, Equatable {
    /// Features (total_steps, input_dim) or tokens (total_steps).
    public var inputs: SequenceInputs
    /// N+1 row offsets: 0, strictly increasing (no empty sequence), ending at total_steps.
    public var offsets: [Int64]
    /// (N, target_dim), or (total_steps, target_dim) when the set's targets are per step.
    public var targets: SequenceTargets

    public init(inputs: SequenceInputs, offsets: [Int64], targets: SequenceTargets) {
        self.inputs = inputs
        self.offsets = offsets
        self.targets = targets
    }

    /// A split with float feature inputs, row-major (total_steps, input_dim).
    public init(inputs: [Float], offsets: [Int64], targets: SequenceTargets) {
        self.init(inputs: .features(inputs), offsets: offsets, targets: targets)
    }
}

/// Everything a sequence-set file holds.
public struct SequenceSetContent: Sendable {
    /// Name of the task (e.g. `parity`, or the input's name for `prepare sequences`).
    public var task: String
    /// Features per step; 1 for token inputs.
    public var inputDim: Int
    public var targetDim: Int
    /// Number of classes for class targets; ignored for values.
    public var numClasses: Int
    /// Keys are `DatasetFormat.splits`.
    public var splits: [String: SequenceSplitContent]
    /// Class names (`/classes`), `numClasses` distinct non-empty strings; empty = "0", "1", ….
    public var classNames: [String]
    /// Token inputs: the vocabulary (`/vocab`), entry i is the text of token id i.
    public var vocabulary: [String]
    /// Token inputs: how the text was cut into tokens.
    public var level: TokenLevel?
    /// Token inputs: the unknown token, if the vocabulary has one.
    public var unk: String?
    /// Targets per input step (tagging): (total_steps, target_dim) instead of (N, target_dim).
    public var perStep: Bool
    /// Feature inputs: train statistics stored in `/normalization` (nil = none stored).
    public var normalization: FeatureNormalization?
    public var extraAttributes: [String: AttributeValue]

    public init(task: String, inputDim: Int, targetDim: Int, numClasses: Int = 0,
                splits: [String: SequenceSplitContent], classNames: [String] = [], vocabulary: [String] = [],
                level: TokenLevel? = nil, unk: String? = nil, perStep: Bool = false,
                normalization: FeatureNormalization? = nil, extraAttributes: [String: AttributeValue] = [:]) {
        self.task = task
        self.inputDim = inputDim
        self.targetDim = targetDim
        self.numClasses = numClasses
        self.splits = splits
        self.classNames = classNames
        self.vocabulary = vocabulary
        self.level = level
        self.unk = unk
        self.perStep = perStep
        self.normalization = normalization
        self.extraAttributes = extraAttributes
    }
}

/// Writes sequence-set files (layout `sequences`, version `DatasetFormat.sequencesVersion`).
public enum SequenceSetWriter {
    /// Writes `content` to `path` atomically.
    /// - Throws: `DataError.argument` (one line naming the split and field) if shapes, offsets,
    ///   kinds, class ids, token ids, class names or statistics are inconsistent, or a feature or
    ///   value is NaN/Inf; I/O errors otherwise. Nothing is written then.
    public static func write(_ content: SequenceSetContent, to path: String,
                             failureHook: AtomicFile.FailureHook? = nil) throws {
        let (inputKind, targetKind) = try check(content)
        let dim = content.inputDim
        try AtomicFile.write(to: path, failureHook: failureHook) { tmp in
            let file = try H5File.create(tmp)
            try file.setAttribute("format", string: DatasetFormat.name)
            try file.setAttribute("version", Int64(DatasetFormat.sequencesVersion))
            try file.setAttribute("kind", string: "sequences")
            try file.setAttribute("task", string: content.task)
            try file.setAttribute("input_kind", string: inputKind.rawValue)
            try file.setAttribute("input_dim", Int64(dim))
            try file.setAttribute("target_kind", string: targetKind)
            try file.setAttribute("target_dim", Int64(content.targetDim))
            try file.setAttribute("num_classes", Int64(targetKind == "class" ? content.numClasses : 0))
            try file.setAttribute("per_step", Int64(content.perStep ? 1 : 0))
            if inputKind == .tokens {
                try file.setAttribute("level", string: content.level?.rawValue ?? "")
                try file.setAttribute("vocab_size", Int64(content.vocabulary.count))
                try file.setAttribute("unk", string: content.unk ?? "")
                try file.writeStrings("vocab", content.vocabulary)
            }
            if targetKind == "class" {
                let names = content.classNames.isEmpty ? (0..<content.numClasses).map(String.init) : content.classNames
                try file.writeStrings("classes", names)
            }
            if let stats = content.normalization {
                let group = try file.createGroup("normalization")
                try group.write("mean", stats.mean, chunk: [stats.mean.count], fletcher32: true)
                try group.write("std", stats.std, chunk: [stats.std.count], fletcher32: true)
            }
            for name in DatasetFormat.splits {
                let split = content.splits[name]!
                let n = split.offsets.count - 1
                let rows = Int(split.offsets[n])
                try file.setAttribute("\(name)_sequences", Int64(n))
                try file.setAttribute("\(name)_steps", Int64(rows))
                let group = try file.createGroup(name)
                switch split.inputs {
                case let .features(values):
                    try group.write("inputs", values, shape: [rows, dim], chunk: [4096, dim], fletcher32: true)
                case let .tokens(ids):
                    try group.write("inputs", ids, chunk: [DatasetFormat.tokenChunk], fletcher32: true)
                }
                // Every dataset checksummed (version 1 wrote offsets and targets unchunked).
                try group.write("offsets", split.offsets, chunk: [8192], fletcher32: true)
                let chunk = [4096, content.targetDim]
                let targetRows = content.perStep ? rows : n
                switch split.targets {
                case let .classes(ids):
                    try group.write("targets", ids, shape: [targetRows, content.targetDim], chunk: chunk, fletcher32: true)
                case let .values(v):
                    try group.write("targets", v, shape: [targetRows, content.targetDim], chunk: chunk, fletcher32: true)
                }
            }
            try file.setAttributes(content.extraAttributes)
            try file.close()
        }
    }

    /// Checks `content`; returns its input kind and target kind name.
    private static func check(_ content: SequenceSetContent) throws -> (SequenceInputKind, String) {
        guard content.inputDim >= 1, content.targetDim >= 1 else {
            throw DataError.argument(name: "input_dim/target_dim", expected: "≥ 1",
                                     found: "\(content.inputDim)/\(content.targetDim)")
        }
        var inputKind: SequenceInputKind?
        var targetKind: String?
        for name in DatasetFormat.splits {
            guard let split = content.splits[name] else {
                throw DataError.argument(name: "split \(name)", expected: "present", found: "missing")
            }
            if inputKind == nil { inputKind = split.inputs.kind }
            if targetKind == nil { targetKind = split.targets.kindName }
            guard inputKind == split.inputs.kind else {
                throw DataError.argument(name: "split \(name) inputs", expected: "\(inputKind!.rawValue) like the other splits",
                                         found: split.inputs.kind.rawValue)
            }
            guard targetKind == split.targets.kindName else {
                throw DataError.argument(name: "split \(name) targets", expected: "\(targetKind!) targets like the other splits",
                                         found: split.targets.kindName)
            }
            let width = split.inputs.kind == .features ? content.inputDim : 1
            let rows = split.inputs.scalarCount / width
            let n = split.offsets.count - 1
            guard split.inputs.scalarCount % width == 0 else {
                throw DataError.argument(name: "split \(name) inputs", expected: "a multiple of input_dim \(width) values",
                                         found: "\(split.inputs.scalarCount)")
            }
            guard n >= 1, split.offsets.first == 0, split.offsets.last == Int64(rows) else {
                throw DataError.argument(name: "split \(name) offsets",
                                         expected: "≥ 2 offsets from 0 to the number of input rows \(rows)",
                                         found: "\(split.offsets.count) offsets, last \(split.offsets.last.map(String.init) ?? "none")")
            }
            if let bad = split.offsets.indices.dropFirst().first(where: { split.offsets[$0] <= split.offsets[$0 - 1] }).map({ $0 - 1 }) {
                throw DataError.argument(name: "split \(name) offsets[\(bad + 1)]",
                                         expected: "increasing offsets (no empty sequence)",
                                         found: "\(split.offsets[bad + 1]) after \(split.offsets[bad])")
            }
            let targetRows = content.perStep ? rows : n
            guard split.targets.count == targetRows * content.targetDim else {
                throw DataError.argument(name: "split \(name) targets",
                                         expected: "\(targetRows * content.targetDim) values (\(targetRows) × \(content.targetDim))",
                                         found: "\(split.targets.count)")
            }
            switch split.targets {
            case let .classes(ids):
                if let bad = ids.firstIndex(where: { $0 < 0 || Int($0) >= content.numClasses }) {
                    throw DataError.argument(name: "split \(name) targets[\(bad / content.targetDim)]",
                                             expected: "class id < num_classes \(content.numClasses)", found: "\(ids[bad])")
                }
            case let .values(v):
                if let bad = v.firstIndex(where: { !$0.isFinite }) {
                    throw DataError.argument(name: "split \(name) targets[\(bad / content.targetDim)]",
                                             expected: "a finite value", found: "\(v[bad])")
                }
            }
            switch split.inputs {
            case let .features(f):
                if let bad = f.firstIndex(where: { !$0.isFinite }) {
                    throw DataError.argument(name: "split \(name) inputs[row \(bad / width), feature \(bad % width)]",
                                             expected: "a finite value", found: "\(f[bad])")
                }
            case let .tokens(t):
                if let bad = t.firstIndex(where: { $0 < 0 || Int($0) >= content.vocabulary.count }) {
                    throw DataError.argument(name: "split \(name) inputs[\(bad)]",
                                             expected: "token id < vocabulary size \(content.vocabulary.count)",
                                             found: "\(t[bad])")
                }
            }
        }
        if inputKind == .tokens {
            guard content.inputDim == 1 else {
                throw DataError.argument(name: "input_dim", expected: "1 for token inputs", found: "\(content.inputDim)")
            }
            guard content.level != nil, !content.vocabulary.isEmpty else {
                throw DataError.argument(name: "vocabulary/level", expected: "a vocabulary and a level for token inputs",
                                         found: "\(content.vocabulary.count) entries, level \(content.level?.rawValue ?? "none")")
            }
            guard content.normalization == nil else {
                throw DataError.argument(name: "normalization", expected: "none for token inputs", found: "statistics")
            }
        } else if !content.vocabulary.isEmpty {
            throw DataError.argument(name: "vocabulary", expected: "none for feature inputs",
                                     found: "\(content.vocabulary.count) entries")
        }
        if targetKind == "class" {
            guard content.numClasses >= 1 else {
                throw DataError.argument(name: "num_classes", expected: "≥ 1 for class targets", found: "\(content.numClasses)")
            }
            if !content.classNames.isEmpty {
                try checkClassNames(content.classNames, numClasses: content.numClasses) { field, expected, found in
                    DataError.argument(name: field, expected: expected, found: found)
                }
            }
        }
        if let stats = content.normalization {
            guard stats.mean.count == content.inputDim, stats.std.count == content.inputDim else {
                throw DataError.argument(name: "normalization", expected: "\(content.inputDim) means and stds",
                                         found: "\(stats.mean.count) and \(stats.std.count)")
            }
            if let bad = stats.mean.indices.first(where: { !stats.mean[$0].isFinite || !(stats.std[$0] > 0)
                || !stats.std[$0].isFinite }) {
                throw DataError.argument(name: "normalization feature \(bad)", expected: "finite mean and std > 0",
                                         found: "mean \(stats.mean[bad]), std \(stats.std[bad])")
            }
        }
        return (inputKind!, targetKind!)
    }
}

/// Checks that `names` are `numClasses` distinct, non-empty names; `error` builds the error.
func checkClassNames(_ names: [String], numClasses: Int,
                     error: (_ field: String, _ expected: String, _ found: String) -> DataError) throws {
    guard names.count == numClasses else {
        throw error("/classes", "\(numClasses) class names (num_classes)", "\(names.count)")
    }
    var seen: [String: Int] = [:]
    for (i, name) in names.enumerated() {
        guard !name.isEmpty else { throw error("/classes[\(i)]", "a non-empty class name", "\"\"") }
        if let first = seen[name] {
            throw error("/classes[\(i)]", "distinct class names", "\(quoted(name)) again (first at \(first))")
        }
        seen[name] = i
    }
}
