// Tests of layout `trees` (TreeSet, TreeSetWriter) and `prepare synthetic --task expr-trees`: round
// trip, what the writer refuses (children not earlier, two parents, leaves without a token, …),
// one-line refusals of damaged files written with raw HDF5 calls, `unroll inspect`'s description,
// and the generator: every label recomputed independently from the stored tree, depths, determinism.
import Foundation
import Testing
@testable import UnrollData

/// Writes a tree file with raw HDF5 calls, so tests can break any part of the layout.
struct RawTreeFile {
    var kind = "trees"
    var vocab = ["<unk>", "1", "2", "+"]
    var classes = ["a", "b", "c"]
    var vocabSize: Int64? = nil
    var nodeLabelsFlag: Int64 = 0
    // One tree (1 + 2) and one leaf 2.
    var left: [Int32] = [-1, -1, 0, -1]
    var right: [Int32] = [-1, -1, 1, -1]
    var tokens: [Int32] = [1, 2, 3, 2]
    var offsets: [Int64] = [0, 3, 4]
    var labels: [Int32] = [0, 2]
    var floatTokens = false
    var omit: String? = nil

    func write(_ path: String) throws {
        let file = try H5File.create(path)
        try file.setAttribute("format", string: DatasetFormat.name)
        try file.setAttribute("version", Int64(2))
        try file.setAttribute("kind", string: kind)
        try file.setAttribute("task", string: "raw")
        try file.setAttribute("vocab_size", vocabSize ?? Int64(vocab.count))
        try file.setAttribute("num_classes", Int64(classes.count))
        try file.setAttribute("node_labels", nodeLabelsFlag)
        try file.writeStrings("vocab", vocab)
        try file.writeStrings("classes", classes)
        for name in DatasetFormat.splits {
            let group = try file.createGroup(name)
            if omit != "left" { try group.write("left", left, chunk: [4], fletcher32: true) }
            try group.write("right", right, chunk: [4], fletcher32: true)
            if floatTokens {
                try group.write("tokens", tokens.map { Float($0) })
            } else {
                try group.write("tokens", tokens, chunk: [4], fletcher32: true)
            }
            try group.write("offsets", offsets, chunk: [4], fletcher32: true)
            try group.write("labels", labels, chunk: [4], fletcher32: true)
        }
        try file.close()
    }
}

@Suite struct TreeSetTests {
    static func content(nodeLabels: Bool = true) -> TreeSetContent {
        // ((1 + 2) * 3) and 2: post-order, children before parents.
        let train = TreeSplit(left: [-1, -1, 0, -1, 2, -1], right: [-1, -1, 1, -1, 3, -1], tokens: [1, 2, 4, 3, 5, 2],
                              offsets: [0, 5, 6], labels: [9, 2], nodeLabels: nodeLabels ? [1, 2, 3, 3, 9, 2] : nil)
        let valid = TreeSplit(left: [-1], right: [-1], tokens: [1], offsets: [0, 1], labels: [1],
                              nodeLabels: nodeLabels ? [-1] : nil)
        return TreeSetContent(task: "toy", vocabulary: ["<unk>", "1", "2", "3", "+", "*"],
                              classNames: (0...9).map(String.init),
                              splits: ["train": train, "valid": valid, "test": train],
                              extraAttributes: ["generator": .string("hand")])
    }

    @Test func roundTripKeepsEveryTreeAndComputesHeights() throws {
        let dir = try TempDir()
        let content = Self.content()
        try TreeSetWriter.write(content, to: dir.file("t.h5"))
        let set = try TreeSet(path: dir.file("t.h5"))
        #expect(set.task == "toy" && set.version == DatasetFormat.treesVersion && set.hasNodeLabels)
        #expect(set.vocabulary == content.vocabulary && set.classNames == content.classNames)
        #expect(set.counts == ["train": 2, "valid": 1, "test": 2])
        #expect(set.largestTree == 5 && set.greatestHeight == 2)
        for name in DatasetFormat.splits { #expect(try set.split(name) == content.splits[name]!) }
        #expect(try set.split("train").heights == [0, 0, 1, 0, 2, 0])
        #expect(try datasetKind(dir.file("t.h5")) == "trees")
        try TreeSetWriter.write(content, to: dir.file("u.h5"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("t.h5")))
                == Data(contentsOf: URL(fileURLWithPath: dir.file("u.h5"))))
        // Without node labels too.
        try TreeSetWriter.write(Self.content(nodeLabels: false), to: dir.file("v.h5"))
        #expect(try TreeSet(path: dir.file("v.h5")).hasNodeLabels == false)
    }

    @Test func inspectDescribesATreeFile() throws {
        let dir = try TempDir()
        try TreeSetWriter.write(Self.content(), to: dir.file("t.h5"))
        #expect(try DatasetInspector.kind(of: dir.file("t.h5")) == "trees")
        let text = try DatasetInspector.describe(dir.file("t.h5"), scan: true)
        #expect(text.contains("trees 'toy'") && text.contains("labels per root and per node"))
        #expect(text.contains("/train: 2 trees, 6 nodes (sizes 1...5, heights 0...2)"))
        #expect(text.contains("/vocab: 6 entries: \"<unk>\" \"1\""))
    }

    @Test func writerRefusesBrokenTreesInOneLine() throws {
        let dir = try TempDir()
        func with(_ split: TreeSplit) -> TreeSetContent {
            var c = Self.content(nodeLabels: false)
            c.splits["valid"] = split
            return c
        }
        let cases: [(TreeSetContent, String)] = [
            (with(TreeSplit(left: [-1, -1, 2], right: [-1, -1, 1], tokens: [1, 1, 4], offsets: [0, 3], labels: [0], nodeLabels: nil)),
             "split valid left[2]: expected a child index in 0..<2 (earlier in tree 0), or -1 on both sides for a leaf, found 2"),
            (with(TreeSplit(left: [-1, 0, 0], right: [-1, -1, 0], tokens: [1, 1, 4], offsets: [0, 3], labels: [0], nodeLabels: nil)),
             "split valid right[1]: expected a child index in 0..<1 (earlier in tree 0), or -1 on both sides for a leaf, found -1"),
            (with(TreeSplit(left: [-1, -1, 0, 0], right: [-1, -1, 1, 2], tokens: [1, 1, 4, 4], offsets: [0, 4], labels: [0], nodeLabels: nil)),
             "split valid left[3]: expected each node the child of one node only, found node 0 of tree 0 again"),
            (with(TreeSplit(left: [-1, -1, -1, 0], right: [-1, -1, -1, 1], tokens: [1, 1, 1, 4], offsets: [0, 4], labels: [0], nodeLabels: nil)),
             "split valid left: expected every node but the last of tree 0 (its root) to be a child, found node 2 of tree 0 without a parent"),
            (with(TreeSplit(left: [-1], right: [-1], tokens: [-1], offsets: [0, 1], labels: [0], nodeLabels: nil)),
             "split valid tokens[0]: expected a token id < vocab_size 6 (node 0 of tree 0 is a leaf), found -1"),
            (with(TreeSplit(left: [-1], right: [-1], tokens: [1], offsets: [0, 1], labels: [10], nodeLabels: nil)),
             "split valid labels[0]: expected a class id < num_classes 10, found 10"),
            (with(TreeSplit(left: [-1], right: [-1], tokens: [1], offsets: [0, 1, 1], labels: [0, 0], nodeLabels: nil)),
             "split valid offsets[2]: expected increasing offsets (no empty tree), found 1 after 1"),
            (with(TreeSplit(left: [-1], right: [-1], tokens: [1], offsets: [0, 1], labels: [1], nodeLabels: [1])),
             "split valid node_labels: expected absent (as in train), found present"),
        ]
        for (content, expected) in cases {
            let message = dataErrorMessage { try TreeSetWriter.write(content, to: dir.file("bad.h5")) }?.1
            #expect(message == expected)
        }
        var c = Self.content()
        c.vocabulary = ["x", "<unk>"]
        #expect(dataErrorMessage { try TreeSetWriter.write(c, to: dir.file("bad.h5")) }?.1
                == "vocabulary[0]: expected \"<unk>\" (id 0), found \"x\"")
        #expect(try dir.contents().isEmpty)
    }

    @Test func readerRefusesDamagedFilesInOneLine() throws {
        let dir = try TempDir()
        var cases: [(RawTreeFile, String)] = []
        var raw = RawTreeFile()
        raw.left = [-1, -1, 5, -1]
        cases.append((raw, "/train/left[2]: expected a child index in 0..<2 (earlier in tree 0), or -1 on both sides for a leaf, found 5"))
        raw = RawTreeFile()
        raw.offsets = [0, 3, 9]
        cases.append((raw, "/train/offsets: expected offsets from 0 to 4 (nodes), found first 0, last 9"))
        raw = RawTreeFile()
        raw.tokens = [1, 7, 3, 2]
        cases.append((raw, "/train/tokens[1]: expected a token id < vocab_size 4 (node 1 of tree 0 is a leaf), found 7"))
        raw = RawTreeFile()
        raw.labels = [0]
        cases.append((raw, "/train/labels: expected 2 entries (one per tree), found 1"))
        raw = RawTreeFile()
        raw.floatTokens = true
        cases.append((raw, "/train/tokens: expected int32 token ids (nodes), found float32 shape [4]"))
        raw = RawTreeFile()
        raw.omit = "left"
        cases.append((raw, "/train/left: expected a dataset, found missing"))
        raw = RawTreeFile()
        raw.vocabSize = 9
        cases.append((raw, "/vocab: expected 9 strings (vocab_size), found string shape [4]"))
        raw = RawTreeFile()
        raw.nodeLabelsFlag = 1
        cases.append((raw, "/train/node_labels: expected a dataset, found missing"))
        raw = RawTreeFile()
        raw.kind = "pairs"
        cases.append((raw, "attribute 'kind': expected \"trees\", found \"pairs\""))
        for (i, (raw, expected)) in cases.enumerated() {
            let path = dir.file("bad\(i).h5")
            try raw.write(path)
            let message = dataErrorMessage { _ = try TreeSet(path: path) }?.1
            #expect(message == "\(path): \(expected)")
        }
        try RawTreeFile().write(dir.file("good.h5"))
        #expect(try TreeSet(path: dir.file("good.h5")).counts["valid"] == 2)
    }

    /// The value of node `i` of `split` evaluated from the stored tree alone (digits are their
    /// vocabulary text, operators `+ - *`), mod 10, in 0…9.
    static func evaluate(_ split: TreeSplit, tree t: Int, node i: Int, vocab: [String]) -> Int {
        let start = Int(split.offsets[t]), token = vocab[Int(split.tokens[i])]
        guard split.left[i] >= 0 else { return Int(token)! }
        let a = evaluate(split, tree: t, node: start + Int(split.left[i]), vocab: vocab)
        let b = evaluate(split, tree: t, node: start + Int(split.right[i]), vocab: vocab)
        let v: Int
        switch token {
        case "+": v = a + b
        case "-": v = a - b
        case "*": v = a * b
        default: Issue.record("unexpected operator \(token)"); return -1
        }
        return ((v % 10) + 10) % 10
    }

    @Test func exprTreesLabelsAreTheValuesMod10() throws {
        let dir = try TempDir()
        let options = SyntheticOptions(task: .exprTrees, seed: 7, sizes: [300, 20, 20], minLength: 1, maxLength: 5)
        _ = try SyntheticPreparation.prepare(options, output: dir.file("e.h5"))
        let set = try TreeSet(path: dir.file("e.h5"))
        #expect(set.task == "expr-trees" && set.hasNodeLabels && set.classNames == (0...9).map(String.init))
        let train = try set.split("train")
        var depths = Set<Int>(), labels = Set<Int32>()
        for t in 0..<train.count {
            let root = train.root(t)
            #expect(Int(train.labels[t]) == Self.evaluate(train, tree: t, node: root, vocab: set.vocabulary))
            for i in train.nodes(t) {
                #expect(Int(train.nodeLabels![i]) == Self.evaluate(train, tree: t, node: i, vocab: set.vocabulary))
                // Digits at the leaves, operators inside.
                #expect((train.left[i] < 0) == (1...10).contains(train.tokens[i]))
            }
            depths.insert(Int(train.heights[root]))
            labels.insert(train.labels[t])
        }
        #expect(depths == Set(1...5))
        #expect(labels.count == 10)
        // The same seed gives the same bytes; another seed other trees.
        _ = try SyntheticPreparation.prepare(options, output: dir.file("f.h5"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("e.h5")))
                == Data(contentsOf: URL(fileURLWithPath: dir.file("f.h5"))))
        var other = options
        other.seed = 8
        _ = try SyntheticPreparation.prepare(other, output: dir.file("g.h5"))
        #expect(try TreeSet(path: dir.file("g.h5")).split("train") != train)
        #expect(ExpressionTrees.infix(train, tree: 0).hasPrefix("("))
    }

    @Test func exprTreesRefusesDepthsOutOfRange() throws {
        let dir = try TempDir()
        let options = SyntheticOptions(task: .exprTrees, seed: 1, sizes: [5, 5, 5], minLength: 2, maxLength: 13)
        #expect(dataErrorMessage { _ = try SyntheticPreparation.prepare(options, output: dir.file("e.h5")) }?.1
                == "--length/--min-length/--max-length (tree depth): expected 1 ≤ min ≤ max ≤ 12, found 2...13")
        #expect(try dir.contents().isEmpty)
    }
}
