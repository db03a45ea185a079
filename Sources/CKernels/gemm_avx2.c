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
UK_TARGET_AVX2 UK_INLINE void tile_avx2(const int mr, const int packed_a, const int prefetch_b, int kc,
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
        // (32 × 2,048 × 512: 8–13 % faster; B's readout products 2–3 %). Not when uk_gemm has just
        // packed the strip into L1 or L2 (there the prefetch only takes load slots).
        if (prefetch_b) _mm_prefetch((const char *)(b + (size_t)(p + 8) * UK_NR), _MM_HINT_T0);
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

/// The tile of a last strip of at most 8 columns: one accumulator per row, the FMA chain and
/// epilogue of tile_avx2's partial-strip path (so the same bits) at half its work (N = 200, as
/// in B's ∂L/∂x, pads 8 columns of every 16-column tile row otherwise: 4 % of the product).
UK_TARGET_AVX2 UK_INLINE void tile_avx2_half(const int mr, const int packed_a, int kc,
                                             const float *restrict a, size_t lda,
                                             const float *restrict b, float *restrict c, size_t ldc,
                                             int cols, float alpha, float beta) {
    __m256 acc[MR2];
    for (int i = 0; i < mr; ++i) acc[i] = _mm256_setzero_ps();
    for (int p = 0; p < kc; ++p) {
        __m256 b0 = _mm256_loadu_ps(b + (size_t)p * UK_NR);
        for (int i = 0; i < mr; ++i) {
            __m256 av = _mm256_broadcast_ss(packed_a ? a + (size_t)p * MR2 + (size_t)i
                                                     : a + (size_t)i * lda + (size_t)p);
            acc[i] = _mm256_fmadd_ps(av, b0, acc[i]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha);
    for (int i = 0; i < mr; ++i) {
        float *ci = c + (size_t)i * ldc;
        float buf[8];
        _mm256_storeu_ps(buf, _mm256_mul_ps(va, acc[i]));
        for (int j = 0; j < cols; ++j) ci[j] = beta == 0.0f ? buf[j] : buf[j] + beta * ci[j];
    }
}

UK_TARGET_AVX2 static void tile_avx2_any(int mr, int packed_a, int prefetch_b, int kc, const float *a,
                                         size_t lda, const float *b, float *c, size_t ldc,
                                         int cols, float alpha, float beta) {
#define UK_TILE(r, pa)                                                                  \
    (cols <= 8       ? tile_avx2_half(r, pa, kc, a, lda, b, c, ldc, cols, alpha, beta)    \
     : prefetch_b    ? tile_avx2(r, pa, 1, kc, a, lda, b, c, ldc, cols, alpha, beta)     \
                     : tile_avx2(r, pa, 0, kc, a, lda, b, c, ldc, cols, alpha, beta))
    // One fully unrolled instance per row count, A layout, strip width and prefetch.
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
            // 6 rows × 8 k per round, transposed in registers (as 8 × 8 with two zero rows); each
            // k's 6 floats go out as a 4- and a 2-float store, not through a 6 × 8 array and 48
            // scalar stores.
            const __m256 zero = _mm256_setzero_ps();
            for (; p + 8 <= kc; p += 8) {
                __m256 r[MR2];
                for (int i = 0; i < MR2; ++i) r[i] = _mm256_loadu_ps(s + (size_t)i * lda + (size_t)p);
                __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
                __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
                __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
                // u_j holds rows 0–3 (u0–u3) or rows 4–5 and zeros (u4–u7) of k = j and j + 4.
                __m256 u[8] = {
                    _mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                    _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE),
                    _mm256_shuffle_ps(t4, zero, 0x44), _mm256_shuffle_ps(t4, zero, 0xEE),
                    _mm256_shuffle_ps(t5, zero, 0x44), _mm256_shuffle_ps(t5, zero, 0xEE),
                };
                for (int q = 0; q < 4; ++q) {
                    __m256 lo = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);  // k = p + q
                    __m256 hi = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);  // k = p + q + 4
                    float *dl = d + (size_t)(p + q) * MR2, *dh = d + (size_t)(p + q + 4) * MR2;
                    _mm_storeu_ps(dl, _mm256_castps256_ps128(lo));
                    _mm_storel_pi((__m64 *)(dl + 4), _mm256_extractf128_ps(lo, 1));
                    _mm_storeu_ps(dh, _mm256_castps256_ps128(hi));
                    _mm_storel_pi((__m64 *)(dh + 4), _mm256_extractf128_ps(hi, 1));
                }
            }
        }
        for (; p < kc; ++p)
            for (int i = 0; i < MR2; ++i)
                d[(size_t)p * MR2 + (size_t)i] = i < mr ? s[(size_t)i * lda + (size_t)p] : 0.0f;
    }
}

/// Floats of A's panels a call may pack: MC2 × KC2 for uk_gemm_packed; for uk_gemm's wide N, rows up
/// to 448 KiB of panels (B's logits: all 400 rows × 200) stay in L2 while op(B)'s strips pass under them.
#define WORK_A_FLOATS (112 * 1024)
/// uk_gemm packs op(B)'s k-block whole when it is at most this many floats (512 KiB): N up to 512.
#define WORK_B_FLOATS (ROWS_OUTER_BYTES / 4)
_Static_assert(MC2 * KC2 <= WORK_A_FLOATS, "uk_gemm_packed's panels must fit the A part");

// One buffer per thread that runs a product (A's panels, then op(B)'s k-block for uk_gemm), made
// on its first product and freed when the thread ends; without it (allocation failed) A is read
// in place and uk_gemm packs op(B) a strip at a time on the stack.
static pthread_key_t work_key;
static pthread_once_t work_once = PTHREAD_ONCE_INIT;
static int work_key_ok;

static void make_work_key(void) { work_key_ok = pthread_key_create(&work_key, free) == 0; }

static float *thread_work_buffer(void) {
    pthread_once(&work_once, make_work_key);
    if (!work_key_ok) return NULL;
    float *buffer = pthread_getspecific(work_key);
    if (buffer != NULL) return buffer;
    buffer = aligned_alloc(64, (size_t)(WORK_A_FLOATS + WORK_B_FLOATS) * sizeof(float));
    if (buffer != NULL && pthread_setspecific(work_key, buffer) != 0) {
        free(buffer);
        buffer = NULL;
    }
    return buffer;
}

/// C rows [0, m) for one k-block of kc: `a` is A's row 0 at the block's first column,
/// `panels` A's rows packed by pack_a_panels or NULL (read in place), `block` op(B)'s panels at
/// the block's first row, `panel_floats` apart. `whole_b`: op(B) is uk_pack_b's whole operand
/// (uk_gemm_packed), streaming from memory: prefetch it, and let the tile rows walk all of N when
/// the block fits ROWS_OUTER_BYTES (else strip by strip, all rows under one strip, which is how
/// uk_gemm, having just packed the block or strip into cache, always goes).
UK_TARGET_AVX2 static void row_block(int m, int n, int kc, float alpha, const float *a, size_t lda,
                                     const float *panels, const float *block, size_t panel_floats,
                                     int whole_b, float beta, float *c, size_t ldc) {
    // The tile's A: panel t at panels + t·6·kc, or row m0 in place.
#define UK_A(m0) (panels ? panels + (size_t)(m0) * (size_t)kc : a + (size_t)(m0) * lda)
    if (whole_b && panels != NULL && (size_t)kc * (size_t)n * sizeof(float) <= ROWS_OUTER_BYTES) {
        for (int m0 = 0; m0 < m; m0 += MR2) {
            int mr = m - m0 < MR2 ? m - m0 : MR2;
            for (int n0 = 0; n0 < n; n0 += UK_NR) {
                int cols = n - n0 < UK_NR ? n - n0 : UK_NR;
                tile_avx2_any(mr, 1, 1, kc, UK_A(m0), lda, block + (size_t)(n0 / UK_NR) * panel_floats,
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
            tile_avx2_any(mr, panels != NULL, whole_b, kc, UK_A(m0), lda, strip,
                          c + (size_t)m0 * ldc + (size_t)n0, ldc, cols, alpha, beta);
        }
    }
#undef UK_A
}

UK_TARGET_AVX2 void uk_gemm_packed_avx2(int m, int n, int k, float alpha, const float *a, int lda,
                                        const float *packed, float beta, float *c, int ldc) {
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return;
    float *panels = n >= PACK_MIN_N ? thread_work_buffer() : NULL;
    for (int m0 = 0; m0 < m; m0 += MC2) {
        int rows = m - m0 < MC2 ? m - m0 : MC2;
        const float *a_rows = a + (size_t)m0 * (size_t)lda;
        float *c_rows = c + (size_t)m0 * (size_t)ldc;
        for (int k0 = 0; k0 < k; k0 += KC2) {
            int kc = k - k0 < KC2 ? k - k0 : KC2;
            if (panels != NULL) pack_a_panels(panels, a_rows + k0, (size_t)lda, rows, kc);
            row_block(rows, n, kc, alpha, a_rows + k0, (size_t)lda, panels, packed + (size_t)k0 * UK_NR,
                      (size_t)UK_NR * (size_t)k, 1, k0 == 0 ? beta : 1.0f, c_rows, (size_t)ldc);
        }
    }
}

// MARK: Packing op(B) as the product goes (uk_gemm)

/// uk_gemm on the AVX2 path: the bits of uk_pack_b + uk_gemm_packed_avx2 (packing moves data
/// only; every element is the same FMA chain per k-block of KC2), with op(B) packed piece by piece
/// into cache right before its tiles instead of whole through memory first. Narrow N (B's ∂L/∂x,
/// 400 × 200 × 10,000): each k-block of op(B) whole, into L2, once; wide N (B's logits, 400 ×
/// 10,000 × 200): each 16-column strip into L1 under all rows of a block.
UK_TARGET_AVX2 void uk_gemm_avx2(int m, int n, int k, float alpha, const float *a, int lda,
                                 const float *b, int ldb, int trans, float beta, float *c, int ldc) {
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return;
    float *work = thread_work_buffer();
    const int use_panels = work != NULL && n >= PACK_MIN_N;
    const int kc_max = k < KC2 ? k : KC2;
    const size_t n_padded = ((size_t)n + UK_NR - 1) / UK_NR * UK_NR;
    if (work != NULL && (size_t)kc_max * n_padded <= WORK_B_FLOATS) {
        float *block = work + WORK_A_FLOATS;
        // k-blocks outer, so each is packed once; under one, strip by strip with A's panels from
        // L2 (at 400 × 200 × 10,000 the tile rows walking all of N took 1.05–1.15× the time of
        // `sgemm`, strip by strip 1.03–1.13×, both before tile_avx2_half; alternating rounds).
        for (int k0 = 0; k0 < k; k0 += KC2) {
            int kc = k - k0 < KC2 ? k - k0 : KC2;
            uk_pack_b_block(block, b, ldb, trans, k0, kc, 0, n);
            for (int m0 = 0; m0 < m; m0 += MC2) {
                int rows = m - m0 < MC2 ? m - m0 : MC2;
                const float *a_rows = a + (size_t)m0 * (size_t)lda + k0;
                if (use_panels) pack_a_panels(work, a_rows, (size_t)lda, rows, kc);
                row_block(rows, n, kc, alpha, a_rows, (size_t)lda, use_panels ? work : NULL, block,
                          (size_t)UK_NR * (size_t)kc, 0, k0 == 0 ? beta : 1.0f, c + (size_t)m0 * (size_t)ldc,
                          (size_t)ldc);
            }
        }
        return;
    }
    // Without the buffer too: A read in place, the strip on the stack.
    float strip[KC2 * UK_NR] __attribute__((aligned(64)));
    int block_rows = use_panels ? WORK_A_FLOATS / kc_max / MR2 * MR2 : MC2;
    if (block_rows < MR2) block_rows = MR2;
    for (int m0 = 0; m0 < m; m0 += block_rows) {
        int rows = m - m0 < block_rows ? m - m0 : block_rows;
        for (int k0 = 0; k0 < k; k0 += KC2) {
            int kc = k - k0 < KC2 ? k - k0 : KC2;
            const float *a_rows = a + (size_t)m0 * (size_t)lda + k0;
            if (use_panels) pack_a_panels(work, a_rows, (size_t)lda, rows, kc);
            for (int n0 = 0; n0 < n; n0 += UK_NR) {
                int cols = n - n0 < UK_NR ? n - n0 : UK_NR;
                uk_pack_b_block(strip, b, ldb, trans, k0, kc, n0, cols);
                row_block(rows, cols, kc, alpha, a_rows, (size_t)lda, use_panels ? work : NULL, strip,
                          (size_t)UK_NR * (size_t)kc, 0, k0 == 0 ? beta : 1.0f,
                          c + (size_t)m0 * (size_t)ldc + (size_t)n0, (size_t)ldc);
            }
        }
    }
}
