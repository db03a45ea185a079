// `unroll prepare pairs`: builds a pair file (layout `pairs`) from tab-separated text, one pair per
// line (`source TAB target`, further columns ignored), tokenized at char/byte/word level. Pairs with
// a side longer than `--max-length` tokens are dropped and counted. Splits come from `--split` (a
// per-seed shuffle) or from separate valid/test files; both vocabularies are built from train only.
// `PairCorpus` and `PairPreparation.content` are shared with the synthetic pair tasks.
import Foundation

/// Options of `unroll prepare pairs`.
public struct PairPrepareOptions: Sendable {
    /// How each side is cut into tokens.
    public var level: TokenLevel
    /// Pairs with a side longer than this many tokens are dropped (nil = no limit).
    public var maxLength: Int?
    /// Value of the `task` attribute; nil = the input's name without extension.
    public var task: String?

    public init(level: TokenLevel, maxLength: Int? = nil, task: String? = nil) {
        self.level = level
        self.maxLength = maxLength
        self.task = task
    }
}

/// What a pair preparation wrote, for the summary printed by the CLI.
public struct PairPrepareSummary: Sendable, CustomStringConvertible {
    public var output: String
    public var task: String
    public var level: TokenLevel
    public var sourceVocabSize: Int
    public var targetVocabSize: Int
    /// Pairs, source tokens and target tokens per split.
    public var pairs: [String: Int]
    public var sourceTokens: [String: Int]
    public var targetTokens: [String: Int]
    /// Tokens (both sides) mapped to `<unk>`, per split.
    public var unknown: [String: Int]
    /// Pairs dropped because a side was longer than `maxLength`.
    public var dropped: Int
    public var maxLength: Int?
    /// Empty lines skipped.
    public var skippedLines: Int
    public var longestSource: Int
    public var longestTarget: Int

    public var description: String {
        var lines = ["wrote \(output): pairs '\(task)', level \(level.rawValue), source vocab size \(sourceVocabSize), "
                     + "target vocab size \(targetVocabSize)"]
        for name in DatasetFormat.splits {
            let unk = unknown[name] ?? 0
            lines.append("  \(name): \(pairs[name] ?? 0) pairs, \(sourceTokens[name] ?? 0) source tokens, "
                         + "\(targetTokens[name] ?? 0) target tokens" + (unk > 0 ? " (\(unk) mapped to <unk>)" : ""))
        }
        lines.append("  longest source \(longestSource), longest target \(longestTarget) tokens")
        if let maxLength {
            lines.append("  \(dropped) pairs dropped (a side longer than --max-length \(maxLength))")
        }
        if skippedLines > 0 { lines.append("  \(skippedLines) empty lines skipped") }
        return lines.joined(separator: "\n")
    }
}

/// Pairs as provisional token ids (per side, in order of first appearance), before the vocabularies.
struct PairCorpus {
    /// One pair's provisional ids.
    struct Pair {
        var source: [Int32]
        var target: [Int32]
    }
    var sourceSymbols = Interner<String>()
    var targetSymbols = Interner<String>()
    /// Train, valid, test.
    var splits: [[Pair]] = []

    /// Interns the symbol texts of `source` and `target`; returns the pair's provisional ids.
    mutating func pair(source: [String], target: [String]) -> Pair {
        Pair(source: source.map { sourceSymbols.id($0) }, target: target.map { targetSymbols.id($0) })
    }
}

/// Builds pair files from tab-separated text.
public enum PairPreparation {
    /// Reads `input` (and with `.inputs` the valid and test files), splits it, writes `output` atomically.
    /// - Parameter progress: told of every step (read each file, vocabularies, write).
    /// - Throws: `DataError` (one line naming the file, the line and what was expected, or the
    ///   option) for bad input: a line without a TAB, an empty side, invalid UTF-8 (char/word), an
    ///   empty file, no pair left after `--max-length`, an empty split. Nothing is written then.
    public static func prepare(input: String, splitting: SequenceSplitting, options: PairPrepareOptions,
                               output: String, failureHook: AtomicFile.FailureHook? = nil,
                               progress: PrepareProgress? = nil) throws -> PairPrepareSummary {
        if case let .fractions(fractions, _) = splitting { try TextPreparation.checkFractions(fractions) }
        if let m = options.maxLength, m < 1 {
            throw DataError.argument(name: "--max-length", expected: "≥ 1 tokens", found: "\(m)")
        }
        let files: [String]
        if case let .inputs(valid, test) = splitting { files = [input, valid, test] } else { files = [input] }
        progress.expect(files.count + 2)
        var corpus = PairCorpus()
        var dropped = 0, skipped = 0
        var parts: [[PairCorpus.Pair]] = []
        for file in files {
            parts.append(try readPairs(file, options: options, corpus: &corpus, dropped: &dropped, skipped: &skipped))
            progress.step("read \((file as NSString).lastPathComponent)")
        }
        if case let .fractions(fractions, seed) = splitting {
            var all = parts[0]
            var rng = SequencePreparation.generator(seed)
            SequencePreparation.shuffle(&all, &rng)
            let (a, b) = SequencePreparation.cutPoints(all.count, fractions)
            parts = [Array(all[0..<a]), Array(all[a..<b]), Array(all[b...])]
        }
        for (name, part) in zip(DatasetFormat.splits, parts) where part.isEmpty {
            throw DataError.invalid(file: input, field: "\(name) split", expected: "at least 1 pair",
                                    found: "0 pairs (give more lines or other --split fractions)")
        }
        corpus.splits = parts
        let task = options.task ?? ((input as NSString).lastPathComponent as NSString).deletingPathExtension
        var (content, summary) = Self.content(corpus, level: options.level, task: task)
        progress.step("vocabularies")
        content.extraAttributes["source"] = .string((input as NSString).lastPathComponent)
        if case let .fractions(fractions, seed) = splitting {
            content.extraAttributes["split_fractions"] = .string(fractions.map { "\($0)" }.joined(separator: ","))
            content.extraAttributes["seed"] = .string(String(seed))
        }
        if let m = options.maxLength {
            content.extraAttributes["max_length"] = .int(m)
            content.extraAttributes["dropped_pairs"] = .int(dropped)
        }
        try PairSetWriter.write(content, to: output, failureHook: failureHook)
        progress.step("write \((output as NSString).lastPathComponent)")
        summary.output = output
        summary.dropped = dropped
        summary.maxLength = options.maxLength
        summary.skippedLines = skipped
        return summary
    }

    /// The file's content and summary from provisional pairs: each vocabulary is `PairSet.specials`
    /// followed by the symbols of the train split by descending train frequency, ties by first
    /// occurrence in train order; a symbol spelt like a special gets the special's id, and symbols
    /// not in train become `<unk>`.
    static func content(_ corpus: PairCorpus, level: TokenLevel, task: String) -> (PairSetContent, PairPrepareSummary) {
        let train = corpus.splits[0]
        let (sourceVocab, sourceID) = vocabulary(texts: corpus.sourceSymbols.keys, train.map(\.source))
        let (targetVocab, targetID) = vocabulary(texts: corpus.targetSymbols.keys, train.map(\.target))
        var splits: [String: PairSplit] = [:]
        var unknown: [String: Int] = [:]
        for (name, pairs) in zip(DatasetFormat.splits, corpus.splits) {
            var missing = 0
            func finalIDs(_ ids: [Int32], _ table: [Int32]) -> [Int32] {
                ids.map { p in
                    let id = table[Int(p)]
                    if id < 0 { missing += 1 }
                    return id < 0 ? PairSet.unkID : id
                }
            }
            splits[name] = PairSplit(pairs: pairs.map { (source: finalIDs($0.source, sourceID), target: finalIDs($0.target, targetID)) })
            unknown[name] = missing
        }
        let content = PairSetContent(task: task, level: level, sourceVocabulary: sourceVocab,
                                     targetVocabulary: targetVocab, splits: splits)
        let summary = PairPrepareSummary(
            output: "", task: task, level: level, sourceVocabSize: sourceVocab.count, targetVocabSize: targetVocab.count,
            pairs: splits.mapValues(\.count), sourceTokens: splits.mapValues(\.sourceTokens.count),
            targetTokens: splits.mapValues(\.targetTokens.count), unknown: unknown, dropped: 0, maxLength: nil,
            skippedLines: 0, longestSource: splits.values.map(\.longestSource).max() ?? 0,
            longestTarget: splits.values.map(\.longestTarget).max() ?? 0)
        return (content, summary)
    }

    /// A vocabulary from the train sequences `train` of provisional ids whose texts are `texts`;
    /// returns it and the final id of every provisional id (-1: not in the vocabulary).
    private static func vocabulary(texts: [String], _ train: [[Int32]]) -> ([String], [Int32]) {
        var counts = [Int](repeating: 0, count: texts.count)
        var firstSeen = [Int](repeating: Int.max, count: texts.count)
        var position = 0
        for sequence in train {
            for p in sequence {
                counts[Int(p)] += 1
                if firstSeen[Int(p)] == Int.max { firstSeen[Int(p)] = position }
                position += 1
            }
        }
        var finalID = [Int32](repeating: -1, count: texts.count)
        var vocabulary = PairSet.specials
        let ordered = texts.indices.filter { counts[$0] > 0 }
            .sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : firstSeen[$0] < firstSeen[$1] }
        for p in ordered {
            if let special = PairSet.specials.firstIndex(of: texts[p]) {
                finalID[p] = Int32(special)
            } else {
                finalID[p] = Int32(vocabulary.count)
                vocabulary.append(texts[p])
            }
        }
        // Spelt like a special but only outside train: still that special.
        for p in texts.indices where finalID[p] < 0 {
            if let special = PairSet.specials.firstIndex(of: texts[p]) { finalID[p] = Int32(special) }
        }
        return (vocabulary, finalID)
    }

    /// The pairs of one tab-separated file, as provisional ids in `corpus`; pairs over the length
    /// limit are counted in `dropped`, empty lines in `skipped`.
    static func readPairs(_ path: String, options: PairPrepareOptions, corpus: inout PairCorpus,
                          dropped: inout Int, skipped: inout Int) throws -> [PairCorpus.Pair] {
        let bytes = try TextPreparation.readFile(path)
        var pieces = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if bytes.last == 0x0A || bytes.isEmpty { pieces.removeLast() }  // after a final "\n": not a line
        var pairs: [PairCorpus.Pair] = []
        var lines = 0, droppedHere = 0
        for (index, raw) in pieces.enumerated() {
            let number = index + 1
            let line = raw.last == 0x0D ? raw.dropLast() : raw
            if line.isEmpty {
                skipped += 1
                continue
            }
            lines += 1
            func bad(_ expected: String, _ found: String) -> DataError {
                DataError.invalid(file: path, field: "line \(number)", expected: expected, found: found)
            }
            if options.level != .byte {
                if line.contains(0) { throw bad("text without NUL (or use --level byte)", "a NUL byte") }
                guard String(validating: line, as: UTF8.self) != nil else {
                    throw bad("UTF-8 text (or use --level byte)", "invalid UTF-8")
                }
            }
            guard let tab = line.firstIndex(of: 0x09) else {
                let text = String(decoding: line.prefix(40), as: UTF8.self)
                throw bad("source<TAB>target", "no TAB in \(quoted(text))\(line.count > 40 ? "…" : "")")
            }
            let rest = line[(tab + 1)...]
            let sides = [line[..<tab], rest[..<(rest.firstIndex(of: 0x09) ?? rest.endIndex)]]
            var symbols: [[String]] = []
            for (side, text) in zip(["source", "target"], sides) {
                let tokens = Self.symbols(text, level: options.level)
                guard !tokens.isEmpty else {
                    throw bad("a non-empty \(side)", text.isEmpty ? "an empty \(side)" : "a \(side) of only whitespace")
                }
                symbols.append(tokens)
            }
            if let m = options.maxLength, symbols[0].count > m || symbols[1].count > m {
                droppedHere += 1
                continue
            }
            pairs.append(corpus.pair(source: symbols[0], target: symbols[1]))
        }
        dropped += droppedHere
        guard !pairs.isEmpty else {
            if lines == 0 {
                throw DataError.invalid(file: path, field: "pairs", expected: "at least one line source<TAB>target",
                                        found: bytes.isEmpty ? "an empty file" : "only empty lines")
            }
            throw DataError.invalid(file: path, field: "pairs",
                                    expected: "pairs with at most \(options.maxLength ?? 0) tokens per side (--max-length)",
                                    found: "none: all \(droppedHere) pairs are longer")
        }
        return pairs
    }

    /// The symbol texts of one side: Unicode scalars (char), bytes as `TextPreparation.byteTokenText`
    /// (byte) or maximal runs of non-White_Space characters (word). Char/word text is valid UTF-8.
    public static func symbols(_ text: ArraySlice<UInt8>, level: TokenLevel) -> [String] {
        switch level {
        case .byte:
            return text.map { TextPreparation.byteTokenText(Int($0)) }
        case .char:
            return String(decoding: text, as: UTF8.self).unicodeScalars.map { String(Character($0)) }
        case .word:
            return String(decoding: text, as: UTF8.self).unicodeScalars
                .split(whereSeparator: { $0.properties.isWhitespace })
                .map { String(String.UnicodeScalarView($0)) }
        }
    }
}
