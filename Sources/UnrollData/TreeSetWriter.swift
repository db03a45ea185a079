// Writer of layout `trees` (DatasetFormat.md, "Layout `trees`"): checks the content as the reader
// would, then writes it atomically (AtomicFile) with every dataset chunked and Fletcher32-checksummed,
// strings as `utf8-offsets` groups, attributes in name order (equal content gives equal bytes).
import Foundation

/// Everything a tree file holds.
public struct TreeSetContent: Sendable {
    /// Value of the `task` attribute (e.g. `expr-trees`).
    public var task: String
    /// Token vocabulary: `<unk>` then distinct entries.
    public var vocabulary: [String]
    /// Class names: distinct, non-empty.
    public var classNames: [String]
    /// Keys are `DatasetFormat.splits`; either every split has `nodeLabels` or none has.
    public var splits: [String: TreeSplit]
    /// Further root attributes (generator settings).
    public var extraAttributes: [String: AttributeValue]

    public init(task: String, vocabulary: [String], classNames: [String], splits: [String: TreeSplit],
                extraAttributes: [String: AttributeValue] = [:]) {
        self.task = task
        self.vocabulary = vocabulary
        self.classNames = classNames
        self.splits = splits
        self.extraAttributes = extraAttributes
    }
}

/// Writes tree files (layout `trees`, version `DatasetFormat.treesVersion`).
public enum TreeSetWriter {
    /// Writes `content` to `path` atomically.
    /// - Throws: `DataError.argument` (one line naming the split or list and the field) if the
    ///   vocabulary or the class names are not valid, a split is missing, or a split breaks a rule
    ///   of the layout (`TreeSplit.problem`); I/O errors otherwise. Nothing is written then.
    public static func write(_ content: TreeSetContent, to path: String,
                             failureHook: AtomicFile.FailureHook? = nil) throws {
        if let problem = TreeSet.checkVocabulary(content.vocabulary) {
            throw DataError.argument(name: "vocabulary\(problem.index)", expected: problem.expected, found: problem.found)
        }
        guard !content.classNames.isEmpty else {
            throw DataError.argument(name: "class names", expected: "at least one", found: "none")
        }
        if let problem = TreeSet.checkClassNames(content.classNames) {
            throw DataError.argument(name: "class names\(problem.index)", expected: problem.expected, found: problem.found)
        }
        let nodeLabels = content.splits["train"]?.nodeLabels != nil
        for name in DatasetFormat.splits {
            guard let split = content.splits[name] else {
                throw DataError.argument(name: "split \(name)", expected: "present", found: "missing")
            }
            guard (split.nodeLabels != nil) == nodeLabels else {
                throw DataError.argument(name: "split \(name) node_labels", expected: nodeLabels ? "present (as in train)" : "absent (as in train)",
                                         found: nodeLabels ? "absent" : "present")
            }
            if let problem = split.problem(vocab: content.vocabulary.count, classes: content.classNames.count) {
                throw DataError.argument(name: "split \(name) \(problem.field)", expected: problem.expected, found: problem.found)
            }
        }
        try AtomicFile.write(to: path, failureHook: failureHook) { tmp in
            let file = try H5File.create(tmp)
            try file.setAttribute("format", string: DatasetFormat.name)
            try file.setAttribute("version", Int64(DatasetFormat.treesVersion))
            try file.setAttribute("kind", string: "trees")
            try file.setAttribute("task", string: content.task)
            try file.setAttribute("vocab_size", Int64(content.vocabulary.count))
            try file.setAttribute("num_classes", Int64(content.classNames.count))
            try file.setAttribute("node_labels", Int64(nodeLabels ? 1 : 0))
            try file.writeStrings("vocab", content.vocabulary)
            try file.writeStrings("classes", content.classNames)
            for name in DatasetFormat.splits {
                let split = content.splits[name]!
                try file.setAttribute("\(name)_trees", Int64(split.count))
                try file.setAttribute("\(name)_nodes", Int64(split.nodeCount))
                let group = try file.createGroup(name)
                let chunk = [DatasetFormat.tokenChunk]
                try group.write("left", split.left, chunk: chunk, fletcher32: true)
                try group.write("right", split.right, chunk: chunk, fletcher32: true)
                try group.write("tokens", split.tokens, chunk: chunk, fletcher32: true)
                try group.write("offsets", split.offsets, chunk: [8192], fletcher32: true)
                try group.write("labels", split.labels, chunk: chunk, fletcher32: true)
                if let nodeLabels = split.nodeLabels {
                    try group.write("node_labels", nodeLabels, chunk: chunk, fletcher32: true)
                }
            }
            try file.setAttributes(content.extraAttributes)
            try file.close()
        }
    }
}
