// Packing of op(B) into UK_NR-column panels (layout in uk_internal.h), shared by every GEMM path,
// and the degenerate-shape handling the paths have in common.
#include <string.h>
#include "uk_internal.h"

size_t uk_packed_floats(int k, int n) {
    if (k <= 0 || n <= 0) return 0;
    size_t pairs = ((size_t)n + UK_NR_PAIR - 1) / UK_NR_PAIR;
    return pairs * UK_NR_PAIR * (size_t)k;
}

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/// Writes the transpose of a `cols`×k block of B (rows of B are columns of op(B)) into one panel.
static void pack_transposed_panel(float *restrict dst, const float *restrict b, int k, int cols,
                                  size_t ldb) {
    // Blocks of 64 k keep both the panel rows being written (4 KiB) and the source lines being
    // read (UK_NR rows × 256 B) in L1 until they are finished.
    enum { KB = 64 };
    for (int k0 = 0; k0 < k; k0 += KB) {
        int k1 = k0 + KB < k ? k0 + KB : k;
        int j = 0;
#if defined(__SSE2__)
        // 4×4 register transposes (SSE2 is part of baseline x86-64): 4 rows of B, 4 k at a time.
        for (; j + 4 <= cols; j += 4) {
            const float *r0 = b + (size_t)j * ldb, *r1 = r0 + ldb, *r2 = r1 + ldb, *r3 = r2 + ldb;
            int kk = k0;
            for (; kk + 4 <= k1; kk += 4) {
                __m128 x0 = _mm_loadu_ps(r0 + kk), x1 = _mm_loadu_ps(r1 + kk);
                __m128 x2 = _mm_loadu_ps(r2 + kk), x3 = _mm_loadu_ps(r3 + kk);
                _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
                float *d = dst + (size_t)kk * UK_NR + j;
                _mm_storeu_ps(d, x0);
                _mm_storeu_ps(d + UK_NR, x1);
                _mm_storeu_ps(d + 2 * UK_NR, x2);
                _mm_storeu_ps(d + 3 * UK_NR, x3);
            }
            for (; kk < k1; ++kk) {
                float *d = dst + (size_t)kk * UK_NR + j;
                d[0] = r0[kk], d[1] = r1[kk], d[2] = r2[kk], d[3] = r3[kk];
            }
        }
#endif
        for (; j < cols; ++j) {
            const float *src = b + (size_t)j * ldb;
            for (int kk = k0; kk < k1; ++kk) dst[(size_t)kk * UK_NR + j] = src[kk];
        }
        for (int kk = k0; kk < k1; ++kk)
            for (int jj = cols; jj < UK_NR; ++jj) dst[(size_t)kk * UK_NR + jj] = 0.0f;
    }
}

/// B (k × n, not transposed) into panels, row by row: each row of B is read once, in order, and
/// its 16-column pieces go to the panels as fixed-size copies (vector moves). Going panel by panel
/// instead read B in 64-byte pieces one row stride apart and called memcpy for each: 2.6 GB/s at
/// 4,096 × 1,024.
static void pack_rows(float *restrict packed, const float *restrict b, int k, int n, int padded,
                      size_t ldb) {
    const size_t panel_floats = (size_t)UK_NR * (size_t)k;
    const int whole = n / UK_NR;
    for (int kk = 0; kk < k; ++kk) {
        const float *src = b + (size_t)kk * ldb;
        float *dst = packed + (size_t)kk * UK_NR;
        int p = 0;
        for (; p < whole; ++p, dst += panel_floats) memcpy(dst, src + (size_t)p * UK_NR, UK_NR * sizeof(float));
        for (int n0 = p * UK_NR; n0 < padded; n0 += UK_NR, dst += panel_floats)
            for (int j = 0; j < UK_NR; ++j) dst[j] = n0 + j < n ? src[n0 + j] : 0.0f;
    }
}

void uk_pack_b_block(float *dst, const float *b, int ldb, int trans, int k0, int kc, int n0, int cols) {
    if (kc <= 0 || cols <= 0) return;
    int padded = (cols + UK_NR - 1) / UK_NR * UK_NR;
    if (!trans) {
        pack_rows(dst, b + (size_t)k0 * (size_t)ldb + (size_t)n0, kc, cols, padded, (size_t)ldb);
        return;
    }
    for (int p0 = 0; p0 < cols; p0 += UK_NR) {
        int pc = cols - p0 < UK_NR ? cols - p0 : UK_NR;
        pack_transposed_panel(dst + (size_t)p0 * (size_t)kc, b + (size_t)(n0 + p0) * (size_t)ldb + (size_t)k0, kc,
                              pc, (size_t)ldb);
    }
}

void uk_pack_b(float *packed, const float *b, int k, int n, int ldb, int trans) {
    if (k <= 0 || n <= 0) return;
    uk_pack_b_block(packed, b, ldb, trans, 0, k, 0, n);
    // The odd panel's partner past N (panels come in pairs for the AVX-512 path).
    const size_t panel_floats = (size_t)UK_NR * (size_t)k;
    const size_t written = ((size_t)n + UK_NR - 1) / UK_NR * panel_floats;
    if (uk_packed_floats(k, n) > written) memset(packed + written, 0, panel_floats * sizeof(float));
}

int uk_gemm_degenerate(int m, int n, int k, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return 1;
    if (k > 0) return 0;
    for (int i = 0; i < m; ++i) {
        float *row = c + (size_t)i * (size_t)ldc;
        for (int j = 0; j < n; ++j) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
    }
    return 1;
}
