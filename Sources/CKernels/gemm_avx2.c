// AVX2+FMA GEMM against packed op(B). Each UK_NR-column panel is processed as 16-column strips
// with a 6×16 micro-tile (12 ymm accumulators), K in blocks of 256 so a strip block stays in
// L1; partial tiles go through a small buffer.
#include <immintrin.h>
#include "uk_internal.h"

#define MR2 6
#define KC2 256

UK_TARGET_AVX2 UK_INLINE void tile_avx2(const int mr, int kc, const float *restrict a, size_t lda,
                                        const float *restrict b, float *restrict c, size_t ldc,
                                        int cols, float alpha, float beta) {
    __m256 acc[MR2][2];
    for (int i = 0; i < mr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int p = 0; p < kc; ++p) {
        __m256 b0 = _mm256_loadu_ps(b + (size_t)p * UK_NR);
        __m256 b1 = _mm256_loadu_ps(b + (size_t)p * UK_NR + 8);
        for (int i = 0; i < mr; ++i) {
            __m256 av = _mm256_broadcast_ss(a + (size_t)i * lda + (size_t)p);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    __m256 vb = _mm256_set1_ps(beta);
    for (int i = 0; i < mr; ++i) {
        float *ci = c + (size_t)i * ldc;
        __m256 r0 = _mm256_mul_ps(va, acc[i][0]);
        __m256 r1 = _mm256_mul_ps(va, acc[i][1]);
        if (cols == 16) {
            if (beta != 0.0f) {
                r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
                r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        } else {
            float buf[16];
            _mm256_storeu_ps(buf, r0);
            _mm256_storeu_ps(buf + 8, r1);
            for (int j = 0; j < cols; ++j) ci[j] = beta == 0.0f ? buf[j] : buf[j] + beta * ci[j];
        }
    }
}

UK_TARGET_AVX2 static void tile_avx2_any(int mr, int kc, const float *a, size_t lda,
                                         const float *b, float *c, size_t ldc, int cols,
                                         float alpha, float beta) {
    switch (mr) {
    case 1: tile_avx2(1, kc, a, lda, b, c, ldc, cols, alpha, beta); break;
    case 2: tile_avx2(2, kc, a, lda, b, c, ldc, cols, alpha, beta); break;
    case 3: tile_avx2(3, kc, a, lda, b, c, ldc, cols, alpha, beta); break;
    case 4: tile_avx2(4, kc, a, lda, b, c, ldc, cols, alpha, beta); break;
    case 5: tile_avx2(5, kc, a, lda, b, c, ldc, cols, alpha, beta); break;
    default: tile_avx2(MR2, kc, a, lda, b, c, ldc, cols, alpha, beta); break;
    }
}

UK_TARGET_AVX2 void uk_gemm_packed_avx2(int m, int n, int k, float alpha, const float *a, int lda,
                                        const float *packed, float beta, float *c, int ldc) {
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return;
    for (int k0 = 0; k0 < k; k0 += KC2) {
        int kc = k - k0 < KC2 ? k - k0 : KC2;
        float beta_k = k0 == 0 ? beta : 1.0f;
        for (int n0 = 0; n0 < n; n0 += 16) {
            int cols = n - n0 < 16 ? n - n0 : 16;
            const float *strip = packed + (size_t)(n0 / UK_NR) * UK_NR * (size_t)k +
                                 (size_t)k0 * UK_NR + (size_t)(n0 % UK_NR);
            for (int m0 = 0; m0 < m; m0 += MR2) {
                int mr = m - m0 < MR2 ? m - m0 : MR2;
                tile_avx2_any(mr, kc, a + (size_t)m0 * (size_t)lda + (size_t)k0, (size_t)lda,
                              strip, c + (size_t)m0 * (size_t)ldc + n0, (size_t)ldc, cols, alpha,
                              beta_k);
            }
        }
    }
}
