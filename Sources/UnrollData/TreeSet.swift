// Validating reader of layout `trees` (DatasetFormat.md, "Layout `trees`"): binary trees for
// recursive networks (Deep Learning §10.6). Per split group: the nodes of every tree back to back,
// children before parents (`left`, `right`: child indices within the tree, or −1 for a leaf),
// `tokens` (a token per leaf, optional on inner nodes), int64 `offsets` (N+1), a class `labels` per
// root and optionally `node_labels` per node. Everything is read and checked on open.
import Foundation

/// An open, validated tree file (layout `trees`): every split is read and checked by `init`.
public struct TreeSet: Sendable {
    /// What every tree vocabulary starts with, at id 0.
    public static let unk = "<unk>"

    /// Path as given.
    public let path: String
    /// The file's `version` attribute.
    public let version: Int
    /// The `task` attribute (e.g. `expr-trees`).
    public let task: String
    /// `/vocab`: entry i is the text of token id i; starts with `<unk>`.
    public let vocabulary: [String]
    /// `/classes`: entry i names class id i.
    public let classNames: [String]
    /// Whether every split has `node_labels` (attribute `node_labels` = 1).
    public let hasNodeLabels: Bool
    /// Trees per split (keys `DatasetFormat.splits`).
    public let counts: [String: Int]
    /// Largest tree (nodes) and greatest height (a leaf has height 0) over all splits.
    public let largestTree: Int
    public let greatestHeight: Int
    private let splits: [String: TreeSplit]
    private let attributeList: [(String, String)]

    /// Opens `path` and validates all of it: format, version, `kind` = "trees", the vocabulary
    /// (size, `<unk>` first, distinct non-empty entries), the class names, and every split (dtypes
    /// and shapes, offsets, child indices, parents, leaf tokens, labels).
    /// - Throws: `DataError` with one line naming the file and the field.
    public init(path: String) throws {
        self.path = path
        let file = try openDatasetFile(path, kind: "trees", versions: DatasetFormat.treesVersion...DatasetFormat.treesVersion)
        version = try requireInt(file, "version")
        task = try requireString(file, "task")
        let vocabSize = try requireInt(file, "vocab_size")
        guard vocabSize >= 1 && vocabSize <= TreeSplit.maxVocabulary else {
            throw DataError.invalid(file: path, field: "attribute 'vocab_size'",
                                    expected: "1 to \(TreeSplit.maxVocabulary) (<unk> first)", found: "\(vocabSize)")
        }
        let numClasses = try requireInt(file, "num_classes")
        guard numClasses >= 1 && numClasses <= TreeSplit.maxClasses else {
            throw DataError.invalid(file: path, field: "attribute 'num_classes'", expected: "1 to \(TreeSplit.maxClasses)",
                                    found: "\(numClasses)")
        }
        let nodeLabels = try requireInt(file, "node_labels")
        guard nodeLabels == 0 || nodeLabels == 1 else {
            throw DataError.invalid(file: path, field: "attribute 'node_labels'", expected: "0 or 1", found: "\(nodeLabels)")
        }
        hasNodeLabels = nodeLabels == 1
        vocabulary = try Self.readStrings(file, "vocab", count: vocabSize, what: "vocab_size")
        if let problem = Self.checkVocabulary(vocabulary) {
            throw DataError.invalid(file: path, field: "/vocab\(problem.index)", expected: problem.expected, found: problem.found)
        }
        classNames = try Self.readStrings(file, "classes", count: numClasses, what: "num_classes")
        if let problem = Self.checkClassNames(classNames) {
            throw DataError.invalid(file: path, field: "/classes\(problem.index)", expected: problem.expected, found: problem.found)
        }
        var splits: [String: TreeSplit] = [:]
        for name in DatasetFormat.splits {
            splits[name] = try Self.readSplit(file, name, vocab: vocabSize, classes: numClasses, nodeLabels: hasNodeLabels)
        }
        self.splits = splits
        counts = splits.mapValues(\.count)
        largestTree = splits.values.map(\.largestTree).max() ?? 0
        greatestHeight = splits.values.map { Int($0.heights.max() ?? 0) }.max() ?? 0
        attributeList = try attributeTexts(file)
        try file.close()
    }

    /// One split, already validated.
    /// - Throws: `DataError.argument` if `name` is not one of `DatasetFormat.splits`.
    public func split(_ name: String) throws -> TreeSplit {
        guard let split = splits[name] else {
            throw DataError.argument(name: "split", expected: DatasetFormat.splits.joined(separator: ", "),
                                     found: quoted(name))
        }
        return split
    }

    /// Root attribute names and values as text, strings quoted (for `unroll inspect`).
    public func attributes() -> [(String, String)] { attributeList }

    /// Why `vocabulary` is not a tree vocabulary (`<unk>` first, then distinct non-empty entries), or nil.
    static func checkVocabulary(_ vocabulary: [String]) -> (index: String, expected: String, found: String)? {
        guard let first = vocabulary.first else { return ("", "at least <unk>", "no entries") }
        guard first == unk else { return ("[0]", quoted(unk) + " (id 0)", quoted(first)) }
        return checkDistinct(vocabulary)
    }

    /// Why `names` are not class names (distinct, non-empty), or nil.
    static func checkClassNames(_ names: [String]) -> (index: String, expected: String, found: String)? {
        checkDistinct(names)
    }

    private static func checkDistinct(_ entries: [String]) -> (index: String, expected: String, found: String)? {
        var seen: [String: Int] = [:]
        for (i, entry) in entries.enumerated() {
            guard !entry.isEmpty else { return ("[\(i)]", "a non-empty entry", "\"\"") }
            if let first = seen[entry] { return ("[\(i)]", "distinct entries", "\(quoted(entry)) again (first at \(first))") }
            seen[entry] = i
        }
        return nil
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

    private static func readSplit(_ file: H5File, _ name: String, vocab: Int, classes: Int, nodeLabels: Bool) throws -> TreeSplit {
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
        if !nodeLabels, try group.contains("node_labels") {
            throw DataError.invalid(file: path, field: "/\(name)/node_labels", expected: "none (attribute 'node_labels' is 0)",
                                    found: "a dataset")
        }
        let split = TreeSplit(
            left: try read("left", .int32, "int32 child indices (nodes)", as: Int32.self),
            right: try read("right", .int32, "int32 child indices (nodes)", as: Int32.self),
            tokens: try read("tokens", .int32, "int32 token ids (nodes)", as: Int32.self),
            offsets: try read("offsets", .int64, "int64 offsets (N+1)", as: Int64.self),
            labels: try read("labels", .int32, "int32 class ids (N)", as: Int32.self),
            nodeLabels: nodeLabels ? try read("node_labels", .int32, "int32 class ids or -1 (nodes)", as: Int32.self) : nil)
        if let problem = split.problem(vocab: vocab, classes: classes) {
            throw DataError.invalid(file: path, field: "/\(name)/\(problem.field)", expected: problem.expected,
                                    found: problem.found)
        }
        return split
    }
}

/// One split of a tree file: N binary trees, their nodes back to back. Within tree t (nodes
/// `offsets[t] ..< offsets[t+1]`), node i's children are nodes `left[i]`, `right[i]` of the same
/// tree (indices relative to the tree's first node), both < i, or both −1 (a leaf). The last node
/// of a tree is its root; every other node is the child of exactly one node.
public struct TreeSplit: Sendable, Equatable {
    /// Most nodes in one tree (bounds the work of one tree and the model's buffers).
    public static let maxNodes = 1 << 16
    /// Largest vocabulary and class count a tree file may declare.
    public static let maxVocabulary = 1 << 24, maxClasses = 1 << 20

    /// Left child of each node (relative to its tree), −1 for a leaf.
    public let left: [Int32]
    /// Right child of each node (relative to its tree), −1 for a leaf.
    public let right: [Int32]
    /// Token id of each node: required on leaves, −1 (no input) allowed on inner nodes.
    public let tokens: [Int32]
    /// N+1 offsets into the node arrays: 0, strictly increasing, ending at the node count.
    public let offsets: [Int64]
    /// Class id of each tree's root (N).
    public let labels: [Int32]
    /// Class id of each node, −1 for an unlabelled node; nil when the file has none.
    public let nodeLabels: [Int32]?
    /// Height of each node (leaves 0, otherwise 1 + the higher child's), computed on init.
    public let heights: [Int32]

    /// A split from its arrays (checked by `problem`, which `TreeSet` and `TreeSetWriter` call).
    public init(left: [Int32], right: [Int32], tokens: [Int32], offsets: [Int64], labels: [Int32], nodeLabels: [Int32]?) {
        self.left = left
        self.right = right
        self.tokens = tokens
        self.offsets = offsets
        self.labels = labels
        self.nodeLabels = nodeLabels
        var heights = [Int32](repeating: 0, count: left.count)
        // Valid only once `problem` has passed; bounds-guarded so that invalid input cannot trap.
        if offsets.count >= 2 && offsets.first == 0 && offsets.last == Int64(left.count) && right.count == left.count {
            for t in 0..<(offsets.count - 1) {
                let start = Int(offsets[t]), end = Int(offsets[t + 1])
                guard start <= end, end <= left.count else { break }
                for i in start..<end {
                    let l = Int(left[i]), r = Int(right[i])
                    if l >= 0 && l < i - start && r >= 0 && r < i - start {
                        heights[i] = 1 + max(heights[start + l], heights[start + r])
                    }
                }
            }
        }
        self.heights = heights
    }

    /// Number of trees N.
    public var count: Int { offsets.count - 1 }
    /// Number of nodes in all trees.
    public var nodeCount: Int { left.count }

    /// Nodes of tree `t` (global node indices; precondition 0 ≤ t < count).
    public func nodes(_ t: Int) -> Range<Int> { Int(offsets[t])..<Int(offsets[t + 1]) }

    /// Global index of tree `t`'s root (its last node).
    public func root(_ t: Int) -> Int { Int(offsets[t + 1]) - 1 }

    /// Largest tree, in nodes.
    public var largestTree: Int {
        var best: Int64 = 0
        for i in offsets.indices.dropFirst() { best = max(best, offsets[i] - offsets[i - 1]) }
        return Int(best)
    }

    /// What is wrong with this split (field relative to the split, expectation, finding), or nil.
    public func problem(vocab: Int, classes: Int) -> (field: String, expected: String, found: String)? {
        let n = left.count
        guard offsets.count >= 2 else { return ("offsets", "N+1 offsets with N ≥ 1 trees", "\(offsets.count) offsets") }
        for (name, count) in [("right", right.count), ("tokens", tokens.count)] where count != n {
            return (name, "\(n) entries (one per node, as left)", "\(count)")
        }
        if let nodeLabels, nodeLabels.count != n {
            return ("node_labels", "\(n) entries (one per node, as left)", "\(nodeLabels.count)")
        }
        guard labels.count == count else { return ("labels", "\(count) entries (one per tree)", "\(labels.count)") }
        guard offsets.first == 0, offsets.last == Int64(n) else {
            return ("offsets", "offsets from 0 to \(n) (nodes)", "first \(offsets.first!), last \(offsets.last!)")
        }
        var referenced = [UInt8](repeating: 0, count: n)
        for t in 0..<count {
            let start = offsets[t], end = offsets[t + 1]
            guard end > start else { return ("offsets[\(t + 1)]", "increasing offsets (no empty tree)", "\(end) after \(start)") }
            guard end - start <= Int64(Self.maxNodes) else {
                return ("offsets[\(t + 1)]", "trees of at most \(Self.maxNodes) nodes", "\(end - start) nodes in tree \(t)")
            }
            for i in Int(start)..<Int(end) {
                let local = i - Int(start), l = left[i], r = right[i]
                if l == -1 && r == -1 {
                    guard tokens[i] >= 0 && Int(tokens[i]) < vocab else {
                        return ("tokens[\(i)]", "a token id < vocab_size \(vocab) (node \(local) of tree \(t) is a leaf)", "\(tokens[i])")
                    }
                    continue
                }
                for (side, c) in [("left", l), ("right", r)] where !(c >= 0 && Int(c) < local) {
                    return ("\(side)[\(i)]", "a child index in 0..<\(local) (earlier in tree \(t)), or -1 on both sides for a leaf",
                            "\(c)")
                }
                guard l != r else { return ("right[\(i)]", "a child other than the left one (\(l))", "\(r)") }
                for c in [l, r] {
                    let child = Int(start) + Int(c)
                    guard referenced[child] == 0 else {
                        return ("\(c == l ? "left" : "right")[\(i)]", "each node the child of one node only",
                                "node \(c) of tree \(t) again")
                    }
                    referenced[child] = 1
                }
                guard tokens[i] >= -1 && Int(tokens[i]) < vocab else {
                    return ("tokens[\(i)]", "a token id < vocab_size \(vocab), or -1 (no input) on an inner node", "\(tokens[i])")
                }
            }
            for i in Int(start)..<Int(end - 1) where referenced[i] == 0 {
                return ("left", "every node but the last of tree \(t) (its root) to be a child",
                        "node \(i - Int(start)) of tree \(t) without a parent")
            }
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classes }) {
            return ("labels[\(bad)]", "a class id < num_classes \(classes)", "\(labels[bad])")
        }
        if let nodeLabels, let bad = nodeLabels.firstIndex(where: { $0 < -1 || Int($0) >= classes }) {
            return ("node_labels[\(bad)]", "a class id < num_classes \(classes), or -1 (unlabelled)", "\(nodeLabels[bad])")
        }
        return nil
    }
}
