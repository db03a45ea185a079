// The cblas_sgemm wrapper against the naive reference, for every transpose variant.
import Testing
import UnrollKernels
import UnrollTestSupport

@Suite struct BLASTests {
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func sgemmMatchesNaiveReference(transA: Bool, transB: Bool) {
        var rng = TestRNG(seed: 7)
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 9, 33), (32, 64, 48)] {
            // Padded leading dimensions, to check they are honoured.
            let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 2, ldc = n + 1
            let a = rng.floats((transA ? k : m) * lda), b = rng.floats((transB ? n : k) * ldb)
            let c0 = rng.floats(m * ldc)
            for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                var fast = c0, slow = c0
                BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: &fast, ldc: ldc)
                BLAS.sgemmReference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                    b: b, ldb: ldb, beta: beta, c: &slow, ldc: ldc)
                for i in 0..<m {
                    for j in 0..<n {
                        #expect(abs(fast[i * ldc + j] - slow[i * ldc + j]) <= 1e-5 * Float(k) + 1e-6,
                                "m\(m) n\(n) k\(k) at (\(i),\(j))")
                    }
                    // Padding columns of C are untouched.
                    for j in n..<ldc { #expect(fast[i * ldc + j] == c0[i * ldc + j]) }
                }
            }
        }
    }

    @Test func betaZeroIgnoresNaNInOutput() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [1, 0, 0, 1]
        var c = [Float](repeating: .nan, count: 4)
        BLAS.sgemm(m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, beta: 0, c: &c, ldc: 2)
        #expect(c == [1, 2, 3, 4])
    }

    @Test func blasReportsItsCore() {
        #expect(!BLAS.coreName.isEmpty && BLAS.coreName != "unknown")
        #expect(BLAS.threads >= 1)
    }
}

@Suite struct ReductionTests {
    @Test(arguments: [0, 1, 15, 16, 17, 4095, 4096, 4097, 10_001])
    func reductionsMatchDoubleReference(count: Int) {
        var rng = TestRNG(seed: UInt64(count) + 1)
        let x = rng.floats(count, -3, 3)
        let squares = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        let sum = x.reduce(0.0) { $0 + Double($1) }
        #expect(abs(RowKernels.sumOfSquares(x, count: count) - squares) <= 1e-5 * max(1, squares))
        #expect(abs(RowKernels.sum(x, count: count) - sum) <= 1e-5 * max(1, x.reduce(0.0) { $0 + abs(Double($1)) }))
        #expect(RowKernels.maximum(x, count: count) == (x.max() ?? -.infinity))
    }
}
