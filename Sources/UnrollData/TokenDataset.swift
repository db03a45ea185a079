// Dataset format v2, layout `tokens`: one HDF5 file with the token streams `/train`, `/valid`,
// `/test` (uint8 when the vocabulary has ≤ 256 entries, else int32), the vocabulary `/vocab`
// (UTF-8 strings, index = token id) and root attributes describing it (see DatasetFormat.md).
// v2 files use the checksummed HDF5 1.10 format and store strings without HDF5's global heap
// (`/vocab` is a group of bytes and offsets, string attributes are fixed-length); v1 files
// (variable-length strings, original HDF5 format) are still read.
// `TokenDatasetWriter` writes one atomically; `TokenDataset` opens one and validates it.
import Foundation

/// Names and constants shared by all Unroll dataset files.
public enum DatasetFormat {
    /// Value of the root attribute `format`.
    public static let name = "unroll.dataset"
    /// Value of the root attribute `version` written for layout `tokens` (1: variable-length
    /// strings in the original HDF5 format, still read; 2: checksummed format, no global heap).
    public static let version = 2
    /// Value of the root attribute `version` written for layout `sequences`; versions
    /// 1...`sequencesVersion` are read.
    public static let sequencesVersion = 2
    /// Value of the root attribute `version` written and read for layout `pairs` (its first
    /// version; it uses the checksummed format of version 2 of the other layouts).
    public static let pairsVersion = 2
    /// Value of the root attribute `version` written and read for layout `trees` (its first
    /// version; the checksummed format of version 2 of the other layouts).
    public static let treesVersion = 2
    /// The newest version of any layout (what a file of unknown kind may have).
    static let newestVersion = max(version, sequencesVersion, pairsVersion, treesVersion)
    /// The splits every dataset file holds, in this order.
    public static let splits = ["train", "valid", "test"]
    /// Elements per chunk of a token stream (64 KiB as int32, 16 KiB as uint8).
    public static let tokenChunk = 16384
}

/// What a token is.
public enum TokenLevel: String, CaseIterable, Sendable {
    /// Unicode scalars (not grapheme clusters).
    case char
    /// Raw bytes; vocabulary size 256, token id = byte value.
    case byte
    /// Whitespace-separated words, one `<eos>` per line (PTB convention).
    case word
}

/// An extra root attribute value.
public enum AttributeValue: Sendable, Equatable {
    case string(String)
    case int(Int)
    case double(Double)
}

/// Where one split's text came from.
public struct SourceInfo: Sendable, Equatable {
    /// File name (no directory) or a description such as `synthetic:arith`.
    public var name: String
    /// Lower-case hex SHA-256 of the source bytes; empty for generated data.
    public var sha256: String

    public init(name: String, sha256: String) {
        self.name = name
        self.sha256 = sha256
    }
}

/// Everything a token dataset file holds.
public struct TokenDatasetContent: Sendable {
    public var level: TokenLevel
    /// Entry i is the text of token id i.
    public var vocabulary: [String]
    /// Token ids per split; keys are `DatasetFormat.splits`.
    public var splits: [String: [Int32]]
    /// Source per split (same keys as `splits`).
    public var sources: [String: SourceInfo]
    /// End-of-line token (word level), if any.
    public var eos: String?
    /// Unknown-token string, if the vocabulary has one.
    public var unk: String?
    /// Further root attributes (e.g. the generator of a synthetic corpus).
    public var extraAttributes: [String: AttributeValue]

    public init(level: TokenLevel, vocabulary: [String], splits: [String: [Int32]],
                sources: [String: SourceInfo], eos: String? = nil, unk: String? = nil,
                extraAttributes: [String: AttributeValue] = [:]) {
        self.level = level
        self.vocabulary = vocabulary
        self.splits = splits
        self.sources = sources
        self.eos = eos
        self.unk = unk
        self.extraAttributes = extraAttributes
    }
}

/// Writes token dataset files.
public enum TokenDatasetWriter {
    /// Writes `content` to `path` atomically (never half-written under `path`).
    /// - Throws: `DataError.argument` if a split is missing or empty or holds an id outside the
    ///   vocabulary; `DataError.io`/`.hdf5` for write failures.
    public static func write(_ content: TokenDatasetContent, to path: String,
                             failureHook: AtomicFile.FailureHook? = nil) throws {
        let v = content.vocabulary.count
        guard v > 0 else { throw DataError.argument(name: "vocabulary", expected: "at least 1 entry", found: "0") }
        for name in DatasetFormat.splits {
            guard let tokens = content.splits[name], !tokens.isEmpty else {
                throw DataError.argument(name: "split \(name)", expected: "at least 1 token", found: "none")
            }
            if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= v }) {
                throw DataError.argument(name: "split \(name)[\(bad)]", expected: "token id < vocab size \(v)",
                                         found: "\(tokens[bad])")
            }
        }
        try AtomicFile.write(to: path, failureHook: failureHook) { tmp in
            let file = try H5File.create(tmp)
            try file.setAttribute("format", string: DatasetFormat.name)
            try file.setAttribute("version", Int64(DatasetFormat.version))
            try file.setAttribute("kind", string: "tokens")
            try file.setAttribute("level", string: content.level.rawValue)
            try file.setAttribute("vocab_size", Int64(v))
            try file.setAttribute("eos", string: content.eos ?? "")
            try file.setAttribute("unk", string: content.unk ?? "")
            for name in DatasetFormat.splits {
                let tokens = content.splits[name] ?? []
                try file.setAttribute("\(name)_tokens", Int64(tokens.count))
                let source = content.sources[name] ?? SourceInfo(name: "", sha256: "")
                try file.setAttribute("\(name)_source", string: source.name)
                try file.setAttribute("\(name)_sha256", string: source.sha256)
                let chunk = [DatasetFormat.tokenChunk]
                if v <= 256 {
                    try file.write(name, tokens.map { UInt8(truncatingIfNeeded: $0) }, chunk: chunk, fletcher32: true)
                } else {
                    try file.write(name, tokens, chunk: chunk, fletcher32: true)
                }
            }
            try file.writeStrings("vocab", content.vocabulary)
            try file.setAttributes(content.extraAttributes)
            try file.close()
        }
    }
}

extension H5AttributeHolder {
    /// Writes `attributes` in name order (so equal content gives equal files).
    func setAttributes(_ attributes: [String: AttributeValue]) throws {
        for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
            switch value {
            case let .string(s): try setAttribute(key, string: s)
            case let .int(i): try setAttribute(key, Int64(i))
            case let .double(d): try setAttribute(key, d)
            }
        }
    }
}

/// An open, validated token dataset file (layout `tokens`).
public final class TokenDataset {
    /// Path as given.
    public let path: String
    public let level: TokenLevel
    public let vocabSize: Int
    /// Token count per split (from the datasets' extents).
    public let tokenCounts: [String: Int]
    /// End-of-line token, or nil.
    public let eos: String?
    /// Unknown token, or nil.
    public let unk: String?
    let file: H5File

    /// Opens and validates `path`: it exists, is HDF5, has `format` = "unroll.dataset",
    /// `version` 1 or 2, `kind` = "tokens", a known `level`, `vocab_size` ≥ 1 matching `/vocab`, and
    /// non-empty 1-D uint8/int32 datasets `/train`, `/valid`, `/test`. Token ids are checked
    /// against `vocab_size` as they are read.
    /// - Throws: `DataError` with a one-line message naming the file and field.
    public init(path: String) throws {
        self.path = path
        file = try openDatasetFile(path, kind: "tokens", versions: 1...DatasetFormat.version)
        let levelName = try requireString(file, "level")
        guard let level = TokenLevel(rawValue: levelName) else {
            throw DataError.invalid(file: path, field: "attribute 'level'", expected: "char, byte or word",
                                    found: quoted(levelName))
        }
        self.level = level
        vocabSize = try requireInt(file, "vocab_size")
        guard vocabSize >= 1 else {
            throw DataError.invalid(file: path, field: "attribute 'vocab_size'", expected: "≥ 1", found: "\(vocabSize)")
        }
        guard try file.contains("vocab") else {
            throw DataError.invalid(file: path, field: "/vocab", expected: "a string dataset", found: "missing")
        }
        let vocab = try file.openDataset("vocab")
        guard vocab.elementType == .string, vocab.shape == [vocabSize] else {
            throw DataError.invalid(file: path, field: "/vocab", expected: "\(vocabSize) strings (vocab_size)",
                                    found: "\(vocab.elementType) shape \(vocab.shape)")
        }
        var counts: [String: Int] = [:]
        for name in DatasetFormat.splits {
            let dataset = try openTokenStream(file, name)
            counts[name] = dataset.count
        }
        tokenCounts = counts
        let e = try file.hasAttribute("eos") ? try file.stringAttribute("eos") : ""
        let u = try file.hasAttribute("unk") ? try file.stringAttribute("unk") : ""
        eos = e.isEmpty ? nil : e
        unk = u.isEmpty ? nil : u
    }

    /// The file's format version (its `version` attribute, 1 or 2).
    public func version() throws -> Int {
        try requireInt(file, "version")
    }

    /// The vocabulary; entry i is the text of token id i.
    public func vocabulary() throws -> [String] {
        try file.openDataset("vocab").readStrings()
    }

    /// Opens one split for reading. `chunkCacheBytes` sizes HDF5's chunk cache for it.
    public func split(_ name: String, chunkCacheBytes: Int? = nil) throws -> TokenSplit {
        guard DatasetFormat.splits.contains(name) else {
            throw DataError.argument(name: "split", expected: DatasetFormat.splits.joined(separator: ", "),
                                     found: quoted(name))
        }
        return TokenSplit(name: name, dataset: try openTokenStream(file, name, chunkCacheBytes: chunkCacheBytes),
                          vocabSize: vocabSize)
    }

    /// Root attribute names and values as text, strings quoted (for `unroll inspect`).
    public func attributes() throws -> [(String, String)] {
        try attributeTexts(file)
    }
}

/// One token stream of a `TokenDataset`, read by ranges; every id read is checked to be in
/// `0..<vocabSize`.
public final class TokenSplit {
    public let name: String
    /// Number of tokens.
    public let count: Int
    public let vocabSize: Int
    let dataset: H5Dataset

    init(name: String, dataset: H5Dataset, vocabSize: Int) {
        self.name = name
        self.dataset = dataset
        self.count = dataset.count
        self.vocabSize = vocabSize
    }

    /// File the split belongs to.
    public var path: String { dataset.file.path }

    /// Reads tokens `range`.
    public func read(_ range: Range<Int>) throws -> [Int32] {
        let tokens = try dataset.read(range: range, as: Int32.self)
        try validate(tokens) { range.lowerBound + $0 }
        return tokens
    }

    /// Reads `count` blocks of `block` tokens, block k starting at `start + k * stride`, back to back.
    public func readStrided(start: Int, stride: Int, count: Int, block: Int) throws -> [Int32] {
        let tokens = try [Int32](unsafeUninitializedCapacity: count * block) { buffer, initialized in
            try dataset.readStrided(start: start, stride: stride, count: count, block: block, into: buffer)
            initialized = count * block
        }
        try validate(tokens) { start + ($0 / Swift.max(block, 1)) * stride + $0 % Swift.max(block, 1) }
        return tokens
    }

    /// Reads the whole split chunk by chunk, checking every id (used by `unroll inspect`).
    /// Returns the number of occurrences of each token id.
    public func countTokens() throws -> [Int] {
        var histogram = [Int](repeating: 0, count: vocabSize)
        let step = DatasetFormat.tokenChunk * 64
        var start = 0
        while start < count {
            let end = Swift.min(count, start + step)
            for t in try read(start..<end) { histogram[Int(t)] += 1 }
            start = end
        }
        return histogram
    }

    private func validate(_ tokens: [Int32], position: (Int) -> Int) throws {
        let v = Int32(truncatingIfNeeded: vocabSize)
        if let bad = tokens.firstIndex(where: { $0 < 0 || $0 >= v }) {
            throw DataError.invalid(file: path, field: "/\(name)[\(position(bad))]",
                                    expected: "token id < vocab_size \(vocabSize)", found: "\(tokens[bad])")
        }
    }
}

// MARK: - Shared validation helpers

/// Root attributes as (name, value text) pairs, in name order; strings are quoted.
func attributeTexts(_ holder: some H5AttributeHolder) throws -> [(String, String)] {
    try holder.attributeNames().map { name in
        switch try holder.attributeType(name) {
        case .string: return (name, quoted(try holder.stringAttribute(name)))
        case .integer: return (name, String(try holder.intAttribute(name)))
        case .float: return (name, String(try holder.doubleAttribute(name)))
        case .other: return (name, "(unsupported type)")
        }
    }
}

/// Opens a dataset file and checks `format`, `version` (one of `versions`) and (unless nil) `kind`.
func openDatasetFile(_ path: String, kind: String?, versions: ClosedRange<Int>) throws -> H5File {
    var info = stat()
    guard stat(path, &info) == 0 else { throw DataError.posix(path, "open dataset") }
    // Refused from stat alone: opening a FIFO would block.
    if let kind = H5File.nonRegularKind(path) {
        throw DataError.invalid(file: path, field: "file", expected: "a regular file", found: kind)
    }
    guard H5File.isHDF5(path) else {
        throw DataError.invalid(file: path, field: "file", expected: "an HDF5 file", found: "no HDF5 signature")
    }
    let file = try H5File.open(path)
    let format = try requireString(file, "format")
    guard format == DatasetFormat.name else {
        throw DataError.invalid(file: path, field: "attribute 'format'", expected: quoted(DatasetFormat.name),
                                found: quoted(format))
    }
    let version = try requireInt(file, "version")
    guard versions.contains(version) else {
        let expected = versions.count == 1 ? "\(versions.lowerBound)" : "\(versions.lowerBound) to \(versions.upperBound)"
        throw DataError.invalid(file: path, field: "attribute 'version'", expected: expected,
                                found: "\(version)\(version > versions.upperBound ? " (written by a newer unroll)" : "")")
    }
    guard let kind else { return file }
    let found = try requireString(file, "kind")
    guard found == kind else {
        throw DataError.invalid(file: path, field: "attribute 'kind'", expected: quoted(kind),
                                found: quoted(found))
    }
    return file
}

func requireString(_ holder: some H5AttributeHolder, _ name: String) throws -> String {
    let path = holder.file.path
    guard try holder.hasAttribute(name) else {
        throw DataError.invalid(file: path, field: "attribute '\(name)'", expected: "a string", found: "missing")
    }
    let type = try holder.attributeType(name)
    guard type == .string else {
        throw DataError.invalid(file: path, field: "attribute '\(name)'", expected: "a string", found: type.description)
    }
    return try holder.stringAttribute(name)
}

func requireInt(_ holder: some H5AttributeHolder, _ name: String) throws -> Int {
    let path = holder.file.path
    guard try holder.hasAttribute(name) else {
        throw DataError.invalid(file: path, field: "attribute '\(name)'", expected: "an integer", found: "missing")
    }
    let type = try holder.attributeType(name)
    guard case .integer = type else {
        throw DataError.invalid(file: path, field: "attribute '\(name)'", expected: "an integer", found: type.description)
    }
    return try holder.intAttribute(name)
}

private func openTokenStream(_ file: H5File, _ name: String, chunkCacheBytes: Int? = nil) throws -> H5Dataset {
    guard try file.contains(name) else {
        throw DataError.invalid(file: file.path, field: "/\(name)", expected: "a token dataset", found: "missing")
    }
    let dataset = try file.openDataset(name, chunkCacheBytes: chunkCacheBytes)
    guard dataset.elementType == .uint8 || dataset.elementType == .int32 else {
        throw DataError.invalid(file: file.path, field: "/\(name)", expected: "dtype uint8 or int32",
                                found: dataset.elementType.description)
    }
    guard dataset.shape.count == 1 else {
        throw DataError.invalid(file: file.path, field: "/\(name)", expected: "a 1-D dataset",
                                found: "shape \(dataset.shape)")
    }
    guard dataset.count > 0 else {
        throw DataError.invalid(file: file.path, field: "/\(name)", expected: "at least 1 token", found: "0 tokens")
    }
    return dataset
}
