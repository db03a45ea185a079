// Text → token dataset: tokenization at char (Unicode scalar), byte or word level, vocabulary
// construction from the training split only, unknown-token handling and the summary printed by
// `unroll prepare text`. Word level follows the PTB/PyTorch convention: every line (text up to
// "\n", and a last line without one) becomes its whitespace-separated words followed by `<eos>`.
import Foundation

/// Options of `unroll prepare text`.
public struct TextPrepareOptions: Sendable {
    public var level: TokenLevel
    /// Limit on the vocabulary size; when set, the unknown token is always in the vocabulary.
    public var maxVocab: Int?
    /// Text of the unknown token.
    public var unk: String
    /// Text of the end-of-line token (word level only).
    public var eos: String

    public init(level: TokenLevel, maxVocab: Int? = nil, unk: String = "<unk>", eos: String = "<eos>") {
        self.level = level
        self.maxVocab = maxVocab
        self.unk = unk
        self.eos = eos
    }
}

/// Where the text comes from.
public enum TextInput: Sendable {
    /// One file per split.
    case files(train: String, valid: String, test: String)
    /// One file whose token stream is cut into train/valid/test by these fractions (sum 1).
    case split(input: String, fractions: [Double])
}

/// What `prepare` wrote, for the summary line.
public struct PrepareSummary: Sendable, CustomStringConvertible {
    public struct TokenCount: Sendable, Equatable {
        public var token: String
        public var count: Int
    }
    public var output: String
    public var level: TokenLevel
    public var vocabSize: Int
    /// Tokens per split.
    public var tokens: [String: Int]
    /// Tokens replaced by the unknown token, per split.
    public var unknown: [String: Int]
    /// The most frequent training tokens (at most 10).
    public var topTokens: [TokenCount]

    public var description: String {
        let dtype = vocabSize <= 256 ? "uint8" : "int32"
        var lines = ["wrote \(output): level \(level.rawValue), vocab size \(vocabSize), token dtype \(dtype)"]
        for name in DatasetFormat.splits {
            let unk = unknown[name] ?? 0
            lines.append("  \(name): \(tokens[name] ?? 0) tokens" + (unk > 0 ? " (\(unk) mapped to unknown)" : ""))
        }
        let top = topTokens.map { "\(quoted($0.token)) \($0.count)" }.joined(separator: ", ")
        lines.append("  top tokens: \(top)")
        return lines.joined(separator: "\n")
    }
}

/// Tokenizes text and writes token datasets.
public enum TextPreparation {
    /// Reads the input text(s), builds the dataset and writes it atomically to `output`.
    /// - Parameter progress: told of every step (read and hash each file, tokenize, write).
    /// - Throws: `DataError` naming the input file or option at fault; nothing is written then.
    public static func prepare(_ input: TextInput, options: TextPrepareOptions, output: String,
                               failureHook: AtomicFile.FailureHook? = nil,
                               progress: PrepareProgress? = nil) throws -> PrepareSummary {
        try checkOptions(options)
        let texts: [[UInt8]]
        let sources: [SourceInfo]
        let origins: [String]
        var splitAttribute: [String: AttributeValue] = [:]
        switch input {
        case let .files(train, valid, test):
            origins = [train, valid, test]
            progress.expect(3 + buildSteps(texts: 3) + 1)
            texts = try origins.map { path in
                let bytes = try readFile(path)
                progress.step("read \((path as NSString).lastPathComponent)")
                return bytes
            }
            sources = zip(origins, texts).map { SourceInfo(name: ($0 as NSString).lastPathComponent,
                                                           sha256: SHA256Hex.hash($1)) }
        case let .split(path, fractions):
            try checkFractions(fractions)
            progress.expect(1 + buildSteps(texts: 1) + 1)
            let bytes = try readFile(path)
            progress.step("read \((path as NSString).lastPathComponent)")
            let source = SourceInfo(name: (path as NSString).lastPathComponent, sha256: SHA256Hex.hash(bytes))
            origins = [path, path, path]
            texts = [bytes]
            sources = [source, source, source]
            splitAttribute["split_fractions"] = .string(fractions.map { "\($0)" }.joined(separator: ","))
        }
        var (content, summary) = try buildContent(texts: texts, origins: origins, sources: sources,
                                                  splitFractions: texts.count == 1 ? fractionsOf(input) : nil,
                                                  options: options, progress: progress)
        content.extraAttributes.merge(splitAttribute) { $1 }
        try TokenDatasetWriter.write(content, to: output, failureHook: failureHook)
        progress.step("write \((output as NSString).lastPathComponent)")
        summary.output = output
        return summary
    }

    /// Builds the dataset content from in-memory texts.
    /// - Parameters:
    ///   - texts: train, valid, test texts, or a single text to cut by `splitFractions`.
    ///   - origins: file names for error messages, one per split.
    ///   - sources: recorded source per split.
    ///   - progress: told of `buildSteps(texts:)` steps (tokenize each text, vocabulary, token ids).
    public static func buildContent(texts: [[UInt8]], origins: [String], sources: [SourceInfo],
                                    splitFractions: [Double]? = nil,
                                    options: TextPrepareOptions,
                                    progress: PrepareProgress? = nil) throws -> (TokenDatasetContent, PrepareSummary) {
        try checkOptions(options)
        precondition(texts.count == 3 || (texts.count == 1 && splitFractions != nil), "3 texts or 1 text + fractions")
        precondition(origins.count == 3 && sources.count == 3, "one origin and source per split")
        // 1. Provisional ids in order of first occurrence (train first), with their texts.
        var streams: [[Int32]]
        var unitTexts: [String]
        switch options.level {
        case .byte:
            streams = zip(texts, origins).map { text, origin in
                defer { progress.step("tokenize \((origin as NSString).lastPathComponent)") }
                return text.map { Int32($0) }
            }
            unitTexts = (0..<256).map(byteTokenText)
        case .char:
            var interner = Interner<UInt32>()
            streams = try zip(texts, origins).map { text, origin in
                defer { progress.step("tokenize \((origin as NSString).lastPathComponent)") }
                return try validatedString(text, origin).unicodeScalars.map { interner.id($0.value) }
            }
            unitTexts = interner.keys.map { String(Character(Unicode.Scalar($0)!)) }
        case .word:
            var interner = Interner<String>()
            streams = try zip(texts, origins).map { text, origin in
                defer { progress.step("tokenize \((origin as NSString).lastPathComponent)") }
                return try tokenizeWords(text, origin: origin, eos: options.eos, interner: &interner)
            }
            unitTexts = interner.keys
        }
        if let fractions = splitFractions, streams.count == 1 {
            streams = cut(streams[0], fractions: fractions)
        }
        for (name, (stream, origin)) in zip(DatasetFormat.splits, zip(streams, origins)) where stream.isEmpty {
            throw DataError.invalid(file: origin, field: "\(name) split", expected: "at least 1 token", found: "0 tokens")
        }

        // 2. Vocabulary from train counts.
        var trainCounts = [Int](repeating: 0, count: unitTexts.count)
        for id in streams[0] { trainCounts[Int(id)] += 1 }
        let vocabulary: [Int]   // provisional ids in final order; -1 marks an added unknown token
        if options.level == .byte {
            vocabulary = Array(0..<256)
        } else {
            // Descending train frequency; ties by first occurrence in train (= provisional id).
            let seen = (0..<unitTexts.count).filter { trainCounts[$0] > 0 }
            let ordered = seen.sorted { trainCounts[$0] != trainCounts[$1] ? trainCounts[$0] > trainCounts[$1] : $0 < $1 }
            if let m = options.maxVocab {
                if let p = ordered.firstIndex(where: { unitTexts[$0] == options.unk }), p < m {
                    vocabulary = Array(ordered.prefix(m))
                } else {
                    vocabulary = Array(ordered.prefix(m - 1)) + [-1]
                }
            } else {
                vocabulary = ordered
            }
        }
        progress.step("vocabulary")
        var finalID = [Int32](repeating: -1, count: unitTexts.count)
        for (id, p) in vocabulary.enumerated() where p >= 0 { finalID[p] = Int32(id) }
        let vocabTexts = vocabulary.map { $0 >= 0 ? unitTexts[$0] : options.unk }
        let unkID = options.level == .byte ? nil : vocabTexts.firstIndex(of: options.unk).map { Int32($0) }

        // 3. Final ids; tokens outside the vocabulary become the unknown token.
        var splits: [String: [Int32]] = [:]
        var unknown: [String: Int] = [:]
        for (s, name) in DatasetFormat.splits.enumerated() {
            var missing = 0
            var out = [Int32](repeating: 0, count: streams[s].count)
            for (i, p) in streams[s].enumerated() {
                let id = finalID[Int(p)]
                if id >= 0 { out[i] = id; continue }
                guard let unkID else {
                    throw DataError.invalid(file: origins[s], field: "\(name) token \(i)",
                                            expected: "a token of the training vocabulary (or a \(quoted(options.unk)) entry; --max-vocab N reserves one)",
                                            found: quoted(unitTexts[Int(p)]))
                }
                out[i] = unkID
                missing += 1
            }
            splits[name] = out
            unknown[name] = missing
        }

        progress.step("token ids")
        var finalCounts = [Int](repeating: 0, count: vocabTexts.count)
        for id in splits["train"]! { finalCounts[Int(id)] += 1 }
        let top = (0..<vocabTexts.count).sorted { finalCounts[$0] != finalCounts[$1] ? finalCounts[$0] > finalCounts[$1] : $0 < $1 }
            .prefix(10).map { PrepareSummary.TokenCount(token: vocabTexts[$0], count: finalCounts[$0]) }
        let content = TokenDatasetContent(level: options.level, vocabulary: vocabTexts, splits: splits,
                                          sources: Dictionary(uniqueKeysWithValues: zip(DatasetFormat.splits, sources)),
                                          eos: options.level == .word ? options.eos : nil,
                                          unk: unkID.map { _ in options.unk })
        let summary = PrepareSummary(output: "", level: options.level, vocabSize: vocabTexts.count,
                                     tokens: splits.mapValues(\.count), unknown: unknown, topTokens: Array(top))
        return (content, summary)
    }

    /// The steps `buildContent` reports for `texts` input texts.
    static func buildSteps(texts: Int) -> Int { texts + 2 }

    /// Vocabulary text of byte token `b`: the character for printable ASCII, `<0xNN>` otherwise.
    public static func byteTokenText(_ b: Int) -> String {
        (0x20...0x7E).contains(b) ? String(UnicodeScalar(UInt8(b))) : String(format: "<0x%02X>", b)
    }

    // MARK: - Helpers

    private static func fractionsOf(_ input: TextInput) -> [Double]? {
        if case let .split(_, fractions) = input { return fractions }
        return nil
    }

    static func checkOptions(_ options: TextPrepareOptions) throws {
        if options.level == .byte, options.maxVocab != nil {
            throw DataError.argument(name: "--max-vocab", expected: "no limit with --level byte (the vocabulary is the 256 byte values)",
                                     found: "\(options.maxVocab!)")
        }
        if let m = options.maxVocab, m < 1 {
            throw DataError.argument(name: "--max-vocab", expected: "≥ 1", found: "\(m)")
        }
        if options.unk.isEmpty || options.unk.utf8.contains(0) {
            throw DataError.argument(name: "--unk", expected: "a non-empty token without NUL", found: quoted(options.unk))
        }
        if options.level == .word, options.eos.isEmpty || options.eos.contains(where: { $0.isWhitespace }) {
            throw DataError.argument(name: "--eos", expected: "a non-empty token without whitespace",
                                     found: quoted(options.eos))
        }
    }

    static func checkFractions(_ fractions: [Double]) throws {
        let text = fractions.map { "\($0)" }.joined(separator: ",")
        guard fractions.count == 3, fractions.allSatisfy({ $0 > 0 && $0.isFinite }),
              abs(fractions.reduce(0, +) - 1) < 1e-6 else {
            throw DataError.argument(name: "--split", expected: "three positive fractions summing to 1 (e.g. 0.9,0.05,0.05)",
                                     found: text)
        }
    }

    /// Cuts one token stream at ⌊f_train·N⌋ and ⌊(f_train+f_valid)·N⌋.
    static func cut(_ stream: [Int32], fractions: [Double]) -> [[Int32]] {
        let n = stream.count
        let a = Int((fractions[0] * Double(n)).rounded(.down))
        let b = max(a, min(n, Int(((fractions[0] + fractions[1]) * Double(n)).rounded(.down))))
        return [Array(stream[0..<a]), Array(stream[a..<b]), Array(stream[b..<n])]
    }

    /// Reads a whole file with POSIX calls so failures carry errno text.
    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError.posix(path, "open input") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw DataError.posix(path, "stat input") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw DataError.io(path: path, operation: "read input", reason: "not a regular file")
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(Int(info.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError.posix(path, "read input")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    private static func validatedString(_ bytes: [UInt8], _ origin: String) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw DataError.invalid(file: origin, field: "text", expected: "UTF-8 (or use --level byte)",
                                    found: "invalid UTF-8")
        }
        if let nul = bytes.firstIndex(of: 0) {
            throw DataError.invalid(file: origin, field: "byte \(nul)", expected: "text without NUL (or use --level byte)",
                                    found: "a NUL byte")
        }
        return text
    }

    /// Splits UTF-8 text into lines ("\n") and lines into runs of non-White_Space scalars, appending
    /// `eos` after every line.
    static func tokenizeWords(_ bytes: [UInt8], origin: String, eos: String,
                              interner: inout Interner<String>) throws -> [Int32] {
        _ = try validatedString(bytes, origin)
        // Interned at its first use, so `<eos>` ties are broken by first occurrence like any word.
        var eosID: Int32 = -1
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 5)
        bytes.withUnsafeBufferPointer { b in
            var i = 0
            var wordStart = -1
            let n = b.count
            while i < n {
                let byte = b[i]
                var length = 1
                var isSpace: Bool
                if byte < 0x80 {
                    isSpace = byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
                } else {
                    // Valid UTF-8 was checked above, so the lead byte gives the length.
                    length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2
                    var value = UInt32(byte) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
                    for k in 1..<length { value = value << 6 | (UInt32(b[i + k]) & 0x3F) }
                    isSpace = Unicode.Scalar(value)?.properties.isWhitespace ?? false
                }
                if isSpace {
                    if wordStart >= 0 {
                        out.append(interner.id(String(decoding: UnsafeBufferPointer(rebasing: b[wordStart..<i]), as: UTF8.self)))
                        wordStart = -1
                    }
                    if byte == 0x0A {
                        if eosID < 0 { eosID = interner.id(eos) }
                        out.append(eosID)
                    }
                } else if wordStart < 0 {
                    wordStart = i
                }
                i += length
            }
            if wordStart >= 0 {
                out.append(interner.id(String(decoding: UnsafeBufferPointer(rebasing: b[wordStart..<n]), as: UTF8.self)))
            }
            // A last line without "\n" still ends with <eos> (Python's line iteration).
            if n > 0 && b[n - 1] != 0x0A {
                if eosID < 0 { eosID = interner.id(eos) }
                out.append(eosID)
            }
        }
        return out
    }
}

/// Assigns consecutive ids to keys in order of first appearance.
struct Interner<Key: Hashable> {
    private var ids: [Key: Int32] = [:]
    private(set) var keys: [Key] = []

    mutating func id(_ key: Key) -> Int32 {
        if let id = ids[key] { return id }
        let id = Int32(keys.count)
        ids[key] = id
        keys.append(key)
        return id
    }
}
