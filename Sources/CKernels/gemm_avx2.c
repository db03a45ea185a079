// AVX2+FMA GEMM against packed op(B): a 6×16 micro-tile (12 ymm accumulators) over 16-column
// panels, K in blocks of 256. A's rows are packed per k-block into 6-row panels (one contiguous
// stream for the tile instead of six strided ones) unless N is too narrow to reuse them; the C
// tile is prefetched when the tile starts, so its load in the epilogue does not stall.
//
// Bits: every element of C is one FMA chain over a k-block in k order, then C = α·acc + β·C per
// block; packing A, the loop order and the row blocking move data only, so a row's result is
// the same whatever M is and wherever the row sits (the M-stability reduction groups rely on).
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include "uk_internal.h"

#define MR2 6
#define KC2 256
/// Rows of A packed at a time: 288 × 256 floats (288 KiB) stay in L2 while a strip of op(B)
/// streams past them (E's 2,048 × 4,096 × 1,024: 64 GFLOP/s in blocks of 48 rows, 73–80 in 144–288).
#define MC2 288
/// Below this N, A's rows are read in place: a packed panel would be reused by fewer than eight
/// strips, not enough to repay the copy (at 2,048 × 64 × 2,048 packed and in place are level).
#define PACK_MIN_N 128
/// op(B)'s k-block (kc × N floats) up to this size stays in L2, so the rows of a tile can walk
/// all of N with op(B) coming from L2, which keeps C's accesses row-contiguous (A's input
/// projection, 2,048 × 2,048 × 64: 42–55 → 72–82 GFLOP/s). Larger blocks go strip by strip,
/// all rows of the block under one strip held in L1.
#define ROWS_OUTER_BYTES (512 * 1024)

/// `A` is where row i's element p sits: in place (a[i·lda + p]) or packed (a[p·6 + i]).
UK_TARGET_AVX2 UK_INLINE void tile_avx2(const int mr, const int packed_a, int kc,
                                        const float *restrict a, size_t lda,
                                        const float *restrict b, float *restrict c, size_t ldc,
                                        int cols, float alpha, float beta) {
    __m256 acc[MR2][2];
    for (int i = 0; i < mr; ++i) {
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        // Both lines the 16 floats may straddle; the k loop below hides their latency.
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + (size_t)i * ldc + 15), _MM_HINT_T0);
    }
    for (int p = 0; p < kc; ++p) {
        // op(B)'s strip, one line per k, 8 lines ahead: it streams from L2 or L3 (the per-step
        // product's W_hh does not fit L2), and the hardware prefetcher alone left the tile waiting
        // (32 × 2,048 × 512: 8–13 % faster; B's readout products 2–3 %).
        _mm_prefetch((const char *)(b + (size_t)(p + 8) * UK_NR), _MM_HINT_T0);
        __m256 b0 = _mm256_loadu_ps(b + (size_t)p * UK_NR);
        __m256 b1 = _mm256_loadu_ps(b + (size_t)p * UK_NR + 8);
        for (int i = 0; i < mr; ++i) {
            __m256 av = _mm256_broadcast_ss(packed_a ? a + (size_t)p * MR2 + (size_t)i
                                                     : a + (size_t)i * lda + (size_t)p);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256 vb = _mm256_set1_ps(beta);
    // Whole tiles (nearly all of them) take straight-line stores, one branch per tile: with the
    // partial-tile path inside the row loop the compiler kept the loop and spilled the
    // accumulators to the stack, which cost a k-block of 256 about 5 %.
    if (cols == 16 && beta != 0.0f) {
        for (int i = 0; i < mr; ++i) {
            float *ci = c + (size_t)i * ldc;
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), _mm256_mul_ps(va, acc[i][0])));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), _mm256_mul_ps(va, acc[i][1])));
        }
        return;
    }
    if (cols == 16) {
        for (int i = 0; i < mr; ++i) {
            float *ci = c + (size_t)i * ldc;
            _mm256_storeu_ps(ci, _mm256_mul_ps(va, acc[i][0]));
            _mm256_storeu_ps(ci + 8, _mm256_mul_ps(va, acc[i][1]));
        }
        return;
    }
    for (int i = 0; i < mr; ++i) {
        float *ci = c + (size_t)i * ldc;
        float buf[16];
        _mm256_storeu_ps(buf, _mm256_mul_ps(va, acc[i][0]));
        _mm256_storeu_ps(buf + 8, _mm256_mul_ps(va, acc[i][1]));
        for (int j = 0; j < cols; ++j) ci[j] = beta == 0.0f ? buf[j] : buf[j] + beta * ci[j];
    }
}

UK_TARGET_AVX2 static void tile_avx2_any(int mr, int packed_a, int kc, const float *a,
                                         size_t lda, const float *b, float *c, size_t ldc,
                                         int cols, float alpha, float beta) {
#define UK_TILE(r, pa) tile_avx2(r, pa, kc, a, lda, b, c, ldc, cols, alpha, beta)
    // One fully unrolled instance per row count and A layout.
#define UK_TILES(pa)                       \
    switch (mr) {                          \
    case 1: UK_TILE(1, pa); break;         \
    case 2: UK_TILE(2, pa); break;         \
    case 3: UK_TILE(3, pa); break;         \
    case 4: UK_TILE(4, pa); break;         \
    case 5: UK_TILE(5, pa); break;         \
    default: UK_TILE(MR2, pa); break;      \
    }
    if (packed_a) {
        UK_TILES(1)
    } else {
        UK_TILES(0)
    }
#undef UK_TILES
#undef UK_TILE
}

/// Rows [0, m) × columns [0, kc) of a (stride lda) into 6-row panels: panel t holds rows
/// 6t…6t+5 as kc groups of 6 floats (k-major), rows past m zero.
UK_TARGET_AVX2 static void pack_a_panels(float *restrict dst, const float *restrict a, size_t lda,
                                         int m, int kc) {
    for (int m0 = 0; m0 < m; m0 += MR2) {
        int mr = m - m0 < MR2 ? m - m0 : MR2;
        float *d = dst + (size_t)m0 * (size_t)kc;
        const float *s = a + (size_t)m0 * lda;
        int p = 0;
        if (mr == MR2) {
            // 6 rows × 8 k per round: row loads are full vectors, the scatter stays in L1.
            for (; p + 8 <= kc; p += 8) {
                float t[MR2][8];
                for (int i = 0; i < MR2; ++i)
                    _mm256_storeu_ps(t[i], _mm256_loadu_ps(s + (size_t)i * lda + (size_t)p));
                for (int q = 0; q < 8; ++q)
                    for (int i = 0; i < MR2; ++i) d[(size_t)(p + q) * MR2 + (size_t)i] = t[i][q];
            }
        }
        for (; p < kc; ++p)
            for (int i = 0; i < MR2; ++i)
                d[(size_t)p * MR2 + (size_t)i] = i < mr ? s[(size_t)i * lda + (size_t)p] : 0.0f;
    }
}

// One MC2 × KC2 buffer per thread that runs the kernel, made on its first product and freed when
// the thread ends; without it (allocation failed) A is read in place.
static pthread_key_t panel_key;
static pthread_once_t panel_once = PTHREAD_ONCE_INIT;
static int panel_key_ok;

static void make_panel_key(void) { panel_key_ok = pthread_key_create(&panel_key, free) == 0; }

static float *thread_panel_buffer(void) {
    pthread_once(&panel_once, make_panel_key);
    if (!panel_key_ok) return NULL;
    float *buffer = pthread_getspecific(panel_key);
    if (buffer != NULL) return buffer;
    buffer = aligned_alloc(64, (size_t)MC2 * KC2 * sizeof(float));
    if (buffer != NULL && pthread_setspecific(panel_key, buffer) != 0) {
        free(buffer);
        buffer = NULL;
    }
    return buffer;
}

/// C rows [0, m) (m ≤ MC2) for k-block [k0, k0 + kc); `a` is A's row 0, `panels` A's rows packed
/// by pack_a_panels or NULL (read in place).
UK_TARGET_AVX2 static void row_block(int m, int n, int k, int k0, int kc, float alpha,
                                     const float *a, size_t lda, const float *panels,
                                     const float *packed, float beta, float *c, size_t ldc) {
    const float *block = packed + (size_t)k0 * UK_NR;
    const size_t panel_floats = (size_t)UK_NR * (size_t)k;
    // The tile's A: panel t at panels + t·6·kc, or row m0 in place at column k0.
#define UK_A(m0) (panels ? panels + (size_t)(m0) * (size_t)kc : a + (size_t)(m0) * lda + (size_t)k0)
    if (panels != NULL && (size_t)kc * (size_t)n * sizeof(float) <= ROWS_OUTER_BYTES) {
        for (int m0 = 0; m0 < m; m0 += MR2) {
            int mr = m - m0 < MR2 ? m - m0 : MR2;
            for (int n0 = 0; n0 < n; n0 += UK_NR) {
                int cols = n - n0 < UK_NR ? n - n0 : UK_NR;
                tile_avx2_any(mr, 1, kc, UK_A(m0), lda, block + (size_t)(n0 / UK_NR) * panel_floats,
                              c + (size_t)m0 * ldc + (size_t)n0, ldc, cols, alpha, beta);
            }
        }
        return;
    }
    for (int n0 = 0; n0 < n; n0 += UK_NR) {
        int cols = n - n0 < UK_NR ? n - n0 : UK_NR;
        const float *strip = block + (size_t)(n0 / UK_NR) * panel_floats;
        for (int m0 = 0; m0 < m; m0 += MR2) {
            int mr = m - m0 < MR2 ? m - m0 : MR2;
            tile_avx2_any(mr, panels != NULL, kc, UK_A(m0), lda, strip,
                          c + (size_t)m0 * ldc + (size_t)n0, ldc, cols, alpha, beta);
        }
    }
#undef UK_A
}

UK_TARGET_AVX2 void uk_gemm_packed_avx2(int m, int n, int k, float alpha, const float *a, int lda,
                                        const float *packed, float beta, float *c, int ldc) {
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return;
    float *panels = n >= PACK_MIN_N ? thread_panel_buffer() : NULL;
    for (int m0 = 0; m0 < m; m0 += MC2) {
        int rows = m - m0 < MC2 ? m - m0 : MC2;
        const float *a_rows = a + (size_t)m0 * (size_t)lda;
        float *c_rows = c + (size_t)m0 * (size_t)ldc;
        for (int k0 = 0; k0 < k; k0 += KC2) {
            int kc = k - k0 < KC2 ? k - k0 : KC2;
            if (panels != NULL) pack_a_panels(panels, a_rows + k0, (size_t)lda, rows, kc);
            row_block(rows, n, k, k0, kc, alpha, a_rows, (size_t)lda, panels, packed,
                      k0 == 0 ? beta : 1.0f, c_rows, (size_t)ldc);
        }
    }
}
