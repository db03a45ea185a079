// Packing of op(B) into UK_NR-column panels (layout in uk_internal.h), shared by every GEMM path,
// and the degenerate-shape handling the paths have in common.
#include <string.h>
#include "uk_internal.h"

size_t uk_packed_floats(int k, int n) {
    if (k <= 0 || n <= 0) return 0;
    size_t panels = ((size_t)n + UK_NR - 1) / UK_NR;
    return panels * UK_NR * (size_t)k;
}

/// Transposes a (≤UK_NR)×kc block of B (rows = columns of op(B)) into panel rows.
static void pack_transposed_panel(float *restrict dst, const float *restrict b, int k, int cols,
                                  size_t ldb) {
    // Blocks of 64 k-values keep the UK_NR source rows' cache lines live while they are used.
    enum { KB = 64 };
    for (int k0 = 0; k0 < k; k0 += KB) {
        int kend = k0 + KB < k ? k0 + KB : k;
        for (int j = 0; j < cols; ++j) {
            const float *src = b + (size_t)j * ldb;
            for (int kk = k0; kk < kend; ++kk) dst[(size_t)kk * UK_NR + j] = src[kk];
        }
        for (int kk = k0; kk < kend; ++kk) {
            for (int j = cols; j < UK_NR; ++j) dst[(size_t)kk * UK_NR + j] = 0.0f;
        }
    }
}

void uk_pack_b(float *packed, const float *b, int k, int n, int ldb, int trans) {
    if (k <= 0 || n <= 0) return;
    for (int n0 = 0; n0 < n; n0 += UK_NR) {
        int cols = n - n0 < UK_NR ? n - n0 : UK_NR;
        float *dst = packed + (size_t)(n0 / UK_NR) * UK_NR * (size_t)k;
        if (trans) {
            pack_transposed_panel(dst, b + (size_t)n0 * (size_t)ldb, k, cols, (size_t)ldb);
        } else {
            for (int kk = 0; kk < k; ++kk) {
                float *row = dst + (size_t)kk * UK_NR;
                memcpy(row, b + (size_t)kk * (size_t)ldb + n0, (size_t)cols * sizeof(float));
                if (cols < UK_NR) memset(row + cols, 0, (size_t)(UK_NR - cols) * sizeof(float));
            }
        }
    }
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
