// Matrix products: a thin wrapper over OpenBLAS `cblas_sgemm` (row-major, all transpose variants;
// the naive reference the tests compare it with is in Tests/UnrollTestSupport/SgemmReference.swift),
// and the BLAS runtime controls (thread count, which CPU kernels OpenBLAS selected). This file is the only importer of CCBLAS.
import CCBLAS
import CKernels

/// Row-major single-precision matrix products and OpenBLAS runtime controls.
public enum BLAS {
    /// C(m×n) = alpha · op(A)(m×k) · op(B)(k×n) + beta · C, all row-major.
    /// `op(A)` is A (stored m×k, `lda` ≥ k) or, with `transA`, Aᵀ (A stored k×m, `lda` ≥ m); same for B.
    /// With beta = 0, C is not read (NaNs in C do not propagate).
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size")
        precondition(lda >= max(1, transA ? m : k) && ldb >= max(1, transB ? k : n) && ldc >= max(1, n),
                     "sgemm: leading dimension too small")
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Floats needed to hold a K×N right operand packed by `pack`.
    public static func packedCount(k: Int, n: Int) -> Int { uk_packed_floats(Int32(k), Int32(n)) }

    /// Packs op(B) (K×N) once for many `gemmPacked` calls: `transB` means B is stored N×K (ldb ≥ k)
    /// and used transposed, e.g. W_hh (G·H × H) for h·W_hhᵀ; otherwise B is stored K×N (ldb ≥ n).
    @inlinable
    public static func pack(_ packed: UnsafeMutablePointer<Float>, b: UnsafePointer<Float>, k: Int, n: Int, ldb: Int,
                            transB: Bool) {
        uk_pack_b(packed, b, Int32(k), Int32(n), Int32(ldb), transB ? 1 : 0)
    }

    /// C(m×n) = alpha · A(m×k) · op(B) + beta · C with op(B) packed by `pack`: the per-time-step
    /// product of a recurrent layer, where B (W_hh) stays the same for the whole window and
    /// repacking it on every call (as sgemm does) would cost as much as the product at small m.
    @inlinable
    public static func gemmPacked(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                  packed: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        uk_gemm_packed(Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), packed, beta, c, Int32(ldc))
    }

    /// `gemmPacked` over many rows (uk_gemm_packed runs them in blocks of 288, so that a block of A
    /// stays in L2 while op(B) streams past it: at E's input projection, 2,048 × 4,096 × 1,024,
    /// blocks of 96 rows reached 69 GFLOP/s, of 288 rows 80). Every row's result is the same bits
    /// whatever `m` and wherever the row sits — OpenBLAS's `sgemm` does not promise that (its edge
    /// kernels sum differently), which is why the row products of a model that must give the same
    /// bits at every batch split use this instead.
    public static func gemmPackedRows(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                      packed: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>,
                                      ldc: Int) {
        uk_gemm_packed(Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), packed, beta, c, Int32(ldc))
    }

    /// C(m×n) = A(m×k) · op(B) + beta · C on the M-stable kernel of `gemmPackedRows`, with the same
    /// bits as `pack` followed by `gemmPackedRows`, for an operand used once (a weight that changes
    /// every step): op(B) is packed piece by piece into cache right before use instead of whole
    /// through memory first (uk_gemm). `transB`: B is stored N×K (ldb ≥ k) and used transposed.
    public static func gemmRows(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
                                ldb: Int, transB: Bool, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let status = uk_gemm(Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), transB ? 1 : 0, beta, c,
                             Int32(ldc))
        precondition(status == 0, "gemmRows: no memory for a packed \(k) × \(n) operand")
    }

    /// Number of threads OpenBLAS uses for one call.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Sets the number of OpenBLAS threads (1 per MPI rank is the rule).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// The CPU kernel family OpenBLAS selected at load time, e.g. "Haswell" or "SkylakeX".
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// OpenBLAS build configuration string.
    public static var configuration: String {
        guard let cfg = openblas_get_config() else { return "unknown" }
        return String(cString: cfg)
    }
}
