// Checks uk_group_gemm_tn bit for bit against its definition written out plainly: each group's
// sum one fused multiply-add chain per element over the group's rows in (t, u) order, the groups
// added by the halving tree, then C + root — on every path this CPU runs, on shapes that exercise
// partial tiles, non-power-of-two group counts, groups longer than a block, both row layouts, and
// real-valued data (so any change of summation order shows). Also checks the property reduction
// groups rely on: the tree of all groups is the sum of the trees of the two halves, computed apart.
import CKernels
import Testing

struct GroupCase: CustomStringConvertible, Sendable {
    var m: Int, n: Int, steps: Int, groupSize: Int, groups: Int
    /// Streams in the batch (≥ groups · groupSize: a rank's groups inside a larger batch).
    var batch: Int
    var groupMajor: Bool
    var extra = 3

    var description: String {
        "m=\(m) n=\(n) T=\(steps) g=\(groupSize) K=\(groups) B=\(batch) \(groupMajor ? "group-major" : "time-major")"
    }
    var lda: Int { m + extra }
    var ldb: Int { n + extra }
    var ldc: Int { n + extra }
    var rowCount: Int { groupMajor ? groups * steps * groupSize : steps * batch }
    var groupStride: Int { groupMajor ? steps * groupSize : groupSize }
    var stepStride: Int { groupMajor ? groupSize : batch }
    func row(_ q: Int, _ t: Int, _ u: Int) -> Int { q * groupStride + t * stepStride + u }
}

private func realValue(_ rng: inout SplitMix64) -> Float {
    Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) * 1.7
}

private func randomMatrix(rows: Int, cols: Int, ld: Int, rng: inout SplitMix64) -> [Float] {
    var x = [Float](repeating: .nan, count: rows * ld)
    for i in 0..<rows { for j in 0..<cols { x[i * ld + j] = realValue(&rng) } }
    return x
}

/// The definition: C + halving-tree over groups [lo, hi) of fma-chain leaves.
private func reference(_ k: GroupCase, a: [Float], b: [Float], c: [Float], lo: Int, hi: Int) -> [Float] {
    func leaf(_ q: Int) -> [Float] {
        var out = [Float](repeating: 0, count: k.m * k.n)
        for i in 0..<k.m {
            for j in 0..<k.n {
                var acc: Float = 0
                for t in 0..<k.steps {
                    for u in 0..<k.groupSize {
                        let r = k.row(q, t, u)
                        acc = acc.addingProduct(a[r * k.lda + i], b[r * k.ldb + j])
                    }
                }
                out[i * k.n + j] = acc
            }
        }
        return out
    }
    func node(_ lo: Int, _ hi: Int) -> [Float] {
        if hi - lo == 1 { return leaf(lo) }
        let mid = lo + (hi - lo) / 2
        let left = node(lo, mid), right = node(mid, hi)
        return zip(left, right).map { $0 + $1 }
    }
    let root = node(lo, hi)
    var result = c
    for i in 0..<k.m { for j in 0..<k.n { result[i * k.ldc + j] = c[i * k.ldc + j] + root[i * k.n + j] } }
    return result
}

/// Runs the kernel on path `isa` for groups [lo, hi) of the case (the rows of group lo first).
private func run(_ k: GroupCase, isa: Int32, a: [Float], b: [Float], c: [Float], lo: Int, hi: Int) -> [Float]? {
    let groups = hi - lo
    let count = uk_group_gemm_tn_scratch(Int32(k.m), Int32(k.n), Int32(k.steps), Int32(k.groupSize), Int32(groups))
    var scratch = [Float](repeating: .nan, count: count)
    var result = c
    let first = k.row(lo, 0, 0)
    let status = a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            result.withUnsafeMutableBufferPointer { r in
                scratch.withUnsafeMutableBufferPointer { s in
                    uk_group_gemm_tn_on(isa, Int32(k.m), Int32(k.n), Int32(k.steps), Int32(k.groupSize), Int32(groups),
                                        k.groupStride, k.stepStride, a.baseAddress! + first * k.lda, Int32(k.lda),
                                        b.baseAddress! + first * k.ldb, Int32(k.ldb), r.baseAddress!, Int32(k.ldc),
                                        s.baseAddress!)
                }
            }
        }
    }
    return status == 0 ? result : nil
}

let groupCases: [GroupCase] = [
    GroupCase(m: 13, n: 17, steps: 5, groupSize: 3, groups: 4, batch: 12, groupMajor: false),
    GroupCase(m: 100, n: 37, steps: 5, groupSize: 3, groups: 4, batch: 20, groupMajor: false),
    GroupCase(m: 61, n: 50, steps: 7, groupSize: 5, groups: 4, batch: 20, groupMajor: true),
    GroupCase(m: 40, n: 33, steps: 9, groupSize: 1, groups: 21, batch: 21, groupMajor: false),
    GroupCase(m: 7, n: 16, steps: 300, groupSize: 1, groups: 6, batch: 6, groupMajor: false),
    GroupCase(m: 48, n: 64, steps: 64, groupSize: 4, groups: 8, batch: 32, groupMajor: false),
    GroupCase(m: 6, n: 1, steps: 3, groupSize: 2, groups: 1, batch: 4, groupMajor: false),
    GroupCase(m: 1, n: 40, steps: 2, groupSize: 2, groups: 3, batch: 6, groupMajor: true),
    // 34 panels × 19 strips, an odd number of groups (9) and 297 rows.
    GroupCase(m: 200, n: 300, steps: 11, groupSize: 3, groups: 9, batch: 27, groupMajor: false),
    // 400 rows: a is packed a block of 306 columns at a time (blocks of 306, 306 and 8).
    GroupCase(m: 620, n: 20, steps: 20, groupSize: 5, groups: 4, batch: 20, groupMajor: true),
]

@Suite("Grouped weight-gradient kernel")
struct GroupGemmTests {
    @Test("every path equals the definition bit for bit", arguments: groupCases)
    func matchesDefinition(_ k: GroupCase) throws {
        var rng = SplitMix64(seed: UInt64(k.m * 7919 + k.n * 31 + k.groups))
        let a = randomMatrix(rows: k.rowCount, cols: k.m, ld: k.lda, rng: &rng)
        let b = randomMatrix(rows: k.rowCount, cols: k.n, ld: k.ldb, rng: &rng)
        var c = randomMatrix(rows: k.m, cols: k.n, ld: k.ldc, rng: &rng)
        for i in 0..<k.m { for j in k.n..<k.ldc { c[i * k.ldc + j] = 4242 } }
        let expected = reference(k, a: a, b: b, c: c, lo: 0, hi: k.groups)
        for isa in availablePaths {
            let got = try #require(run(k, isa: isa, a: a, b: b, c: c, lo: 0, hi: k.groups), "\(pathName(isa)) refused")
            let differing = zip(got, expected).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "\(pathName(isa)) \(k): \(differing) elements differ from the definition")
        }
    }

    @Test("the tree of all groups is the sum of its two halves, computed apart", arguments: groupCases.filter { $0.groups >= 2 })
    func halvesAddUp(_ k: GroupCase) throws {
        var rng = SplitMix64(seed: UInt64(k.m * 31 + k.n * 7 + k.groups))
        let a = randomMatrix(rows: k.rowCount, cols: k.m, ld: k.lda, rng: &rng)
        let b = randomMatrix(rows: k.rowCount, cols: k.n, ld: k.ldb, rng: &rng)
        let zero = [Float](repeating: 0, count: k.m * k.ldc)
        let mid = k.groups / 2
        for isa in availablePaths {
            let whole = try #require(run(k, isa: isa, a: a, b: b, c: zero, lo: 0, hi: k.groups))
            let left = try #require(run(k, isa: isa, a: a, b: b, c: zero, lo: 0, hi: mid))
            let right = try #require(run(k, isa: isa, a: a, b: b, c: zero, lo: mid, hi: k.groups))
            let joined = zip(left, right).map { $0 + $1 }
            let differing = (0..<k.m).flatMap { i in (0..<k.n).map { i * k.ldc + $0 } }
                .filter { whole[$0].bitPattern != joined[$0].bitPattern }.count
            #expect(differing == 0, "\(pathName(isa)) \(k): whole ≠ left + right in \(differing) elements")
        }
    }

    @Test("a packed once serves two products with the bits of two whole calls", arguments: groupCases)
    func packedOnceMatchesWholeCalls(_ k: GroupCase) throws {
        var rng = SplitMix64(seed: UInt64(k.m * 131 + k.n * 17 + k.groups))
        // A second b, narrower or wider than the first, as W_ih's input beside W_hh's state.
        let k2 = GroupCase(m: k.m, n: k.n % 2 == 0 ? k.n / 2 + 1 : k.n * 2 + 3, steps: k.steps,
                           groupSize: k.groupSize, groups: k.groups, batch: k.batch, groupMajor: k.groupMajor)
        let a = randomMatrix(rows: k.rowCount, cols: k.m, ld: k.lda, rng: &rng)
        let b1 = randomMatrix(rows: k.rowCount, cols: k.n, ld: k.ldb, rng: &rng)
        let b2 = randomMatrix(rows: k2.rowCount, cols: k2.n, ld: k2.ldb, rng: &rng)
        let c1 = randomMatrix(rows: k.m, cols: k.n, ld: k.ldc, rng: &rng)
        let c2 = randomMatrix(rows: k2.m, cols: k2.n, ld: k2.ldc, rng: &rng)
        let (m, T, g, K) = (Int32(k.m), Int32(k.steps), Int32(k.groupSize), Int32(k.groups))
        var packed = [Float](repeating: .nan, count: uk_group_gemm_tn_a_floats(m, T, g, K))
        var scratch = [Float](repeating: .nan, count: max(uk_group_gemm_tn_b_scratch(Int32(k.n), T, g, K),
                                                          uk_group_gemm_tn_b_scratch(Int32(k2.n), T, g, K)))
        #expect(uk_group_gemm_tn_pack_a(m, T, g, K, k.groupStride, k.stepStride, a, Int32(k.lda), &packed) == 0)
        for isa in availablePaths {
            for (kc, b, c) in [(k, b1, c1), (k2, b2, c2)] {
                let whole = try #require(run(kc, isa: isa, a: a, b: b, c: c, lo: 0, hi: kc.groups))
                var got = c
                let status = got.withUnsafeMutableBufferPointer { got in
                    uk_group_gemm_tn_packed_on(isa, m, Int32(kc.n), T, g, K, kc.groupStride, kc.stepStride, packed, b,
                                               Int32(kc.ldb), got.baseAddress!, Int32(kc.ldc), &scratch)
                }
                #expect(status == 0)
                let differing = zip(got, whole).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(pathName(isa)) \(kc): \(differing) elements differ from one whole call")
            }
        }
    }

    @Test("refuses empty steps or groups without touching C")
    func refusesDegenerate() {
        var c: [Float] = [1, 2, 3, 4]
        let a: [Float] = [1, 1], b: [Float] = [1, 1]
        var scratch = [Float](repeating: 0, count: 64)
        let status = c.withUnsafeMutableBufferPointer { c in
            uk_group_gemm_tn(2, 2, 0, 1, 1, 1, 1, a, 2, b, 2, c.baseAddress!, 2, &scratch)
        }
        #expect(status == -1)
        #expect(c == [1, 2, 3, 4])
    }
}
