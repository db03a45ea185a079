// Reductions over float arrays (max, sum, sum of squares) with 16 independent lanes, so the
// compiler can vectorise them (a single running sum is a serial dependency it may not reorder).
// Compiled for AVX-512, AVX2 and baseline x86-64; the loader picks one (target_clones / ifunc).
// Sums are taken in float per block of 4096 elements and the blocks added in double.
#include <math.h>
#include "uk_internal.h"

#define UK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define UK_LANES 16
#define UK_BLOCK 4096

UK_CLONES float uk_max(const float *x, size_t n) {
    float m[UK_LANES];
    for (int j = 0; j < UK_LANES; ++j) m[j] = -INFINITY;
    size_t i = 0;
    for (; i + UK_LANES <= n; i += UK_LANES)
        for (int j = 0; j < UK_LANES; ++j) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    float r = -INFINITY;
    for (int j = 0; j < UK_LANES; ++j) r = m[j] > r ? m[j] : r;
    for (; i < n; ++i) r = x[i] > r ? x[i] : r;
    return r;
}

/// Σ x[i] (or Σ x[i]² with `square`) in float per block of UK_BLOCK, blocks added in double.
/// Inlined into each caller with `square` constant, so every clone gets its own tight loop.
UK_INLINE double blocked_sum(const float *x, size_t n, int square) {
    double total = 0;
    for (size_t start = 0; start < n; start += UK_BLOCK) {
        size_t end = start + UK_BLOCK < n ? start + UK_BLOCK : n, i = start;
        float s[UK_LANES] = {0};
        for (; i + UK_LANES <= end; i += UK_LANES)
            for (int j = 0; j < UK_LANES; ++j) s[j] += square ? x[i + j] * x[i + j] : x[i + j];
        float partial = 0;
        for (int j = 0; j < UK_LANES; ++j) partial += s[j];
        for (; i < end; ++i) partial += square ? x[i] * x[i] : x[i];
        total += partial;
    }
    return total;
}

UK_CLONES double uk_sum(const float *x, size_t n) { return blocked_sum(x, n, 0); }

UK_CLONES double uk_sum_squares(const float *x, size_t n) { return blocked_sum(x, n, 1); }
