// Tree models (TreeModel.swift): finite-difference checks of every parameter of both tree cells,
// with the head on the roots and on every node, over a batch of trees of different shapes (inner
// nodes with and without a token); the level layout of `TreeBatch`; and that a batch gives each
// tree the same outputs as the tree alone (nodes of other trees never mix in).
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

/// Three small trees in post-order: ((a b) c) with an operator token at the inner nodes, a single
/// leaf, and (a (b c)) whose root has no token (-1).
let sampleTrees: [(left: [Int32], right: [Int32], tokens: [Int32])] = [
    ([-1, -1, 0, -1, 2], [-1, -1, 1, -1, 3], [1, 2, 5, 3, 6]),
    ([-1], [-1], [4]),
    ([-1, -1, -1, 1, 0], [-1, -1, -1, 2, 3], [2, 1, 3, 6, -1]),
]

func sampleBatch(_ trees: [(left: [Int32], right: [Int32], tokens: [Int32])] = sampleTrees) -> TreeBatch {
    TreeBatch(trees: trees.map { ($0.left[...], $0.right[...], $0.tokens[...]) })
}

/// Tolerances as the other gradient checks: Float32 forward passes differenced in Double.
private let eps: Float = 1e-2, rtol = 2e-2, atol = 2e-3

@Suite struct TreeModelTests {
    @Test func batchOrdersNodesByHeight() {
        let batch = sampleBatch()
        // Heights: tree 0: 0 0 1 0 2; tree 1: 0; tree 2: 0 0 0 1 2 → 7 leaves, 2 of height 1, 2 of height 2.
        #expect(batch.nodeCount == 11)
        #expect(batch.levelStarts == [0, 7, 9, 11])
        for r in 0..<batch.nodeCount where batch.leftRows[r] >= 0 {
            let level = batch.levelStarts.lastIndex { $0 <= r }!
            #expect(batch.levelStarts[level] > Int(batch.leftRows[r]) && batch.levelStarts[level] > Int(batch.rightRows[r]))
        }
        #expect(batch.rootRows.map { batch.tokens[Int($0)] } == [6, 4, -1])
        #expect(batch.rowOfNode.count == 11 && Set(batch.rowOfNode).count == 11)
    }

    @Test(arguments: [CellKind.treeRNN, .treeLSTM], [false, true])
    func treeModelBackwardMatchesFiniteDifferences(cell: CellKind, everyNode: Bool) {
        let config = TreeModelConfig(cell: cell, vocabSize: 7, embeddingSize: 3, hiddenSize: 4, numClasses: 3)
        let model = TreeModel(config: config, seed: 5)
        var rng = TestRNG(seed: 9)
        rng.fill(model.arena.parameters.pointer, count: model.arena.count, -0.8, 0.8)
        let batch = sampleBatch()
        let rows = everyNode ? batch.rowOfNode : batch.rootRows
        let weights = FloatBuffer(rng.floats(rows.count * 3))
        // L = Σ weights ⊙ logits: every logit, so every path from a leaf to the head is checked.
        func loss() -> Double {
            model.forward(batch, headRows: rows)
            return dot(weights.pointer, model.outputs, count: rows.count * 3)
        }
        _ = loss()
        model.arena.zeroGradients()
        model.backward(dLogits: weights.pointer)
        for view in model.arena.layout.views {
            let r = checkGradient(parameter: model.arena.parameters(view), analytic: model.arena.gradients(view),
                                  indices: Array(0..<view.count), eps: eps, rtol: rtol, atol: atol, loss: loss)
            #expect(r.passed, "\(cell) every node \(everyNode) \(view.name): \(r)")
        }
    }

    @Test(arguments: [CellKind.treeRNN, .treeLSTM])
    func batchedTreesMatchTreesAlone(cell: CellKind) {
        let config = TreeModelConfig(cell: cell, vocabSize: 7, embeddingSize: 3, hiddenSize: 4, numClasses: 3)
        let model = TreeModel(config: config, seed: 3)
        let batch = sampleBatch()
        model.forward(batch, headRows: batch.rootRows)
        let together = Array(UnsafeBufferPointer(start: model.outputs, count: 9))
        for (t, tree) in sampleTrees.enumerated() {
            let alone = sampleBatch([tree])
            model.forward(alone, headRows: alone.rootRows)
            for k in 0..<3 {
                #expect(abs(model.outputs[k] - together[t * 3 + k]) <= 1e-5, "tree \(t) logit \(k)")
            }
        }
    }

    @Test func forgetBiasStartsAtOneForBothChildren() {
        let config = TreeModelConfig(cell: .treeLSTM, vocabSize: 3, embeddingSize: 2, hiddenSize: 2, numClasses: 2,
                                     forgetGateBias: true)
        let model = TreeModel(config: config, seed: 1)
        let b = model.arena.parameters(model.arena.view("tree.bias"))
        #expect((2..<6).allSatisfy { b[$0] == 1 })
        #expect(b[0] != 1 && b[6] != 1)
    }
}
