// Writer of layout `pairs` (DatasetFormat.md, "Layout `pairs`"): checks the content as the reader
// would, then writes it atomically (AtomicFile) with every dataset chunked and Fletcher32-checksummed,
// strings as `utf8-offsets` groups, attributes in name order (equal content gives equal bytes).
import Foundation

/// Everything a pair file holds.
public struct PairSetContent: Sendable {
    /// Value of the `task` attribute (e.g. `reverse`, or the input's name).
    public var task: String
    /// How the text was cut into tokens.
    public var level: TokenLevel
    /// Source vocabulary: `PairSet.specials` then distinct symbols.
    public var sourceVocabulary: [String]
    /// Target vocabulary: `PairSet.specials` then distinct symbols.
    public var targetVocabulary: [String]
    /// Keys are `DatasetFormat.splits`.
    public var splits: [String: PairSplit]
    /// Further root attributes (generator settings, source file, split fractions).
    public var extraAttributes: [String: AttributeValue]

    public init(task: String, level: TokenLevel, sourceVocabulary: [String], targetVocabulary: [String],
                splits: [String: PairSplit], extraAttributes: [String: AttributeValue] = [:]) {
        self.task = task
        self.level = level
        self.sourceVocabulary = sourceVocabulary
        self.targetVocabulary = targetVocabulary
        self.splits = splits
        self.extraAttributes = extraAttributes
    }
}

/// Writes pair files (layout `pairs`, version `DatasetFormat.pairsVersion`).
public enum PairSetWriter {
    /// Writes `content` to `path` atomically.
    /// - Throws: `DataError.argument` (one line naming the split or vocabulary and the field) if a
    ///   vocabulary does not start with the specials or repeats an entry, a split is missing or
    ///   empty, offsets are not strictly increasing from 0 to the token count, or a token id is
    ///   out of range; I/O errors otherwise. Nothing is written then.
    public static func write(_ content: PairSetContent, to path: String,
                             failureHook: AtomicFile.FailureHook? = nil) throws {
        for (side, vocabulary) in [("source", content.sourceVocabulary), ("target", content.targetVocabulary)] {
            if let problem = PairSet.checkVocabulary(vocabulary) {
                throw DataError.argument(name: "\(side) vocabulary\(problem.index)", expected: problem.expected,
                                         found: problem.found)
            }
        }
        for name in DatasetFormat.splits {
            guard let split = content.splits[name] else {
                throw DataError.argument(name: "split \(name)", expected: "present", found: "missing")
            }
            if let problem = split.problem(sourceVocab: content.sourceVocabulary.count,
                                           targetVocab: content.targetVocabulary.count) {
                throw DataError.argument(name: "split \(name) \(problem.field)", expected: problem.expected,
                                         found: problem.found)
            }
        }
        try AtomicFile.write(to: path, failureHook: failureHook) { tmp in
            let file = try H5File.create(tmp)
            try file.setAttribute("format", string: DatasetFormat.name)
            try file.setAttribute("version", Int64(DatasetFormat.pairsVersion))
            try file.setAttribute("kind", string: "pairs")
            try file.setAttribute("task", string: content.task)
            try file.setAttribute("level", string: content.level.rawValue)
            try file.setAttribute("source_vocab_size", Int64(content.sourceVocabulary.count))
            try file.setAttribute("target_vocab_size", Int64(content.targetVocabulary.count))
            try file.writeStrings("source_vocab", content.sourceVocabulary)
            try file.writeStrings("target_vocab", content.targetVocabulary)
            for name in DatasetFormat.splits {
                let split = content.splits[name]!
                try file.setAttribute("\(name)_pairs", Int64(split.count))
                try file.setAttribute("\(name)_source_tokens", Int64(split.sourceTokens.count))
                try file.setAttribute("\(name)_target_tokens", Int64(split.targetTokens.count))
                let group = try file.createGroup(name)
                try group.write("source", split.sourceTokens, chunk: [DatasetFormat.tokenChunk], fletcher32: true)
                try group.write("source_offsets", split.sourceOffsets, chunk: [8192], fletcher32: true)
                try group.write("target", split.targetTokens, chunk: [DatasetFormat.tokenChunk], fletcher32: true)
                try group.write("target_offsets", split.targetOffsets, chunk: [8192], fletcher32: true)
            }
            try file.setAttributes(content.extraAttributes)
            try file.close()
        }
    }
}
