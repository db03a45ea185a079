// Reduction groups for sequence tasks (`--reduction-group g`, Sources/UnrollTraining/TrainingStep.md
// item 2): the B sequences of a global batch (longest first) are cut into K = B/g groups of g
// consecutive rows and rank r of W runs groups [r·K/W, (r+1)·K/W). Each group runs alone through
// the whole model — all its windows, the state carried between them, its own padding — so every
// product in it (input projection, recurrence, head, weight GEMMs, bias and embedding sums) has the
// same shape and inputs wherever the group runs. The group's gradient (the dense part and the
// embedding rows this rank's tokens touched, in a compact block) and its loss are the leaves of the
// halving tree; a rank's groups form a whole subtree, which the communicator's fold over the ranks
// completes, so np = 1, 2, 4, … write the same bits. Groups past the end of a short last batch are
// zero leaves. Padded steps contribute exact zeros as without groups.
// Why whole groups rather than the layers' grouped path (RecurrentLayer `finishBackwardGrouped`):
// a sequence batch runs as many windows as its longest row and as many steps as the rank's longest
// row, both of which depend on W; a tree per window would add the windows before the ranks.
import UnrollKernels
import UnrollModels

extension SequenceTask {
    /// This rank's share of the prepared step, group by group (see the file header): the gradient
    /// is written (not added: the trainer zeroed it, and `--accumulate` is refused with groups) as
    /// the halving-tree sum of the groups' gradients; the loss likewise, in Double.
    func forwardBackwardGrouped(_ groups: ReductionGroups, step: Int, ready: (_ offset: Int) -> Void,
                                progress: @escaping () -> Void) -> (lossSum: Double, count: Int) {
        let rows = self.rows, positions = self.positions
        self.rows = []
        let g = groups.size, K = groups.groups(inBatch: config.batchSize) / communicator.size
        let gradient = arena.gradients.pointer

        // Compact layout: [dense part (everything after the embedding) | touched embedding rows].
        var touched: [Int32] = []
        var denseStart = 0, width = 0
        if let view = model.embeddingView, let train, case .tokens(let ids) = train.inputs {
            precondition(view.offset == 0, "the embedding starts the arena")
            denseStart = view.count
            width = view.shape[1]
            if embeddingSlot.count != view.shape[0] { embeddingSlot = [Int32](repeating: -1, count: view.shape[0]) }
            for row in rows {
                for id in ids[Int(train.offsets[row])..<Int(train.offsets[row + 1])] where embeddingSlot[Int(id)] < 0 {
                    embeddingSlot[Int(id)] = Int32(touched.count)
                    touched.append(id)
                }
            }
        }
        let dense = arena.count - denseStart, n = dense + touched.count * width
        if groupTotal.count < n { groupTotal = FloatBuffer(count: n) }
        let total = groupTotal.pointer
        total.update(repeating: 0, count: n)

        var losses = [Double](repeating: 0, count: K), count = 0
        groups.sum(groups: K, into: total, count: n) { q, out in
            let part = min(q * g, rows.count)..<min((q + 1) * g, rows.count)
            guard !part.isEmpty else {
                out.update(repeating: 0, count: n)
                return
            }
            // The group alone: its gradient from zero in the arena, then packed into `out`.
            (gradient + denseStart).update(repeating: 0, count: dense)
            for id in touched { (gradient + Int(id) * width).update(repeating: 0, count: width) }
            let (s, c) = runRows(Array(rows[part]), positions: Array(positions[part]), step: step, ready: nil,
                                 progress: progress)
            losses[q] = s
            count += c
            out.update(from: gradient + denseStart, count: dense)
            for (slot, id) in touched.enumerated() {
                (out + dense + slot * width).update(from: gradient + Int(id) * width, count: width)
            }
        }
        (gradient + denseStart).update(from: total, count: dense)
        for (slot, id) in touched.enumerated() {
            (gradient + Int(id) * width).update(from: total + dense + slot * width, count: width)
            embeddingSlot[Int(id)] = -1
        }
        ready(0)
        return (ReductionGroups.treeSum(losses), count)
    }
}
