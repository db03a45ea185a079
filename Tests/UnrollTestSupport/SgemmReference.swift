// The naive matrix product that BLAS.sgemm is tested against (a test oracle, so it lives with the
// tests rather than in UnrollKernels).
import UnrollKernels

extension BLAS {
    /// The naive triple loop with Double accumulation that `sgemm` is tested against.
    public static func sgemmReference(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                      alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                      b: UnsafePointer<Float>, ldb: Int,
                                      beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(av) * Double(bv)
                }
                let prior = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * sum + prior)
            }
        }
    }
}
