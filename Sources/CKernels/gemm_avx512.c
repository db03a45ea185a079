// AVX-512 GEMM against packed op(B): C = αA·op(B) + βC for small M (RNN batch rows).
// Micro-tile: MR rows of A × one UK_NR-column panel, MR·UK_NR/16 zmm accumulators; each k step
// loads the panel row once and broadcasts MR values of A. Loop order: K blocks, then panels,
// then M tiles, so a panel's K-block stays in L1 while all M tiles reuse it.
#include <immintrin.h>
#include "uk_internal.h"

#ifndef UK_MR512
#define UK_MR512 8
#endif
#ifndef UK_KC512
#define UK_KC512 128
#endif
#ifndef UK_PF512
#define UK_PF512 0
#endif
#define NV512 (UK_NR / 16)

UK_TARGET_AVX512 UK_INLINE void tile512(const int mr, int kc, const float *restrict a, size_t lda,
                                        const float *restrict b, float *restrict c, size_t ldc,
                                        float alpha, float beta, const __mmask16 *masks) {
    __m512 acc[UK_MR512][NV512];
    for (int i = 0; i < mr; ++i)
        for (int j = 0; j < NV512; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < kc; ++p) {
        __m512 bv[NV512];
        for (int j = 0; j < NV512; ++j) bv[j] = _mm512_loadu_ps(b + (size_t)p * UK_NR + 16 * j);
#if UK_PF512 > 0
        for (int j = 0; j < NV512; ++j)
            _mm_prefetch((const char *)(b + (size_t)(p + UK_PF512) * UK_NR + 16 * j), _MM_HINT_T0);
#endif
        for (int i = 0; i < mr; ++i) {
            __m512 av = _mm512_set1_ps(a[(size_t)i * lda + (size_t)p]);
            for (int j = 0; j < NV512; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
        for (int i = 0; i < mr; ++i)
            for (int j = 0; j < NV512; ++j)
                _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16 * j, masks[j],
                                      _mm512_mul_ps(va, acc[i][j]));
    } else {
        __m512 vb = _mm512_set1_ps(beta);
        for (int i = 0; i < mr; ++i)
            for (int j = 0; j < NV512; ++j) {
                float *cp = c + (size_t)i * ldc + 16 * j;
                __m512 old = _mm512_maskz_loadu_ps(masks[j], cp);
                _mm512_mask_storeu_ps(cp, masks[j],
                                      _mm512_fmadd_ps(va, acc[i][j], _mm512_mul_ps(vb, old)));
            }
    }
}

UK_TARGET_AVX512 static void tile512_any(int mr, int kc, const float *a, size_t lda,
                                         const float *b, float *c, size_t ldc, float alpha,
                                         float beta, const __mmask16 *masks) {
    // One fully unrolled instance per row count keeps every accumulator in a register.
    switch (mr) {
#define UK_CASE(r) \
    case r: tile512(r, kc, a, lda, b, c, ldc, alpha, beta, masks); break;
        UK_CASE(1) UK_CASE(2) UK_CASE(3) UK_CASE(4) UK_CASE(5) UK_CASE(6) UK_CASE(7)
#if UK_MR512 > 8
        UK_CASE(8) UK_CASE(9) UK_CASE(10) UK_CASE(11) UK_CASE(12) UK_CASE(13)
#endif
#if UK_MR512 > 14
        UK_CASE(14) UK_CASE(15)
#endif
#undef UK_CASE
    default: tile512(UK_MR512, kc, a, lda, b, c, ldc, alpha, beta, masks); break;
    }
}

UK_TARGET_AVX512 void uk_gemm_packed_avx512(int m, int n, int k, float alpha, const float *a,
                                            int lda, const float *packed, float beta, float *c,
                                            int ldc) {
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return;
    const int kc_max = UK_KC512 > 0 ? UK_KC512 : k;
    for (int n0 = 0; n0 < n; n0 += UK_NR) {
        const float *panel = packed + (size_t)(n0 / UK_NR) * UK_NR * (size_t)k;
        __mmask16 masks[NV512];
        for (int j = 0; j < NV512; ++j) {
            int left = n - n0 - 16 * j;
            masks[j] = left >= 16 ? (__mmask16)0xFFFF
                                  : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u);
        }
        for (int k0 = 0; k0 < k; k0 += kc_max) {
            int kc = k - k0 < kc_max ? k - k0 : kc_max;
            // Later K blocks add onto what the first one wrote.
            float beta_k = k0 == 0 ? beta : 1.0f;
            for (int m0 = 0; m0 < m; m0 += UK_MR512) {
                int mr = m - m0 < UK_MR512 ? m - m0 : UK_MR512;
                tile512_any(mr, kc, a + (size_t)m0 * (size_t)lda + (size_t)k0, (size_t)lda,
                            panel + (size_t)k0 * UK_NR, c + (size_t)m0 * (size_t)ldc + n0,
                            (size_t)ldc, alpha, beta_k, masks);
            }
        }
    }
}
