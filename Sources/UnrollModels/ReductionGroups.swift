// Fixed reduction groups: the association of a batch's gradient sum that does not depend on how
// the batch is split over ranks. The B streams are cut into K = B / g groups of g consecutive
// streams; every gradient that sums over rows (weight GEMMs, bias column sums, embedding rows, the
// loss) is computed per group, the same way wherever the group lives (weight gradients: GroupedGEMM,
// one FMA chain per element over the group's rows, read in place), and the K group contributions are
// added by a halving tree: node(lo, hi) = node(lo, mid) + node(mid, hi), mid = lo + (hi − lo) / 2.
// A rank holding K/W consecutive groups (W a power of two dividing K) holds a whole subtree, which
// it evaluates here; the communicator's reduction folds the W subtrees with the same halving tree
// over ranks (MPICommunicator+Reduction `fold`), so the total is the same bits at any W.
import UnrollKernels

/// Per-group evaluation of row sums for a rank's consecutive reduction groups, with the scratch it
/// needs (grown on first use, then reused every step).
public final class ReductionGroups {
    /// Streams per group (g).
    public let size: Int
    /// Tree levels: level ℓ holds the partial sum of a node at depth ℓ below the rank's root.
    private var levels: [FloatBuffer] = []
    private var levelCapacity = 0
    /// Contiguous copies of one group's rows, and a result buffer for callers.
    private var slots: [FloatBuffer] = []

    /// - Precondition: `size ≥ 1`.
    public init(size: Int) {
        precondition(size >= 1, "reduction group of \(size) streams")
        self.size = size
    }

    /// Number of groups in a batch of `batch` streams. - Precondition: `size` divides `batch`.
    public func groups(inBatch batch: Int) -> Int {
        precondition(batch % size == 0, "batch of \(batch) streams is not a whole number of groups of \(size)")
        return batch / size
    }

    /// Scratch buffer `slot` (0 … 4) with room for at least `count` floats; contents undefined.
    func scratch(_ slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while slots.count <= slot { slots.append(FloatBuffer(count: 1)) }
        if slots[slot].count < count { slots[slot] = FloatBuffer(count: count) }
        return slots[slot].pointer
    }

    /// Copies group `q`'s rows of the time-major `source` (T, B, width) into `dst` as a contiguous
    /// (T, g, width) block.
    func gather(into dst: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>, steps: Int, batch: Int,
                width: Int, group q: Int) {
        let g = size, block = g * width
        for t in 0..<steps {
            (dst + t * block).update(from: source + (t * batch + q * g) * width, count: block)
        }
    }

    /// The inverse of `gather(into:)`: writes the contiguous (T, g, width) block `src` back as
    /// group `q`'s rows of the time-major `destination` (T, B, width).
    func scatter(_ src: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, steps: Int, batch: Int,
                 width: Int, group q: Int) {
        let g = size, block = g * width
        for t in 0..<steps {
            (destination + (t * batch + q * g) * width).update(from: src + t * block, count: block)
        }
    }

    /// c (m×n) += the halving-tree sum over `groups` groups of each group's Σ_rows aᵀ·b — a weight
    /// gradient — with the rows read in place at `layout` (GroupedGEMM): no gathered copies, no
    /// per-group matrices, the tree added tile by tile in cache.
    func accumulateProducts(m: Int, n: Int, steps: Int, groups: Int, layout: GroupedGEMM.RowLayout,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        // One call, so that GroupedGEMM may pack a block by block (B's decoder.weight) instead of whole.
        let count = GroupedGEMM.scratchCount(m: m, n: n, steps: steps, groupSize: size, groups: groups)
        GroupedGEMM.accumulate(m: m, n: n, steps: steps, groupSize: size, groups: groups, layout: layout,
                               a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, scratch: scratch(4, count: count))
    }

    /// a's rows packed for `accumulateProducts(_:…)`, in scratch slot 4 (which the one-call form
    /// above also uses): valid until the next call of either.
    func packRows(m: Int, steps: Int, groups: Int, layout: GroupedGEMM.RowLayout, a: UnsafePointer<Float>,
                  lda: Int) -> GroupedGEMM.PackedRows {
        let count = GroupedGEMM.packedRowsCount(m: m, steps: steps, groupSize: size, groups: groups)
        return GroupedGEMM.pack(m: m, steps: steps, groupSize: size, groups: groups, layout: layout, a: a, lda: lda,
                                into: scratch(4, count: count))
    }

    /// `accumulateProducts` with a's rows packed once by `packRows` (products that share a): same bits.
    func accumulateProducts(_ a: GroupedGEMM.PackedRows, n: Int, b: UnsafePointer<Float>, ldb: Int,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
        let count = GroupedGEMM.productScratchCount(n: n, steps: a.steps, groupSize: size, groups: a.groups)
        GroupedGEMM.accumulate(packed: a, n: n, b: b, ldb: ldb, c: c, ldc: ldc, scratch: scratch(3, count: count))
    }

    /// result (n) += the halving-tree sum over `groups` groups of leaf(q, out), where `leaf` writes
    /// group q's contribution (n floats) into `out`, overwriting it. Leaves run in group order, one
    /// at a time. A rank holding groups [r·groups, (r+1)·groups) of a batch whose group count is a
    /// power of two times `groups` holds a whole subtree: the communicator's fold over the ranks
    /// then completes the tree of the whole batch. Public for the sequence task, whose leaves are
    /// the gradients of whole groups run alone through the model.
    public func sum(groups: Int, into result: UnsafeMutablePointer<Float>, count n: Int,
                    leaf: (_ q: Int, _ out: UnsafeMutablePointer<Float>) -> Void) {
        precondition(groups >= 1, "no groups")
        var depth = 1, span = 1
        while span < groups { span *= 2; depth += 1 }
        if levelCapacity < n || levels.count < depth {
            levelCapacity = max(levelCapacity, n)
            levels = (0..<max(depth, levels.count)).map { _ in FloatBuffer(count: levelCapacity) }
        }
        func node(_ lo: Int, _ hi: Int, _ level: Int) {
            let out = levels[level].pointer
            if hi - lo == 1 {
                leaf(lo, out)
                return
            }
            let mid = lo + (hi - lo) / 2
            node(lo, mid, level)
            node(mid, hi, level + 1)
            RowKernels.add(out, levels[level + 1].pointer, count: n)
        }
        node(0, groups, 0)
        RowKernels.add(result, levels[0].pointer, count: n)
    }

    /// The halving-tree sum of per-group values, as `sum` does for buffers.
    public static func treeSum(_ values: [Double]) -> Double {
        func node(_ lo: Int, _ hi: Int) -> Double {
            if hi - lo == 1 { return values[lo] }
            let mid = lo + (hi - lo) / 2
            return node(lo, mid) + node(mid, hi)
        }
        return values.isEmpty ? 0 : node(0, values.count)
    }
}
