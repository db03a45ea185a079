// Synthetic expression trees (layout `trees`), deterministic per seed: `expr-trees`, random binary
// trees of the digits 0–9 joined by +, − and × (arithmetic mod 10), as in the tree-structured
// arithmetic tasks that motivate recursive networks (Deep Learning §10.6). Each tree draws its
// depth uniformly from the length range and has exactly that depth; the label of its root is the
// expression's value mod 10, and every node is labelled with its subtree's value mod 10.
import Foundation

/// The `expr-trees` alphabet and arithmetic.
public enum ExpressionTrees {
    /// Vocabulary: `<unk>`, the digits 0–9 (ids 1–10), then `+`, `-`, `*` (ids 11–13).
    public static let vocabulary = ["<unk>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "*"]
    /// Class names: the values 0–9.
    public static let classNames = (0...9).map(String.init)
    /// Token id of digit d, and of the operators.
    public static func digit(_ d: Int) -> Int32 { Int32(1 + d) }
    public static let plus: Int32 = 11, minus: Int32 = 12, times: Int32 = 13

    /// The value mod 10 (in 0…9) of operator token `op` on values `a`, `b` in 0…9.
    public static func apply(_ op: Int32, _ a: Int, _ b: Int) -> Int {
        switch op {
        case plus: return (a + b) % 10
        case minus: return ((a - b) % 10 + 10) % 10
        default: return (a * b) % 10
        }
    }

    /// Depths (`--length`, or `--min-length`/`--max-length`) a file may ask for: a tree of depth D
    /// has at most 2^(D+1) − 1 nodes.
    public static let depths = 1...12

    /// The text of tree `t` of `split` in infix with parentheses, e.g. `((3+4)*2)`.
    public static func infix(_ split: TreeSplit, tree t: Int) -> String {
        let start = Int(split.offsets[t])
        func text(_ i: Int) -> String {
            let token = vocabulary[Int(split.tokens[i])]
            guard split.left[i] >= 0 else { return token }
            return "(" + text(start + Int(split.left[i])) + token + text(start + Int(split.right[i])) + ")"
        }
        return text(split.root(t))
    }
}

extension SyntheticPreparation {
    /// Generates `expr-trees` and writes the tree file.
    static func prepareTrees(_ options: SyntheticOptions, sizes: [Int], output: String,
                             failureHook: AtomicFile.FailureHook?, progress: PrepareProgress?) throws -> SyntheticSummary {
        let depths = try lengthRange(options)
        guard ExpressionTrees.depths.contains(depths.lowerBound), ExpressionTrees.depths.contains(depths.upperBound) else {
            throw DataError.argument(name: "--length/--min-length/--max-length (tree depth)",
                                     expected: "\(ExpressionTrees.depths.lowerBound) ≤ min ≤ max ≤ \(ExpressionTrees.depths.upperBound)",
                                     found: "\(depths.lowerBound)...\(depths.upperBound)")
        }
        // Five int32 arrays per node; at most 2^(D+1) − 1 nodes per tree.
        let total = sizes.reduce(0.0) { $0 + Double($1) }
        if let short = SystemMemory.shortfall(bytes: total * (Double((1 << (depths.upperBound + 1)) - 1) * 20 + 16)) {
            throw DataError.argument(name: "--size/--max-length", expected: "a dataset that fits in memory",
                                     found: "\(sizes.map(String.init).joined(separator: ",")) of depth up to \(depths.upperBound) (\(short))")
        }
        progress.expect(3 + 1)
        var splits: [String: TreeSplit] = [:]
        for (s, name) in DatasetFormat.splits.enumerated() {
            defer { progress.step("generate \(name)") }
            var rng = splitGenerator(seed: options.seed, split: s)
            splits[name] = expressionSplit(count: sizes[s], depths: depths, rng: &rng)
        }
        let extra: [String: AttributeValue] = ["generator": .string(options.task.rawValue), "seed": .string(String(options.seed)),
                                               "min_length": .int(depths.lowerBound), "max_length": .int(depths.upperBound)]
        let content = TreeSetContent(task: options.task.rawValue, vocabulary: ExpressionTrees.vocabulary,
                                     classNames: ExpressionTrees.classNames, splits: splits, extraAttributes: extra)
        try TreeSetWriter.write(content, to: output, failureHook: failureHook)
        progress.step("write \((output as NSString).lastPathComponent)")
        return .trees(output: output, task: options.task.rawValue, counts: splits.mapValues(\.count),
                      nodes: splits.mapValues(\.nodeCount), depths: depths)
    }

    /// `count` expression trees, each of a depth drawn uniformly from `depths`. A tree of depth
    /// d > 0 is an operator (uniform over + − ×) whose children are, in random order, a tree of
    /// depth d − 1 and one of a depth uniform in 0…d−1; depth 0 is a digit uniform in 0…9. Nodes are
    /// written in post-order (left subtree, right subtree, node).
    static func expressionSplit(count: Int, depths: ClosedRange<Int>, rng: inout Xoshiro256) -> TreeSplit {
        var left: [Int32] = [], right: [Int32] = [], tokens: [Int32] = [], labels: [Int32] = [], nodeLabels: [Int32] = []
        var offsets: [Int64] = [0]
        for _ in 0..<count {
            let start = tokens.count
            // Returns (index within the tree, value mod 10) of the subtree written.
            func grow(_ depth: Int) -> (index: Int32, value: Int) {
                if depth == 0 {
                    let d = rng.below(10)
                    left.append(-1); right.append(-1); tokens.append(ExpressionTrees.digit(d)); nodeLabels.append(Int32(d))
                    return (Int32(tokens.count - 1 - start), d)
                }
                let op = [ExpressionTrees.plus, ExpressionTrees.minus, ExpressionTrees.times][rng.below(3)]
                let other = rng.below(depth), deepFirst = rng.bit()
                let a = grow(deepFirst ? depth - 1 : other)
                let b = grow(deepFirst ? other : depth - 1)
                let value = ExpressionTrees.apply(op, a.value, b.value)
                left.append(a.index); right.append(b.index); tokens.append(op); nodeLabels.append(Int32(value))
                return (Int32(tokens.count - 1 - start), value)
            }
            let root = grow(rng.int(in: depths))
            labels.append(Int32(root.value))
            offsets.append(Int64(tokens.count))
        }
        return TreeSplit(left: left, right: right, tokens: tokens, offsets: offsets, labels: labels, nodeLabels: nodeLabels)
    }
}
