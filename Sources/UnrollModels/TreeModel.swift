// Recursive (tree-structured) networks, Deep Learning §10.6: a node's state is computed from its
// own input (the embedding of its token, zero when it has none) and the states of its two children;
// a linear classification head reads the roots (or every node). Two cells:
// - TreeRNN (Socher et al. 2011): h = tanh(W_ih x + W_hh [h_L; h_R] + b); a leaf (h_L = h_R = 0)
//   gets h = tanh(W_ih e(token) + b).
// - Binary Tree-LSTM (Tai, Socher & Manning 2015, N-ary with N = 2): gates [i f_L f_R o u] =
//   [σ σ σ σ tanh](W_ih x + W_hh [h_L; h_R] + b), c = i⊙u + f_L⊙c_L + f_R⊙c_R, h = o⊙tanh(c):
//   a forget gate per child, each reading both children's states.
// Nodes of a batch of trees are ordered by height (leaves first), so each level is a contiguous
// block of rows: the input projection is one GEMM over all N nodes, each level one GEMM over its
// gathered children states, and the weight gradients one GEMM each over all (inner) rows.
// Derivations: Sources/UnrollKernels/Derivations.md, "Tree cells".
//
// Letters: N nodes of the batch (rows), M head rows, E embedding, H hidden, G gates (1 or 5), C classes.
import UnrollKernels

/// The architecture of a tree model.
public struct TreeModelConfig: Codable, Equatable, Sendable {
    /// `.treeRNN` or `.treeLSTM`.
    public var cell: CellKind
    /// Token vocabulary (rows of `embedding.weight`).
    public var vocabSize: Int
    public var embeddingSize: Int
    public var hiddenSize: Int
    /// Classes of the head.
    public var numClasses: Int
    public var initScheme: InitScheme
    /// Tree-LSTM: both forget-gate biases start at 1.
    public var forgetGateBias: Bool

    public init(cell: CellKind, vocabSize: Int, embeddingSize: Int, hiddenSize: Int, numClasses: Int,
                initScheme: InitScheme = .pytorch, forgetGateBias: Bool = false) {
        self.cell = cell
        self.vocabSize = vocabSize
        self.embeddingSize = embeddingSize
        self.hiddenSize = hiddenSize
        self.numClasses = numClasses
        self.initScheme = initScheme
        self.forgetGateBias = forgetGateBias
    }

    /// Gate blocks: 1 (TreeRNN) or 5 (Tree-LSTM: i, f_L, f_R, o, u).
    public var gateCount: Int { cell == .treeLSTM ? TreeLSTMKernels.gateCount : 1 }

    /// Checks sizes; returns a one-line description of the first problem, or nil.
    public func problem() -> String? {
        if !cell.isTree { return "a tree model needs --cell tree-rnn or tree-lstm, got \(cell.rawValue)" }
        if vocabSize < 1 { return "vocabulary size must be ≥ 1, got \(vocabSize)" }
        if embeddingSize < 1 { return "--embedding must be ≥ 1, got \(embeddingSize)" }
        if hiddenSize < 1 { return "--hidden must be ≥ 1, got \(hiddenSize)" }
        if numClasses < 1 { return "classes must be ≥ 1, got \(numClasses)" }
        if case .uniform(let a) = initScheme, !(a > 0) { return "uniform init range must be > 0, got \(a)" }
        return nil
    }
}

extension ParameterLayout {
    /// The layout of a tree model: `embedding.weight` (V, E), `tree.weight_ih` (G·H, E),
    /// `tree.weight_hh` (G·H, 2H) on [h_L; h_R], `tree.bias` (G·H), `head.weight` (C, H), `head.bias` (C).
    public static func treeModel(_ c: TreeModelConfig) -> ParameterLayout {
        var layout = ParameterLayout()
        let GH = c.gateCount * c.hiddenSize
        layout.append("embedding.weight", shape: [c.vocabSize, c.embeddingSize])
        layout.append("tree.weight_ih", shape: [GH, c.embeddingSize])
        layout.append("tree.weight_hh", shape: [GH, 2 * c.hiddenSize])
        layout.append("tree.bias", shape: [GH])
        layout.append("head.weight", shape: [c.numClasses, c.hiddenSize])
        layout.append("head.bias", shape: [c.numClasses])
        return layout
    }
}

/// A batch of binary trees laid out for level-wise evaluation: row r is one node; rows are sorted
/// by height (then tree, then node), so level ℓ (nodes of height ℓ) is rows
/// `levelStarts[ℓ] ..< levelStarts[ℓ + 1]` and every child's row comes before its parent's level.
public struct TreeBatch: Sendable {
    /// Nodes N.
    public let nodeCount: Int
    /// L + 1 row boundaries of the L levels (level 0: the leaves).
    public let levelStarts: [Int]
    /// Token of each row, −1 for none (zero input).
    public let tokens: [Int32]
    /// Rows of each row's children, −1 for a leaf.
    public let leftRows: [Int32]
    public let rightRows: [Int32]
    /// Row of each tree's root, in tree order.
    public let rootRows: [Int32]
    /// Row of every node in tree order (tree 0's nodes in their order, then tree 1's, …).
    public let rowOfNode: [Int32]

    /// Lays out `trees`, each given by its nodes' children (indices within the tree, both < the
    /// node's, or both −1) and tokens; the last node of a tree is its root.
    /// Precondition: the trees are valid (as `TreeSplit.problem` checks).
    public init(trees: [(left: ArraySlice<Int32>, right: ArraySlice<Int32>, tokens: ArraySlice<Int32>)]) {
        var heights: [Int32] = []
        var treeStarts: [Int] = []
        for tree in trees {
            let start = heights.count
            treeStarts.append(start)
            let l = Array(tree.left), r = Array(tree.right)
            for i in 0..<l.count {
                heights.append(l[i] < 0 ? 0 : 1 + max(heights[start + Int(l[i])], heights[start + Int(r[i])]))
            }
        }
        let n = heights.count
        let levels = Int(heights.max() ?? 0) + 1
        var starts = [Int](repeating: 0, count: levels + 1)
        for h in heights { starts[Int(h) + 1] += 1 }
        for l in 0..<levels { starts[l + 1] += starts[l] }
        var next = starts, rowOfNode = [Int32](repeating: 0, count: n)
        for k in 0..<n {
            rowOfNode[k] = Int32(next[Int(heights[k])])
            next[Int(heights[k])] += 1
        }
        var tokens = [Int32](repeating: -1, count: n)
        var leftRows = [Int32](repeating: -1, count: n), rightRows = [Int32](repeating: -1, count: n)
        var rootRows: [Int32] = []
        for (t, tree) in trees.enumerated() {
            let start = treeStarts[t]
            let l = Array(tree.left), r = Array(tree.right), tok = Array(tree.tokens)
            for i in 0..<l.count {
                let row = Int(rowOfNode[start + i])
                tokens[row] = tok[i]
                if l[i] >= 0 {
                    leftRows[row] = rowOfNode[start + Int(l[i])]
                    rightRows[row] = rowOfNode[start + Int(r[i])]
                }
            }
            rootRows.append(rowOfNode[start + l.count - 1])
        }
        nodeCount = n
        levelStarts = starts
        self.tokens = tokens
        self.leftRows = leftRows
        self.rightRows = rightRows
        self.rootRows = rootRows
        self.rowOfNode = rowOfNode
    }
}

/// A tree model on the flat parameter arena: forward over a `TreeBatch`, then backward into the
/// arena's gradients (accumulating). Buffers grow to the largest batch seen.
public final class TreeModel {
    public let config: TreeModelConfig
    public let arena: ParameterArena
    let embedding, weightIH, weightHH, bias, headWeight, headBias: ParameterView
    private var batch: TreeBatch?
    private var headRows: [Int32] = []
    // Activations of the last forward (capacity grows):
    private var x = FloatBuffer(count: 0)          // (N, E) inputs (zero rows without a token)
    private var gates = FloatBuffer(count: 0)      // (N, GH) activations
    private var children = FloatBuffer(count: 0)   // (N, 2H) [h_L h_R] (inner rows)
    private var cChildren = FloatBuffer(count: 0)  // (N, 2H) [c_L c_R] (Tree-LSTM)
    private var c = FloatBuffer(count: 0)          // (N, H) Tree-LSTM cells
    private var tanhC = FloatBuffer(count: 0)      // (N, H)
    private var h = FloatBuffer(count: 0)          // (N, H) states
    private var selected = FloatBuffer(count: 0)   // (M, H) states the head reads
    private var logits = FloatBuffer(count: 0)     // (M, C)
    // Backward work:
    private var dGates = FloatBuffer(count: 0)     // (N, GH)
    private var dh = FloatBuffer(count: 0)         // (N, H)
    private var dc = FloatBuffer(count: 0)         // (N, H)
    private var dChildren = FloatBuffer(count: 0)  // (N, 2H)
    private var dcChildren = FloatBuffer(count: 0) // (N, 2H)
    private var dx = FloatBuffer(count: 0)         // (N, E)
    private var dSelected = FloatBuffer(count: 0)  // (M, H)

    /// A model with parameters initialised from `seed` (PyTorch-style, or `--init-range`).
    public convenience init(config: TreeModelConfig, seed: UInt64) {
        self.init(config: config, arena: ParameterArena(layout: .treeModel(config)))
        Initializer.initialize(arena, cell: config.cell, hiddenSize: config.hiddenSize, scheme: config.initScheme,
                               forgetGateBias: false, seed: seed)
        if config.forgetGateBias && config.cell == .treeLSTM {
            // Gates i, f_L, f_R, o, u: both forget blocks [H, 3H) start at 1.
            (arena.parameters(bias) + config.hiddenSize).update(repeating: 1, count: 2 * config.hiddenSize)
        }
    }

    /// A model on an existing arena with the layout `ParameterLayout.treeModel(config)`.
    public init(config: TreeModelConfig, arena: ParameterArena) {
        precondition(arena.layout == .treeModel(config), "arena layout does not match the tree model")
        self.config = config
        self.arena = arena
        embedding = arena.view("embedding.weight")
        weightIH = arena.view("tree.weight_ih")
        weightHH = arena.view("tree.weight_hh")
        bias = arena.view("tree.bias")
        headWeight = arena.view("head.weight")
        headBias = arena.view("head.bias")
    }

    /// Logits of the last forward, (M, C): row m for head row `headRows[m]`.
    public var outputs: UnsafePointer<Float> { UnsafePointer(logits.pointer) }

    /// States of the last forward, (N, H) by batch row.
    public var states: UnsafePointer<Float> { UnsafePointer(h.pointer) }

    private static func ensure(_ buffer: inout FloatBuffer, _ count: Int) {
        if buffer.count < count { buffer = FloatBuffer(count: count) }
    }

    /// Runs the trees of `batch` and the head on `headRows` (batch rows, e.g. `batch.rootRows`).
    public func forward(_ batch: TreeBatch, headRows: [Int32]) {
        let N = batch.nodeCount, E = config.embeddingSize, H = config.hiddenSize, G = config.gateCount, GH = G * H
        let M = headRows.count, C = config.numClasses, V = config.vocabSize
        let lstm = config.cell == .treeLSTM
        self.batch = batch
        self.headRows = headRows
        for (buffer, count) in [(\TreeModel.x, N * E), (\.gates, N * GH), (\.children, N * 2 * H), (\.h, N * H),
                                (\.selected, M * H), (\.logits, M * C)] {
            Self.ensure(&self[keyPath: buffer], count)
        }
        if lstm {
            for (buffer, count) in [(\TreeModel.cChildren, N * 2 * H), (\.c, N * H), (\.tanhC, N * H)] {
                Self.ensure(&self[keyPath: buffer], count)
            }
        }
        let table = arena.parameters(embedding), x = self.x.pointer, gates = self.gates.pointer
        // Inputs (N, E): the token's embedding, zero for a node without one.
        for r in 0..<N {
            let t = Int(batch.tokens[r])
            if t < 0 {
                (x + r * E).update(repeating: 0, count: E)
            } else {
                precondition(t < V, "tree model: token id \(t) outside 0..<\(V)")
                (x + r * E).update(from: table + t * E, count: E)
            }
        }
        // (N, GH) = X · W_ihᵀ + b: one GEMM for every node.
        RowKernels.broadcastRows(gates, bias: arena.parameters(bias), rows: N, cols: GH)
        BLAS.sgemm(transB: true, m: N, n: GH, k: E, a: x, lda: E, b: arena.parameters(weightIH), ldb: E,
                   beta: 1, c: gates, ldc: GH)
        let hp = h.pointer, kids = children.pointer
        for level in 0..<(batch.levelStarts.count - 1) {
            let s = batch.levelStarts[level], m = batch.levelStarts[level + 1] - s
            guard m > 0 else { continue }
            if level > 0 {
                // Gather [h_L h_R] (m, 2H) and add W_hh [h_L; h_R] to the level's gates.
                for r in s..<(s + m) {
                    (kids + r * 2 * H).update(from: hp + Int(batch.leftRows[r]) * H, count: H)
                    (kids + r * 2 * H + H).update(from: hp + Int(batch.rightRows[r]) * H, count: H)
                }
                BLAS.sgemm(transB: true, m: m, n: GH, k: 2 * H, a: kids + s * 2 * H, lda: 2 * H,
                           b: arena.parameters(weightHH), ldb: 2 * H, beta: 1, c: gates + s * GH, ldc: GH)
            }
            if lstm {
                let cp = c.pointer, cc = cChildren.pointer
                for r in s..<(s + m) {
                    if level == 0 {
                        (cc + r * 2 * H).update(repeating: 0, count: 2 * H)
                    } else {
                        (cc + r * 2 * H).update(from: cp + Int(batch.leftRows[r]) * H, count: H)
                        (cc + r * 2 * H + H).update(from: cp + Int(batch.rightRows[r]) * H, count: H)
                    }
                }
                TreeLSTMKernels.forward(gates: gates + s * GH, cChildren: cc + s * 2 * H, c: cp + s * H,
                                        tanhC: tanhC.pointer + s * H, h: hp + s * H, batch: m, hidden: H)
            } else {
                ElmanKernels.forward(h: gates + s * GH, count: m * H, relu: false)
                (hp + s * H).update(from: gates + s * GH, count: m * H)
            }
        }
        // Head: logits (M, C) = states of the head rows · W_headᵀ + b.
        let sel = selected.pointer
        for (i, row) in headRows.enumerated() { (sel + i * H).update(from: hp + Int(row) * H, count: H) }
        RowKernels.broadcastRows(logits.pointer, bias: arena.parameters(headBias), rows: M, cols: C)
        BLAS.sgemm(transB: true, m: M, n: C, k: H, a: sel, lda: H, b: arena.parameters(headWeight), ldb: H,
                   beta: 1, c: logits.pointer, ldc: C)
    }

    /// Backward of the last forward given ∂L/∂logits (M, C); accumulates (+=) into the arena's
    /// gradients (the embedding's rows of the batch's tokens included).
    public func backward(dLogits: UnsafePointer<Float>) {
        guard let batch else { preconditionFailure("tree model: backward before forward") }
        let N = batch.nodeCount, E = config.embeddingSize, H = config.hiddenSize, GH = config.gateCount * H
        let M = headRows.count, C = config.numClasses
        let lstm = config.cell == .treeLSTM
        for (buffer, count) in [(\TreeModel.dGates, N * GH), (\.dh, N * H), (\.dChildren, N * 2 * H), (\.dx, N * E),
                                (\.dSelected, M * H)] {
            Self.ensure(&self[keyPath: buffer], count)
        }
        if lstm {
            Self.ensure(&dc, N * H)
            Self.ensure(&dcChildren, N * 2 * H)
            dc.pointer.update(repeating: 0, count: N * H)
        }
        // Head: dW_head += dLogitsᵀ · selected, db += Σ rows, dSelected = dLogits · W_head.
        BLAS.sgemm(transA: true, m: C, n: H, k: M, a: dLogits, lda: C, b: selected.pointer, ldb: H, beta: 1,
                   c: arena.gradients(headWeight), ldc: H)
        RowKernels.accumulateColumnSums(arena.gradients(headBias), dLogits, rows: M, cols: C)
        BLAS.sgemm(m: M, n: H, k: C, a: dLogits, lda: C, b: arena.parameters(headWeight), ldb: H, beta: 0,
                   c: dSelected.pointer, ldc: H)
        let dhp = dh.pointer, dg = dGates.pointer, dk = dChildren.pointer
        dhp.update(repeating: 0, count: N * H)
        for (i, row) in headRows.enumerated() {
            RowKernels.add(dhp + Int(row) * H, dSelected.pointer + i * H, count: H)
        }
        // Levels top-down: a level's ∂L/∂h (and ∂L/∂c) is complete once every higher level is done.
        for level in stride(from: batch.levelStarts.count - 2, through: 0, by: -1) {
            let s = batch.levelStarts[level], m = batch.levelStarts[level + 1] - s
            guard m > 0 else { continue }
            if lstm {
                TreeLSTMKernels.backward(dGates: dg + s * GH, dcChildren: dcChildren.pointer + s * 2 * H,
                                         dc: dc.pointer + s * H, dh: dhp + s * H, gates: gates.pointer + s * GH,
                                         cChildren: cChildren.pointer + s * 2 * H, tanhC: tanhC.pointer + s * H,
                                         batch: m, hidden: H)
            } else {
                ElmanKernels.backward(dPre: dg + s * GH, dh: dhp + s * H, h: h.pointer + s * H, count: m * H, relu: false)
            }
            guard level > 0 else { continue }
            // [∂h_L ∂h_R] (m, 2H) = dGates · W_hh, scattered to the children's rows.
            BLAS.sgemm(m: m, n: 2 * H, k: GH, a: dg + s * GH, lda: GH, b: arena.parameters(weightHH), ldb: 2 * H,
                       beta: 0, c: dk + s * 2 * H, ldc: 2 * H)
            for r in s..<(s + m) {
                RowKernels.add(dhp + Int(batch.leftRows[r]) * H, dk + r * 2 * H, count: H)
                RowKernels.add(dhp + Int(batch.rightRows[r]) * H, dk + r * 2 * H + H, count: H)
                if lstm {
                    RowKernels.add(dc.pointer + Int(batch.leftRows[r]) * H, dcChildren.pointer + r * 2 * H, count: H)
                    RowKernels.add(dc.pointer + Int(batch.rightRows[r]) * H, dcChildren.pointer + r * 2 * H + H, count: H)
                }
            }
        }
        // Weight gradients, one GEMM each: W_hh over the inner rows, W_ih and b over all rows.
        let inner = batch.levelStarts.count > 1 ? batch.levelStarts[1] : N
        BLAS.sgemm(transA: true, m: GH, n: 2 * H, k: N - inner, a: dg + inner * GH, lda: GH,
                   b: children.pointer + inner * 2 * H, ldb: 2 * H, beta: 1, c: arena.gradients(weightHH), ldc: 2 * H)
        BLAS.sgemm(transA: true, m: GH, n: E, k: N, a: dg, lda: GH, b: x.pointer, ldb: E, beta: 1,
                   c: arena.gradients(weightIH), ldc: E)
        RowKernels.accumulateColumnSums(arena.gradients(bias), dg, rows: N, cols: GH)
        // ∂L/∂x (N, E) = dGates · W_ih, added to the embedding rows of the nodes' tokens.
        BLAS.sgemm(m: N, n: E, k: GH, a: dg, lda: GH, b: arena.parameters(weightIH), ldb: E, beta: 0,
                   c: dx.pointer, ldc: E)
        let dTable = arena.gradients(embedding)
        for r in 0..<N where batch.tokens[r] >= 0 {
            RowKernels.add(dTable + Int(batch.tokens[r]) * E, dx.pointer + r * E, count: E)
        }
    }
}
