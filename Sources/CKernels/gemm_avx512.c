// AVX-512 GEMM against packed op(B): C = αA·op(B) + βC for small M (RNN batch rows).
// Micro-tile: 12 rows of A × a pair of 16-column panels = 24 zmm accumulators; each k step loads
// the pair's rows (2 zmm, one from each panel) once and broadcasts 12 values of A. Pairs
// outermost: a pair (2 × K×16 floats) comes from L3 for the first M tile and from L1/L2 for the
// others; A (M×K) stays in L2.
// Tuned on Sapphire Rapids for M = 8…64, K = 200…2048: ~160 GFLOP/s single-thread on M=32,
// N=2048, K=512 (≈90% of the measured FMA peak). K blocking did not help at these sizes;
// software prefetch of B did, and 12×32 beat 8×48, 14×32 and 6×64 tiles.
#include <immintrin.h>
#include "uk_internal.h"

#ifndef UK_MR512
#define UK_MR512 12
#endif
/// How many k steps ahead the panel is prefetched (covers L3 latency at ~12 cycles per step).
#ifndef UK_PF512
#define UK_PF512 32
#endif
#define NV512 (UK_NR_PAIR / 16)

/// `b` is the pair's first panel; panel j of the pair starts j · panel_floats further on.
UK_TARGET_AVX512 UK_INLINE void tile512(const int mr, int k, const float *restrict a, size_t lda,
                                        const float *restrict b, size_t panel_floats,
                                        float *restrict c, size_t ldc, float alpha, float beta,
                                        const __mmask16 *masks) {
    __m512 acc[UK_MR512][NV512];
    for (int i = 0; i < mr; ++i)
        for (int j = 0; j < NV512; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < k; ++p) {
        __m512 bv[NV512];
        for (int j = 0; j < NV512; ++j)
            bv[j] = _mm512_loadu_ps(b + (size_t)j * panel_floats + (size_t)p * UK_NR);
        // Prefetching past the end of the buffer is harmless (prefetches never fault).
        for (int j = 0; j < NV512; ++j)
            _mm_prefetch((const char *)(b + (size_t)j * panel_floats + (size_t)(p + UK_PF512) * UK_NR),
                         _MM_HINT_T0);
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

UK_TARGET_AVX512 static void tile512_any(int mr, int k, const float *a, size_t lda,
                                         const float *b, size_t panel_floats, float *c,
                                         size_t ldc, float alpha, float beta,
                                         const __mmask16 *masks) {
    // One fully unrolled instance per row count keeps every accumulator in a register.
    switch (mr) {
#define UK_CASE(r) \
    case r: tile512(r, k, a, lda, b, panel_floats, c, ldc, alpha, beta, masks); break;
        UK_CASE(1) UK_CASE(2) UK_CASE(3) UK_CASE(4) UK_CASE(5) UK_CASE(6)
        UK_CASE(7) UK_CASE(8) UK_CASE(9) UK_CASE(10) UK_CASE(11)
#undef UK_CASE
    default: tile512(UK_MR512, k, a, lda, b, panel_floats, c, ldc, alpha, beta, masks); break;
    }
}

UK_TARGET_AVX512 void uk_gemm_packed_avx512(int m, int n, int k, float alpha, const float *a,
                                            int lda, const float *packed, float beta, float *c,
                                            int ldc) {
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return;
    const size_t panel_floats = (size_t)UK_NR * (size_t)k;
    // uk_pack_b rounds the panels up to an even number, so a pair's second panel always exists.
    for (int n0 = 0; n0 < n; n0 += UK_NR_PAIR) {
        const float *panel = packed + (size_t)(n0 / UK_NR) * panel_floats;
        // Columns past N are zero in the panels; the masks keep them out of C.
        __mmask16 masks[NV512];
        for (int j = 0; j < NV512; ++j) {
            int left = n - n0 - 16 * j;
            masks[j] = left >= 16 ? (__mmask16)0xFFFF
                                  : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1u);
        }
        // Balanced tile heights (M = 16 → 8 + 8, not 12 + 4; M = 20 → 10 + 10): a short last
        // tile streams the whole panel for little work. A row's sum runs over k in the same order
        // whatever its tile, so results do not depend on M or on the row's position.
        int tiles = (m + UK_MR512 - 1) / UK_MR512;
        for (int t = 0, m0 = 0; t < tiles; ++t) {
            int mr = m / tiles + (t < m % tiles ? 1 : 0);
            tile512_any(mr, k, a + (size_t)m0 * (size_t)lda, (size_t)lda, panel, panel_floats,
                        c + (size_t)m0 * (size_t)ldc + n0, (size_t)ldc, alpha, beta, masks);
            m0 += mr;
        }
    }
}
