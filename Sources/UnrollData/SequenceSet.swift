// Dataset format v2 (v1 still read; see TokenDataset.swift), layout `sequences`: independent, possibly ragged sequences with one target
// each (parity, adding problem). Per split group: `inputs` float32 (total_steps, input_dim),
// `offsets` int64 (N+1; sequence i is rows offsets[i]..<offsets[i+1]), `targets` int32 class ids or
// float32 values (N, target_dim); every dataset chunked with Fletcher32 checksums (v1 wrote
// `offsets` and `targets` unchunked). Writer (atomic) and validating reader.
import Foundation

/// Targets of one split.
public enum SequenceTargets: Sendable, Equatable {
    /// Class ids, row-major (N, target_dim).
    case classes([Int32])
    /// Real values, row-major (N, target_dim).
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

/// One split of a sequence set, in memory.
public struct SequenceSplitContent: Sendable, Equatable {
    /// Row-major (total_steps, input_dim).
    public var inputs: [Float]
    /// N+1 row offsets, starting at 0, non-decreasing, ending at total_steps.
    public var offsets: [Int64]
    public var targets: SequenceTargets

    public init(inputs: [Float], offsets: [Int64], targets: SequenceTargets) {
        self.inputs = inputs
        self.offsets = offsets
        self.targets = targets
    }
}

/// Everything a sequence-set file holds.
public struct SequenceSetContent: Sendable {
    /// Name of the task (e.g. `parity`).
    public var task: String
    public var inputDim: Int
    public var targetDim: Int
    /// Number of classes for class targets; ignored for values.
    public var numClasses: Int
    /// Keys are `DatasetFormat.splits`.
    public var splits: [String: SequenceSplitContent]
    public var extraAttributes: [String: AttributeValue]

    public init(task: String, inputDim: Int, targetDim: Int, numClasses: Int = 0,
                splits: [String: SequenceSplitContent], extraAttributes: [String: AttributeValue] = [:]) {
        self.task = task
        self.inputDim = inputDim
        self.targetDim = targetDim
        self.numClasses = numClasses
        self.splits = splits
        self.extraAttributes = extraAttributes
    }
}

/// Writes sequence-set files.
public enum SequenceSetWriter {
    /// Writes `content` to `path` atomically.
    /// - Throws: `DataError.argument` if shapes or offsets are inconsistent; I/O errors otherwise.
    public static func write(_ content: SequenceSetContent, to path: String,
                             failureHook: AtomicFile.FailureHook? = nil) throws {
        guard content.inputDim >= 1, content.targetDim >= 1 else {
            throw DataError.argument(name: "input_dim/target_dim", expected: "≥ 1",
                                     found: "\(content.inputDim)/\(content.targetDim)")
        }
        var kind: String?
        for name in DatasetFormat.splits {
            guard let split = content.splits[name] else {
                throw DataError.argument(name: "split \(name)", expected: "present", found: "missing")
            }
            let n = split.offsets.count - 1
            guard n >= 1, split.offsets.first == 0, split.offsets.last == Int64(split.inputs.count / content.inputDim),
                  split.inputs.count % content.inputDim == 0,
                  zip(split.offsets, split.offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                throw DataError.argument(name: "split \(name) offsets",
                                         expected: "≥ 2 non-decreasing offsets from 0 to the number of input rows",
                                         found: "\(split.offsets.count) offsets for \(split.inputs.count / content.inputDim) rows")
            }
            guard split.targets.count == n * content.targetDim else {
                throw DataError.argument(name: "split \(name) targets", expected: "\(n * content.targetDim) values",
                                         found: "\(split.targets.count)")
            }
            if kind == nil { kind = split.targets.kindName }
            guard kind == split.targets.kindName else {
                throw DataError.argument(name: "split \(name) targets", expected: "\(kind!) targets like the other splits",
                                         found: split.targets.kindName)
            }
            if case let .classes(ids) = split.targets,
               let bad = ids.first(where: { $0 < 0 || Int($0) >= content.numClasses }) {
                throw DataError.argument(name: "split \(name) targets", expected: "class ids < \(content.numClasses)",
                                         found: "\(bad)")
            }
        }
        try AtomicFile.write(to: path, failureHook: failureHook) { tmp in
            let file = try H5File.create(tmp)
            try file.setAttribute("format", string: DatasetFormat.name)
            try file.setAttribute("version", Int64(DatasetFormat.version))
            try file.setAttribute("kind", string: "sequences")
            try file.setAttribute("task", string: content.task)
            try file.setAttribute("input_dim", Int64(content.inputDim))
            try file.setAttribute("target_kind", string: kind ?? "value")
            try file.setAttribute("target_dim", Int64(content.targetDim))
            try file.setAttribute("num_classes", Int64(kind == "class" ? content.numClasses : 0))
            for name in DatasetFormat.splits {
                let split = content.splits[name]!
                let rows = split.inputs.count / content.inputDim
                try file.setAttribute("\(name)_sequences", Int64(split.offsets.count - 1))
                try file.setAttribute("\(name)_steps", Int64(rows))
                let group = try file.createGroup(name)
                try group.write("inputs", split.inputs, shape: [rows, content.inputDim],
                                chunk: [4096, content.inputDim], fletcher32: true)
                try group.write("offsets", split.offsets, chunk: [8192], fletcher32: true)
                let n = split.offsets.count - 1
                let chunk = [4096, content.targetDim]
                switch split.targets {
                case let .classes(ids): try group.write("targets", ids, shape: [n, content.targetDim], chunk: chunk, fletcher32: true)
                case let .values(v): try group.write("targets", v, shape: [n, content.targetDim], chunk: chunk, fletcher32: true)
                }
            }
            try file.setAttributes(content.extraAttributes)
            try file.close()
        }
    }
}

/// An open, validated sequence-set file.
public final class SequenceSet {
    public let path: String
    public let task: String
    public let inputDim: Int
    public let targetDim: Int
    /// `class` or `value`.
    public let targetKind: String
    /// Number of classes (0 for value targets).
    public let numClasses: Int
    let file: H5File

    /// Opens `path` and checks format, version, `kind` = "sequences" and the root attributes.
    /// Splits are checked when opened with `split(_:)`.
    public init(path: String) throws {
        self.path = path
        file = try openDatasetFile(path, kind: "sequences")
        task = try requireString(file, "task")
        inputDim = try requireInt(file, "input_dim")
        targetDim = try requireInt(file, "target_dim")
        targetKind = try requireString(file, "target_kind")
        numClasses = try requireInt(file, "num_classes")
        guard inputDim >= 1 else {
            throw DataError.invalid(file: path, field: "attribute 'input_dim'", expected: "≥ 1", found: "\(inputDim)")
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
    }

    /// Opens and validates one split (offsets, shapes, dtypes, class ids).
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
        guard inputs.elementType == .float32, inputs.shape.count == 2, inputs.shape[1] == inputDim else {
            throw DataError.invalid(file: path, field: "/\(name)/inputs", expected: "float32 (steps, \(inputDim))",
                                    found: "\(inputs.elementType) shape \(inputs.shape)")
        }
        let offsetsSet = try group.openDataset("offsets")
        guard offsetsSet.elementType == .int64, offsetsSet.shape.count == 1, offsetsSet.count >= 2 else {
            throw DataError.invalid(file: path, field: "/\(name)/offsets", expected: "int64 (N+1) with N ≥ 1",
                                    found: "\(offsetsSet.elementType) shape \(offsetsSet.shape)")
        }
        let offsets = try offsetsSet.read(as: Int64.self)
        guard offsets.first == 0, offsets.last == Int64(inputs.shape[0]),
              zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw DataError.invalid(file: path, field: "/\(name)/offsets",
                                    expected: "non-decreasing from 0 to \(inputs.shape[0]) (rows of inputs)",
                                    found: "first \(offsets.first!), last \(offsets.last!)")
        }
        let n = offsets.count - 1
        let targetsSet = try group.openDataset("targets")
        let wantType: H5ElementType = targetKind == "class" ? .int32 : .float32
        guard targetsSet.elementType == wantType, targetsSet.shape == [n, targetDim] else {
            throw DataError.invalid(file: path, field: "/\(name)/targets", expected: "\(wantType) (\(n), \(targetDim))",
                                    found: "\(targetsSet.elementType) shape \(targetsSet.shape)")
        }
        let targets: SequenceTargets
        if targetKind == "class" {
            let ids = try targetsSet.read(as: Int32.self)
            if let bad = ids.firstIndex(where: { $0 < 0 || Int($0) >= numClasses }) {
                throw DataError.invalid(file: path, field: "/\(name)/targets[\(bad / targetDim)]",
                                        expected: "class id < num_classes \(numClasses)", found: "\(ids[bad])")
            }
            targets = .classes(ids)
        } else {
            targets = .values(try targetsSet.read(as: Float.self))
        }
        return SequenceSplit(name: name, inputs: inputs, offsets: offsets, targets: targets, inputDim: inputDim,
                             targetDim: targetDim)
    }
}

/// One split of a sequence set: offsets and targets in memory, inputs read per sequence.
public final class SequenceSplit {
    public let name: String
    /// N+1 offsets into the input rows.
    public let offsets: [Int64]
    /// All targets, row-major (N, target_dim).
    public let targets: SequenceTargets
    public let inputDim: Int
    public let targetDim: Int
    let inputs: H5Dataset

    init(name: String, inputs: H5Dataset, offsets: [Int64], targets: SequenceTargets, inputDim: Int, targetDim: Int) {
        self.name = name
        self.inputs = inputs
        self.offsets = offsets
        self.targets = targets
        self.inputDim = inputDim
        self.targetDim = targetDim
    }

    /// Number of sequences.
    public var count: Int { offsets.count - 1 }

    /// Steps of sequence `i`.
    public func length(of i: Int) -> Int { Int(offsets[i + 1] - offsets[i]) }

    /// Inputs of sequence `i`, row-major (length, input_dim).
    public func inputs(of i: Int) throws -> [Float] {
        guard i >= 0, i < count else {
            throw DataError.argument(name: "\(inputs.file.path): /\(name) sequence", expected: "index < \(count)",
                                     found: "\(i)")
        }
        return try inputs.readRows(Int(offsets[i])..<Int(offsets[i + 1]), as: Float.self)
    }

    /// Inputs of sequences `range` in one read, row-major (steps, input_dim), with their
    /// offsets rebased to start at 0.
    public func inputs(of range: Range<Int>) throws -> (inputs: [Float], offsets: [Int64]) {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw DataError.argument(name: "\(inputs.file.path): /\(name) sequences", expected: "within 0..<\(count)",
                                     found: "\(range)")
        }
        let base = offsets[range.lowerBound]
        let rows = Int(base)..<Int(offsets[range.upperBound])
        return (try inputs.readRows(rows, as: Float.self), offsets[range.lowerBound...range.upperBound].map { $0 - base })
    }
}
