// Validating reader of layout `pairs` (DatasetFormat.md, "Layout `pairs`"): source → target token
// sequences for sequence-to-sequence tasks. Per split group: `source` and `target` int32 token ids,
// each with its own int64 `*_offsets` (N+1); separate `/source_vocab` and `/target_vocab`, both
// starting with `<unk>`, `<bos>`, `<eos>` at ids 0, 1, 2. Everything is read and checked on open.
import Foundation

/// An open, validated pair file (layout `pairs`): every split is read and checked by `init`.
public struct PairSet: Sendable {
    /// The specials every pair vocabulary starts with, at these ids.
    public static let specials = ["<unk>", "<bos>", "<eos>"]
    /// Id of `<unk>` (symbols outside the training vocabulary) in both vocabularies.
    public static let unkID: Int32 = 0
    /// Id of `<bos>` (begin of sequence; not stored in the splits, a task adds it).
    public static let bosID: Int32 = 1
    /// Id of `<eos>` (end of sequence; not stored in the splits, a task adds it).
    public static let eosID: Int32 = 2

    /// Path as given.
    public let path: String
    /// The file's `version` attribute.
    public let version: Int
    /// The `task` attribute (e.g. `reverse`, `execute`, or the input's name for `prepare pairs`).
    public let task: String
    /// How the text was cut into tokens.
    public let level: TokenLevel
    /// `/source_vocab`: entry i is the text of source token id i; starts with `specials`.
    public let sourceVocabulary: [String]
    /// `/target_vocab`: entry i is the text of target token id i; starts with `specials`.
    public let targetVocabulary: [String]
    /// Pairs per split (keys `DatasetFormat.splits`).
    public let counts: [String: Int]
    /// Longest source sequence over all splits, in tokens.
    public let longestSource: Int
    /// Longest target sequence over all splits, in tokens (without `<bos>`/`<eos>`).
    public let longestTarget: Int
    private let splits: [String: PairSplit]
    private let attributeList: [(String, String)]

    /// Opens `path` and validates all of it: format, version, `kind` = "pairs", `level`, both
    /// vocabularies (their sizes, the three specials first, distinct entries) and every split
    /// (dtypes, offsets from 0 strictly increasing to the token count, token ids in range).
    /// - Throws: `DataError` with one line naming the file and the field.
    public init(path: String) throws {
        self.path = path
        let file = try openDatasetFile(path, kind: "pairs", versions: DatasetFormat.pairsVersion...DatasetFormat.pairsVersion)
        version = try requireInt(file, "version")
        task = try requireString(file, "task")
        let levelName = try requireString(file, "level")
        guard let level = TokenLevel(rawValue: levelName) else {
            throw DataError.invalid(file: path, field: "attribute 'level'", expected: "char, byte or word",
                                    found: quoted(levelName))
        }
        self.level = level
        sourceVocabulary = try Self.readVocabulary(file, "source")
        targetVocabulary = try Self.readVocabulary(file, "target")
        var splits: [String: PairSplit] = [:]
        for name in DatasetFormat.splits {
            splits[name] = try Self.readSplit(file, name, sourceVocab: sourceVocabulary.count,
                                              targetVocab: targetVocabulary.count)
        }
        self.splits = splits
        counts = splits.mapValues(\.count)
        longestSource = splits.values.map(\.longestSource).max() ?? 0
        longestTarget = splits.values.map(\.longestTarget).max() ?? 0
        attributeList = try attributeTexts(file)
        try file.close()
    }

    /// Opens and validates `path` (the same as `init(path:)`).
    /// - Throws: `DataError` with one line naming the file and the field.
    public static func open(path: String) throws -> PairSet {
        try PairSet(path: path)
    }

    /// One split, already validated.
    /// - Throws: `DataError.argument` if `name` is not one of `DatasetFormat.splits`.
    public func split(_ name: String) throws -> PairSplit {
        guard let split = splits[name] else {
            throw DataError.argument(name: "split", expected: DatasetFormat.splits.joined(separator: ", "),
                                     found: quoted(name))
        }
        return split
    }

    /// Root attribute names and values as text, strings quoted (for `unroll inspect`).
    public func attributes() -> [(String, String)] {
        attributeList
    }

    private static func readVocabulary(_ file: H5File, _ side: String) throws -> [String] {
        let path = file.path
        let size = try requireInt(file, "\(side)_vocab_size")
        guard size >= specials.count else {
            throw DataError.invalid(file: path, field: "attribute '\(side)_vocab_size'",
                                    expected: "≥ \(specials.count) (the specials)", found: "\(size)")
        }
        let name = "\(side)_vocab"
        guard try file.contains(name) else {
            throw DataError.invalid(file: path, field: "/\(name)", expected: "a string dataset", found: "missing")
        }
        let dataset = try file.openDataset(name)
        guard dataset.elementType == .string, dataset.shape == [size] else {
            throw DataError.invalid(file: path, field: "/\(name)", expected: "\(size) strings (\(side)_vocab_size)",
                                    found: "\(dataset.elementType) shape \(dataset.shape)")
        }
        let vocabulary = try dataset.readStrings()
        if let problem = checkVocabulary(vocabulary) {
            throw DataError.invalid(file: path, field: "/\(name)\(problem.index)", expected: problem.expected,
                                    found: problem.found)
        }
        return vocabulary
    }

    /// Why `vocabulary` is not a pair vocabulary (specials first, then distinct non-empty
    /// symbols), or nil. `index` is `[i]` of the offending entry.
    static func checkVocabulary(_ vocabulary: [String]) -> (index: String, expected: String, found: String)? {
        for (i, special) in specials.enumerated() where vocabulary.count <= i || vocabulary[i] != special {
            return ("[\(i)]", quoted(special) + " (ids 0, 1, 2 are <unk>, <bos>, <eos>)",
                    vocabulary.count <= i ? "missing" : quoted(vocabulary[i]))
        }
        var seen: [String: Int] = [:]
        for (i, entry) in vocabulary.enumerated() {
            guard !entry.isEmpty else { return ("[\(i)]", "a non-empty symbol", "\"\"") }
            if let first = seen[entry] { return ("[\(i)]", "distinct entries", "\(quoted(entry)) again (first at \(first))") }
            seen[entry] = i
        }
        return nil
    }

    private static func readSplit(_ file: H5File, _ name: String, sourceVocab: Int, targetVocab: Int) throws -> PairSplit {
        let path = file.path
        guard try file.contains(name) else {
            throw DataError.invalid(file: path, field: "/\(name)", expected: "a split group", found: "missing")
        }
        let group = try file.openGroup(name)
        func read<T: H5Scalar>(_ member: String, _ type: H5ElementType, _ what: String, as _: T.Type) throws -> [T] {
            guard try group.contains(member) else {
                throw DataError.invalid(file: path, field: "/\(name)/\(member)", expected: "a dataset", found: "missing")
            }
            let dataset = try group.openDataset(member)
            guard dataset.elementType == type, dataset.shape.count == 1 else {
                throw DataError.invalid(file: path, field: "/\(name)/\(member)", expected: what,
                                        found: "\(dataset.elementType) shape \(dataset.shape)")
            }
            return try dataset.read(as: T.self)
        }
        let split = PairSplit(
            sourceTokens: try read("source", .int32, "int32 token ids (tokens)", as: Int32.self),
            sourceOffsets: try read("source_offsets", .int64, "int64 offsets (N+1)", as: Int64.self),
            targetTokens: try read("target", .int32, "int32 token ids (tokens)", as: Int32.self),
            targetOffsets: try read("target_offsets", .int64, "int64 offsets (N+1)", as: Int64.self))
        if let problem = split.problem(sourceVocab: sourceVocab, targetVocab: targetVocab) {
            throw DataError.invalid(file: path, field: "/\(name)/\(problem.field)", expected: problem.expected,
                                    found: problem.found)
        }
        return split
    }
}

/// One split of a pair file: N pairs, each a non-empty source and a non-empty target token
/// sequence (targets without `<bos>`/`<eos>`), stored back to back with offsets.
public struct PairSplit: Sendable, Equatable {
    /// All source tokens, pair after pair.
    public let sourceTokens: [Int32]
    /// N+1 offsets into `sourceTokens`: 0, strictly increasing, ending at its count.
    public let sourceOffsets: [Int64]
    /// All target tokens, pair after pair.
    public let targetTokens: [Int32]
    /// N+1 offsets into `targetTokens`: 0, strictly increasing, ending at its count.
    public let targetOffsets: [Int64]

    /// A split from its arrays (not checked here: `PairSetWriter` and `PairSet` check them).
    public init(sourceTokens: [Int32], sourceOffsets: [Int64], targetTokens: [Int32], targetOffsets: [Int64]) {
        self.sourceTokens = sourceTokens
        self.sourceOffsets = sourceOffsets
        self.targetTokens = targetTokens
        self.targetOffsets = targetOffsets
    }

    /// A split from its pairs, in order.
    public init(pairs: [(source: [Int32], target: [Int32])]) {
        var source: [Int32] = [], target: [Int32] = []
        var sourceOffsets: [Int64] = [0], targetOffsets: [Int64] = [0]
        for pair in pairs {
            source += pair.source
            target += pair.target
            sourceOffsets.append(Int64(source.count))
            targetOffsets.append(Int64(target.count))
        }
        self.init(sourceTokens: source, sourceOffsets: sourceOffsets, targetTokens: target, targetOffsets: targetOffsets)
    }

    /// Number of pairs N.
    public var count: Int { sourceOffsets.count - 1 }

    /// Source tokens of pair `i` (precondition: 0 ≤ i < count).
    public func source(_ i: Int) -> ArraySlice<Int32> {
        sourceTokens[Int(sourceOffsets[i])..<Int(sourceOffsets[i + 1])]
    }

    /// Target tokens of pair `i`, without `<bos>`/`<eos>` (precondition: 0 ≤ i < count).
    public func target(_ i: Int) -> ArraySlice<Int32> {
        targetTokens[Int(targetOffsets[i])..<Int(targetOffsets[i + 1])]
    }

    /// Longest source sequence, in tokens.
    public var longestSource: Int { Self.longest(sourceOffsets) }

    /// Longest target sequence, in tokens.
    public var longestTarget: Int { Self.longest(targetOffsets) }

    private static func longest(_ offsets: [Int64]) -> Int {
        var best: Int64 = 0
        for i in offsets.indices.dropFirst() { best = max(best, offsets[i] - offsets[i - 1]) }
        return Int(best)
    }

    /// What is wrong with this split (field relative to the split, expectation, finding), or nil.
    func problem(sourceVocab: Int, targetVocab: Int) -> (field: String, expected: String, found: String)? {
        guard sourceOffsets.count >= 2 else {
            return ("source_offsets", "N+1 offsets with N ≥ 1 pairs", "\(sourceOffsets.count) offsets")
        }
        guard targetOffsets.count == sourceOffsets.count else {
            return ("target_offsets", "\(sourceOffsets.count) offsets (as source_offsets)", "\(targetOffsets.count)")
        }
        let sides: [(String, [Int32], [Int64], Int)] = [("source", sourceTokens, sourceOffsets, sourceVocab),
                                                        ("target", targetTokens, targetOffsets, targetVocab)]
        for (side, tokens, offsets, vocab) in sides {
            guard offsets.first == 0, offsets.last == Int64(tokens.count) else {
                return ("\(side)_offsets", "offsets from 0 to \(tokens.count) (tokens in \(side))",
                        "first \(offsets.first!), last \(offsets.last!)")
            }
            if let bad = offsets.indices.dropFirst().first(where: { offsets[$0] <= offsets[$0 - 1] }) {
                return ("\(side)_offsets[\(bad)]", "increasing offsets (no empty \(side))",
                        "\(offsets[bad]) after \(offsets[bad - 1])")
            }
            if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= vocab }) {
                return ("\(side)[\(bad)]", "token id < \(side)_vocab_size \(vocab)", "\(tokens[bad])")
            }
        }
        return nil
    }
}
