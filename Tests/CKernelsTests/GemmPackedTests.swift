// Checks uk_pack_b + uk_gemm_packed on every path this CPU can run against a naive triple loop
// accumulating in Double. Most cases use small integers so every product and partial sum is exact
// in Float and any indexing mistake shows as an exact mismatch; one case uses real values with a
// rounding-error bound.
import CKernels
import Testing

/// One product C = alpha·A·op(B) + beta·C with explicit strides; matrices are row-major and the
/// padding past each row's logical width holds `padding` (NaN catches reads of padding).
private struct GemmCase: CustomStringConvertible {
    var m: Int, n: Int, k: Int
    var trans: Bool
    var alpha: Float = 1, beta: Float = 0
    var lda: Int, ldb: Int, ldc: Int
    var a: [Float], b: [Float], c: [Float]

    var description: String {
        "m=\(m) n=\(n) k=\(k) trans=\(trans) alpha=\(alpha) beta=\(beta) lda=\(lda) ldb=\(ldb) ldc=\(ldc)"
    }

    /// `extra` widens every leading dimension; `values` draws one element.
    init(m: Int, n: Int, k: Int, trans: Bool, alpha: Float = 1, beta: Float = 0, extra: Int = 0,
         rng: inout SplitMix64, values: (inout SplitMix64) -> Float = smallInteger) {
        self.m = m; self.n = n; self.k = k; self.trans = trans; self.alpha = alpha; self.beta = beta
        lda = k + extra
        ldb = (trans ? k : n) + extra
        ldc = n + extra
        let (bRows, bCols) = trans ? (n, k) : (k, n)
        a = Self.matrix(rows: m, cols: k, ld: lda, rng: &rng, values: values)
        b = Self.matrix(rows: bRows, cols: bCols, ld: ldb, rng: &rng, values: values)
        c = Self.matrix(rows: m, cols: n, ld: ldc, rng: &rng, values: values)
        // Padding of C must survive untouched; give it a value the test can recognise.
        for i in 0..<m { for j in n..<ldc { c[i * ldc + j] = 4242 } }
    }

    static func matrix(rows: Int, cols: Int, ld: Int, rng: inout SplitMix64,
                       values: (inout SplitMix64) -> Float) -> [Float] {
        var x = [Float](repeating: .nan, count: rows * ld)
        for i in 0..<rows { for j in 0..<cols { x[i * ld + j] = values(&rng) } }
        return x
    }

    func opB(_ p: Int, _ j: Int) -> Float { trans ? b[j * ldb + p] : b[p * ldb + j] }

    /// Naive reference in Double: (value, Σ|terms|) per element of C, row stride ldc.
    func reference() -> (value: [Double], magnitude: [Double]) {
        var value = [Double](repeating: 0, count: m * ldc)
        var magnitude = [Double](repeating: 0, count: m * ldc)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, mag = 0.0
                for p in 0..<k {
                    let t = Double(a[i * lda + p]) * Double(opB(p, j))
                    s += t
                    mag += abs(t)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                value[i * ldc + j] = Double(alpha) * s + old
                magnitude[i * ldc + j] = abs(Double(alpha)) * mag + abs(old)
            }
        }
        return (value, magnitude)
    }

    /// Packs op(B) (checking the packed size) and runs path `isa`; returns C.
    func run(isa: Int32) -> [Float] {
        let table = uk_kernels_for_isa(isa)!.pointee
        var out = c
        let packed = pack()
        table.gemm_packed(Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), packed, beta, &out,
                          Int32(ldc))
        return out
    }

    /// uk_gemm_on path `isa` (op(B) packed as the product goes); returns C.
    func runUnpacked(isa: Int32) -> [Float] {
        var out = c
        let status = uk_gemm_on(isa, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), trans ? 1 : 0,
                                beta, &out, Int32(ldc))
        precondition(status == 0, "uk_gemm_on failed")
        return out
    }

    func pack() -> [Float] {
        let count = uk_packed_floats(Int32(k), Int32(n))
        var packed = [Float](repeating: 777, count: count + 32)
        uk_pack_b(&packed, b, Int32(k), Int32(n), Int32(ldb), trans ? 1 : 0)
        precondition(packed[count...].allSatisfy { $0 == 777 }, "uk_pack_b wrote past uk_packed_floats")
        return packed
    }

    /// Mismatches of `out` against the reference: exact when `tolerance` is nil, else
    /// |error| ≤ tolerance · Σ|terms|. Also checks C's padding.
    func mismatches(_ out: [Float], tolerance: Double? = nil) -> [String] {
        let (ref, mag) = reference()
        var bad: [String] = []
        for i in 0..<m {
            for j in 0..<ldc {
                let got = out[i * ldc + j]
                if j >= n {
                    if got != 4242 { bad.append("padding C[\(i)][\(j)] = \(got)") }
                    continue
                }
                let want = ref[i * ldc + j]
                let ok = tolerance.map { abs(Double(got) - want) <= $0 * mag[i * ldc + j] + 1e-30 }
                    ?? (Double(got) == want)
                if !ok { bad.append("C[\(i)][\(j)] = \(got), want \(want)") }
            }
        }
        return bad
    }
}

/// Integers in -4...4: products and sums up to K = 2^19 stay exact in Float.
private func smallInteger(_ rng: inout SplitMix64) -> Float { Float(Int(rng.next() % 9) - 4) }

private let edgeSizesM = [1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 31, 33]
private let edgeSizesN = [1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 65, 95, 97]
private let edgeSizesK = [1, 2, 3, 7, 15, 16, 17, 33, 64, 129]

@Suite("Packed GEMM")
struct GemmPackedTests {
    @Test("edge shapes are exact for both packings", arguments: availablePaths)
    func edgeShapesExact(isa: Int32) {
        var rng = SplitMix64(seed: 11)
        var failures: [String] = []
        for (mi, m) in edgeSizesM.enumerated() {
            for (ni, n) in edgeSizesN.enumerated() {
                for trans in [false, true] {
                    // Rotate K so every (m, n) pair meets several K values across the sweep.
                    let k = edgeSizesK[(mi * 3 + ni + (trans ? 5 : 0)) % edgeSizesK.count]
                    let g = GemmCase(m: m, n: n, k: k, trans: trans, rng: &rng)
                    if let bad = g.mismatches(g.run(isa: isa)).first { failures.append("\(g): \(bad)") }
                }
            }
        }
        #expect(failures.isEmpty, "\(pathName(isa)): \(failures.count) shapes wrong, e.g. \(failures.prefix(3))")
    }

    @Test("every K from 1 to 70 is exact", arguments: availablePaths)
    func kSweepExact(isa: Int32) {
        var rng = SplitMix64(seed: 12)
        for k in 1...70 {
            let g = GemmCase(m: 9, n: 50, k: k, trans: k % 2 == 0, rng: &rng)
            let bad = g.mismatches(g.run(isa: isa))
            #expect(bad.isEmpty, "\(pathName(isa)) \(g): \(bad.prefix(3))")
        }
    }

    @Test("alpha, beta and wide leading dimensions", arguments: availablePaths)
    func alphaBetaStrides(isa: Int32) {
        var rng = SplitMix64(seed: 13)
        let scalings: [(Float, Float)] = [(1, 0), (0.5, 0), (-2, 1), (1, -1.5), (0, 2), (0.25, 0.5)]
        for (alpha, beta) in scalings {
            for extra in [0, 1, 5, 16] {
                for trans in [false, true] {
                    let g = GemmCase(m: 11, n: 37, k: 29, trans: trans, alpha: alpha, beta: beta,
                                     extra: extra, rng: &rng)
                    let bad = g.mismatches(g.run(isa: isa))
                    #expect(bad.isEmpty, "\(pathName(isa)) \(g): \(bad.prefix(3))")
                }
            }
        }
    }

    @Test("beta = 0 never reads C (NaN in C is ignored)", arguments: availablePaths)
    func betaZeroIgnoresNaN(isa: Int32) {
        var rng = SplitMix64(seed: 14)
        for (m, n, k) in [(1, 1, 1), (8, 48, 16), (13, 70, 33)] {
            var g = GemmCase(m: m, n: n, k: k, trans: true, alpha: 0.5, beta: 0, extra: 3, rng: &rng)
            for i in 0..<m { for j in 0..<n { g.c[i * g.ldc + j] = .nan } }
            let bad = g.mismatches(g.run(isa: isa))
            #expect(bad.isEmpty, "\(pathName(isa)) \(g): \(bad.prefix(3))")
        }
    }

    @Test("RNN shapes are exact on every path")
    func rnnShapesExact() {
        var rng = SplitMix64(seed: 15)
        // LSTM H=512 forward (h·W_hhᵀ), GRU-ish E=200 H=200 step, backward dh = dgates·W_hh.
        let cases = [
            GemmCase(m: 32, n: 2048, k: 512, trans: true, rng: &rng),
            GemmCase(m: 20, n: 800, k: 200, trans: true, beta: 1, rng: &rng),
            GemmCase(m: 32, n: 512, k: 2048, trans: false, rng: &rng),
        ]
        for g in cases {
            let (ref, _) = g.reference()
            for isa in availablePaths {
                let out = g.run(isa: isa)
                var wrong = 0
                for i in 0..<g.m { for j in 0..<g.n where Double(out[i * g.ldc + j]) != ref[i * g.ldc + j] { wrong += 1 } }
                #expect(wrong == 0, "\(pathName(isa)) \(g): \(wrong) wrong elements")
            }
        }
    }

    @Test("real-valued inputs stay within the float rounding bound", arguments: availablePaths)
    func realValuesWithinRoundingBound(isa: Int32) {
        var rng = SplitMix64(seed: 16)
        for (m, n, k) in [(32, 200, 512), (7, 33, 1000), (1, 5, 3)] {
            let g = GemmCase(m: m, n: n, k: k, trans: m % 2 == 0, alpha: 0.7, beta: 0.3, extra: 2,
                             rng: &rng, values: { Float.random(in: -1...1, using: &$0) })
            // Float summation of k+2 terms errs by at most (k+2)·2^-24 of Σ|terms|; allow 2×.
            let bound = Double(k + 2) * Double(Float.ulpOfOne)
            let bad = g.mismatches(g.run(isa: isa), tolerance: bound)
            #expect(bad.isEmpty, "\(pathName(isa)) \(g): \(bad.prefix(3))")
        }
    }

    @Test("packing Bᵀ with trans = 1 equals packing B with trans = 0")
    func transposedPackingAgrees() {
        var rng = SplitMix64(seed: 17)
        for (k, n) in [(1, 1), (5, 47), (64, 96), (33, 130), (300, 17)] {
            let b = (0..<(k * n)).map { _ in smallInteger(&rng) }
            var bt = [Float](repeating: 0, count: n * k)
            for p in 0..<k { for j in 0..<n { bt[j * k + p] = b[p * n + j] } }
            let count = uk_packed_floats(Int32(k), Int32(n))
            #expect(count >= k * n)
            var p0 = [Float](repeating: .nan, count: count)
            var p1 = [Float](repeating: .nan, count: count)
            uk_pack_b(&p0, b, Int32(k), Int32(n), Int32(n), 0)
            uk_pack_b(&p1, bt, Int32(k), Int32(n), Int32(k), 1)
            #expect(p0.map(\.bitPattern) == p1.map(\.bitPattern), "k=\(k) n=\(n)")
            #expect(!p0.contains { $0.isNaN }, "k=\(k) n=\(n): packed buffer not fully written")
        }
    }

    @Test("degenerate shapes: k = 0 scales C by beta, m = 0 or n = 0 does nothing",
          arguments: availablePaths)
    func degenerateShapes(isa: Int32) {
        let table = uk_kernels_for_isa(isa)!.pointee
        #expect(uk_packed_floats(0, 5) == 0 && uk_packed_floats(5, 0) == 0)
        let a: [Float] = [1], packed: [Float] = [1]
        var c: [Float] = [1, 2, 3, 4]
        table.gemm_packed(2, 2, 0, 1, a, 1, packed, 3, &c, 2)
        #expect(c == [3, 6, 9, 12])
        c = [.nan, .nan, .nan, .nan]
        table.gemm_packed(2, 2, 0, 1, a, 1, packed, 0, &c, 2)
        #expect(c == [0, 0, 0, 0])
        table.gemm_packed(0, 2, 3, 1, a, 1, packed, 0, &c, 2)
        table.gemm_packed(2, 0, 3, 1, a, 1, packed, 0, &c, 2)
        #expect(c == [0, 0, 0, 0])
    }

    @Test("the public entry point agrees with the active path")
    func publicEntryPoint() {
        var rng = SplitMix64(seed: 18)
        let g = GemmCase(m: 5, n: 60, k: 21, trans: true, alpha: 2, beta: -1, extra: 1, rng: &rng)
        let packed = g.pack()
        var out = g.c
        uk_gemm_packed(Int32(g.m), Int32(g.n), Int32(g.k), g.alpha, g.a, Int32(g.lda), packed, g.beta,
                       &out, Int32(g.ldc))
        let bad = g.mismatches(out)
        #expect(bad.isEmpty, "\(g): \(bad.prefix(3))")
    }

    /// Reduction groups need every row of C to be the same bits whatever M is and wherever the row
    /// sits. The shapes take the AVX2 path through all its variants: rows in place (N < 64), packed
    /// rows with op(B)'s block in L2 (N = 200) and strip by strip (N = 1,100), two k-blocks, and
    /// more rows than one packed block (288).
    @Test("a row's bits do not depend on M or on where the row sits", arguments: availablePaths)
    func rowsAreIndependentOfM(isa: Int32) {
        let table = uk_kernels_for_isa(isa)!.pointee
        var rng = SplitMix64(seed: 19)
        for n in [40, 200, 1100] {
            let g = GemmCase(m: 700, n: n, k: 300, trans: true, beta: 1, rng: &rng,
                             values: { Float.random(in: -1...1, using: &$0) })
            let packed = g.pack()
            var whole = g.c
            table.gemm_packed(Int32(g.m), Int32(n), Int32(g.k), 1, g.a, Int32(g.lda), packed, 1, &whole,
                              Int32(g.ldc))
            var wrong: [String] = []
            for (start, rows) in [(0, 1), (5, 7), (287, 2), (290, 301), (699, 1), (13, 600)] {
                var part = Array(g.c[(start * g.ldc)..<((start + rows) * g.ldc)])
                g.a.withUnsafeBufferPointer { a in
                    table.gemm_packed(Int32(rows), Int32(n), Int32(g.k), 1, a.baseAddress! + start * g.lda,
                                      Int32(g.lda), packed, 1, &part, Int32(g.ldc))
                }
                let expected = whole[(start * g.ldc)..<((start + rows) * g.ldc)]
                if part.map(\.bitPattern) != expected.map(\.bitPattern) { wrong.append("rows \(start)..<\(start + rows)") }
            }
            #expect(wrong.isEmpty, "\(pathName(isa)) n=\(n): \(wrong)")
        }
    }

    /// uk_gemm packs op(B) a k-block or a strip at a time instead of whole; it must give exactly
    /// the bits of uk_pack_b + uk_gemm_packed on the same path. The shapes take every AVX2 branch:
    /// op(B)'s k-block packed whole (N ≤ 512) with A packed (N ≥ 128) or in place, several k-blocks
    /// and row blocks; strip by strip (N > 512) with one and with two blocks of rows; last strips of
    /// 1–8 columns (the half tile) and of 9–15; α, β and wide leading dimensions.
    @Test("uk_gemm gives the bits of pack + packed product", arguments: availablePaths)
    func unpackedMatchesPacked(isa: Int32) {
        var rng = SplitMix64(seed: 20)
        let shapes: [(m: Int, n: Int, k: Int, trans: Bool, alpha: Float, beta: Float, extra: Int)] = [
            (400, 200, 1_000, false, 1, 0, 0),   // B's ∂L/∂x in small: k-blocks, A packed, 8-column tail
            (301, 200, 513, true, 1, 1, 3),
            (50, 40, 300, false, 0.5, -1, 1),     // A in place, 8-column tail
            (17, 65, 70, true, 1, 0, 0),          // 1-column tail
            (700, 1_100, 300, true, 1, 1, 0),     // strip by strip, two row blocks, two k-blocks
            (400, 1_000, 200, true, 1, 1, 2),     // B's logits in small
            (9, 600, 33, false, 2, 0.5, 5),
            (1, 1, 1, true, 1, 0, 0),
        ]
        var failures: [String] = []
        for s in shapes {
            let g = GemmCase(m: s.m, n: s.n, k: s.k, trans: s.trans, alpha: s.alpha, beta: s.beta, extra: s.extra,
                             rng: &rng, values: { Float.random(in: -1...1, using: &$0) })
            let packed = g.run(isa: isa), unpacked = g.runUnpacked(isa: isa)
            if packed.map(\.bitPattern) != unpacked.map(\.bitPattern) { failures.append("\(g)") }
        }
        #expect(failures.isEmpty, "\(pathName(isa)): \(failures)")
    }

    @Test("uk_gemm is exact on edge shapes", arguments: availablePaths)
    func unpackedEdgeShapesExact(isa: Int32) {
        var rng = SplitMix64(seed: 21)
        var failures: [String] = []
        for (mi, m) in edgeSizesM.enumerated() {
            for (ni, n) in (edgeSizesN + [520, 530]).enumerated() {
                let trans = (mi + ni) % 2 == 0
                let k = edgeSizesK[(mi * 5 + ni) % edgeSizesK.count]
                let g = GemmCase(m: m, n: n, k: k, trans: trans, beta: mi % 3 == 0 ? 1 : 0, extra: ni % 3, rng: &rng)
                if let bad = g.mismatches(g.runUnpacked(isa: isa)).first { failures.append("\(g): \(bad)") }
            }
            // Strip by strip (op(B)'s k-block over 512 KiB), two k-blocks, with 1- and 8-column tails.
            for n in [1_025, 1_032] {
                let g = GemmCase(m: m, n: n, k: 300, trans: mi % 2 == 0, beta: 1, rng: &rng)
                if let bad = g.mismatches(g.runUnpacked(isa: isa)).first { failures.append("\(g): \(bad)") }
            }
        }
        #expect(failures.isEmpty, "\(pathName(isa)): \(failures.count) shapes wrong, e.g. \(failures.prefix(3))")
    }

    @Test("uk_gemm: k = 0 scales C by beta, m = 0 or n = 0 does nothing", arguments: availablePaths)
    func unpackedDegenerate(isa: Int32) {
        let a: [Float] = [1], b: [Float] = [1]
        var c: [Float] = [1, 2, 3, 4]
        #expect(uk_gemm_on(isa, 2, 2, 0, 1, a, 1, b, 1, 0, 3, &c, 2) == 0)
        #expect(c == [3, 6, 9, 12])
        #expect(uk_gemm_on(isa, 0, 2, 3, 1, a, 3, b, 2, 0, 0, &c, 2) == 0)
        #expect(uk_gemm_on(isa, 2, 0, 3, 1, a, 3, b, 1, 1, 0, &c, 2) == 0)
        #expect(c == [3, 6, 9, 12])
    }
}
