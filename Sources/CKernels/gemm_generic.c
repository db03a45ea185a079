// Portable GEMM against packed op(B): a 4-row × UK_NR-column tile accumulated in a local array
// that the compiler can keep in vector registers. Correctness first; speed is the other paths'.
#include "uk_internal.h"

#define MRG 4

static inline void tile_generic(int mr, int k, const float *restrict a, size_t lda,
                                const float *restrict b, float *restrict c, size_t ldc, int cols,
                                float alpha, float beta) {
    float acc[MRG][UK_NR] = {{0}};
    for (int p = 0; p < k; ++p) {
        const float *brow = b + (size_t)p * UK_NR;
        for (int i = 0; i < mr; ++i) {
            float av = a[(size_t)i * lda + (size_t)p];
            for (int j = 0; j < UK_NR; ++j) acc[i][j] += av * brow[j];
        }
    }
    for (int i = 0; i < mr; ++i) {
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < cols; ++j)
            ci[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * ci[j];
    }
}

void uk_gemm_packed_generic(int m, int n, int k, float alpha, const float *a, int lda,
                            const float *packed, float beta, float *c, int ldc) {
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return;
    for (int n0 = 0; n0 < n; n0 += UK_NR) {
        int cols = n - n0 < UK_NR ? n - n0 : UK_NR;
        const float *panel = packed + (size_t)(n0 / UK_NR) * UK_NR * (size_t)k;
        for (int m0 = 0; m0 < m; m0 += MRG) {
            int mr = m - m0 < MRG ? m - m0 : MRG;
            tile_generic(mr, k, a + (size_t)m0 * (size_t)lda, (size_t)lda, panel,
                         c + (size_t)m0 * (size_t)ldc + n0, (size_t)ldc, cols, alpha, beta);
        }
    }
}
