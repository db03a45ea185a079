// Swift face of the grouped weight-gradient kernel (CKernels/group_gemm.c): C += the halving-tree
// sum over reduction groups of each group's aᵀ·b, with the groups' rows addressed in place.
import CKernels

/// Weight-gradient products under fixed reduction groups.
public enum GroupedGEMM {
    /// Where group q's row (t, u) sits, in rows: `q · groupStride + t · stepStride + u`.
    public struct RowLayout: Sendable, Equatable {
        public let groupStride: Int
        public let stepStride: Int

        /// Time-major (T, B, ·) rows of a batch of `batch` streams cut into groups of `groupSize`.
        public static func timeMajor(batch: Int, groupSize: Int) -> RowLayout {
            RowLayout(groupStride: groupSize, stepStride: batch)
        }

        /// Group-major (K, T, g, ·) rows: each group's T·g rows contiguous.
        public static func groupMajor(steps: Int, groupSize: Int) -> RowLayout {
            RowLayout(groupStride: steps * groupSize, stepStride: groupSize)
        }
    }

    /// Floats of scratch `accumulate` needs for these sizes.
    public static func scratchCount(m: Int, n: Int, steps: Int, groupSize: Int, groups: Int) -> Int {
        uk_group_gemm_tn_scratch(Int32(m), Int32(n), Int32(steps), Int32(groupSize), Int32(groups))
    }

    /// c (m×n, row stride ldc) += Σ_tree over `groups` groups of Σ over the group's rows of
    /// a_rowᵀ·b_row, a's rows m wide (stride lda) and b's n wide (stride ldb), placed by `layout`.
    /// A group's sum is one FMA chain per element over its rows in (t, u) order and the groups are
    /// added by ReductionGroups' halving tree, so the bits do not depend on the ISA, on which rank
    /// holds the group, or on how many groups it holds beside it.
    /// - Precondition: `scratch` holds `scratchCount(...)` floats; steps, groupSize ≥ 1.
    public static func accumulate(m: Int, n: Int, steps: Int, groupSize: Int, groups: Int, layout: RowLayout,
                                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                  c: UnsafeMutablePointer<Float>, ldc: Int, scratch: UnsafeMutablePointer<Float>) {
        let status = uk_group_gemm_tn(Int32(m), Int32(n), Int32(steps), Int32(groupSize), Int32(groups),
                                      layout.groupStride, layout.stepStride, a, Int32(lda), b, Int32(ldb), c,
                                      Int32(ldc), scratch)
        checkStatus(status, steps: steps, groupSize: groupSize, groups: groups)
    }

    /// a's rows packed once by `pack`, for several products that share a (an LSTM's dW_hh and dW_ih
    /// both read ∂L/∂gates): each `accumulate(packed:…)` then reads them instead of a.
    public struct PackedRows {
        public let m: Int, steps: Int, groupSize: Int, groups: Int
        public let layout: RowLayout
        public let pointer: UnsafePointer<Float>
    }

    /// Floats `pack` writes for these sizes.
    public static func packedRowsCount(m: Int, steps: Int, groupSize: Int, groups: Int) -> Int {
        uk_group_gemm_tn_a_floats(Int32(m), Int32(steps), Int32(groupSize), Int32(groups))
    }

    /// Floats of scratch `accumulate(packed:…)` needs for b's rows.
    public static func productScratchCount(n: Int, steps: Int, groupSize: Int, groups: Int) -> Int {
        uk_group_gemm_tn_b_scratch(Int32(n), Int32(steps), Int32(groupSize), Int32(groups))
    }

    /// Packs a's rows (m wide, stride lda, placed by `layout`) into `into`, which holds
    /// `packedRowsCount(...)` floats and must outlive the products that read it.
    public static func pack(m: Int, steps: Int, groupSize: Int, groups: Int, layout: RowLayout,
                            a: UnsafePointer<Float>, lda: Int, into: UnsafeMutablePointer<Float>) -> PackedRows {
        let status = uk_group_gemm_tn_pack_a(Int32(m), Int32(steps), Int32(groupSize), Int32(groups), layout.groupStride,
                                             layout.stepStride, a, Int32(lda), into)
        checkStatus(status, steps: steps, groupSize: groupSize, groups: groups)
        return PackedRows(m: m, steps: steps, groupSize: groupSize, groups: groups, layout: layout,
                          pointer: UnsafePointer(into))
    }

    /// `accumulate` with a's rows from `pack`: same bits.
    /// - Precondition: `scratch` holds `productScratchCount(n:…)` floats.
    public static func accumulate(packed a: PackedRows, n: Int, b: UnsafePointer<Float>, ldb: Int,
                                  c: UnsafeMutablePointer<Float>, ldc: Int, scratch: UnsafeMutablePointer<Float>) {
        let status = uk_group_gemm_tn_packed(Int32(a.m), Int32(n), Int32(a.steps), Int32(a.groupSize), Int32(a.groups),
                                             a.layout.groupStride, a.layout.stepStride, a.pointer, b, Int32(ldb), c,
                                             Int32(ldc), scratch)
        checkStatus(status, steps: a.steps, groupSize: a.groupSize, groups: a.groups)
    }

    /// The kernels refuse only sizes the callers never pass (no rows, more than 2³⁰ rows).
    private static func checkStatus(_ status: Int32, steps: Int, groupSize: Int, groups: Int) {
        precondition(status == 0, "grouped weight gradient: \(groups) groups of \(steps)×\(groupSize) rows refused")
    }
}
