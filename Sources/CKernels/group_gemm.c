// Weight gradients under fixed reduction groups: C += the halving-tree sum over K groups of each
// group's Σ_rows aᵀ·b, in one pass. Replaces "gather the group's rows, sgemm into a scratch
// matrix, add the K matrices by a tree": the rows are gathered while packing (as any GEMM packs),
// each group's sum stays in the micro-tile's registers, and the tree adds run on the tile and a
// small stack of tiles in L1 instead of as K full-matrix passes.
//
// Each tile runs all rows of all groups (the a block is as wide as L2 allows beside one strip of
// b), so a group's sum is never split and the tree never leaves the tile.
//
// Bits: element (i, j) of a group's sum is one fmaf chain over the group's rows in (t, u) order —
// padding only feeds tile lanes that are never stored — so the AVX2 and scalar tiles agree bit for
// bit, and a group gives the same bits wherever it is computed. The tree is ReductionGroups.sum's:
// node(lo, hi) = node(lo, mid) + node(mid, hi), mid = lo + (hi − lo) / 2, then C = C + root.
#include <math.h>
#include <string.h>
#include "uk_internal.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define GG_MR 6
#define GG_NR 16
#define GG_TILE (GG_MR * GG_NR)
/// Bytes the packed A block and one 16-column strip of packed b may take together: L2's size on
/// Zen 3 (512 KiB), half of Zen 4's and a quarter of Sapphire Rapids'. (Smaller budgets, 128–384
/// KiB, measured the same on Zen 3: the b strip's reuse drops as the block shrinks.)
#define GG_L2_BUDGET (512 * 1024)
#define GG_MAX_LEVELS 32
/// Rows of a packed together: their pieces of one panel (16 × 24 bytes) are one contiguous run,
/// and the 16 source rows being read stay in L1/L2.
#define GG_PACK_ROWS 16
/// Rows of at most this many columns are prefetched a block ahead while packing (longer rows are
/// read sequentially, which the hardware prefetcher follows).
#define GG_PREFETCH_COLUMNS 1024
/// uk_group_gemm_tn packs a block by block when blocks are at least this many columns wide.
#define GG_BLOCK_PACK_MIN_COLUMNS 192

/// The halving tree over the groups, as each leaf needs it: the level its value is parked at
/// until its right sibling is done, and how many merges (pending left siblings at level − 1,
/// level − 2, …, innermost first) follow it.
typedef struct {
    int groups, group_rows;
    const int *leaf_level, *merges;
} gg_tree;

/// One 6×16 tile of the tree sum: for each group in order, the fmaf chain over its rows of the
/// packed panel pa (rows × 6) and strip pb (rows × 16), merged through `stack` (levels × 96
/// floats, in L1). The root is added to C's whole 6×16 tile at `c` (row stride ldc) or, when `c`
/// is NULL (a partial tile), written to `out`.
typedef void (*gg_tile_fn)(const gg_tree *tree, const float *pa, const float *pb, float *stack,
                           float *out, float *c, size_t ldc);

static void gg_tile_generic(const gg_tree *tree, const float *pa, const float *pb, float *stack,
                            float *out, float *c, size_t ldc) {
    float acc[GG_TILE];
    for (int q = 0; q < tree->groups; ++q) {
        for (int e = 0; e < GG_TILE; ++e) acc[e] = 0.0f;
        const float *a = pa + (size_t)q * tree->group_rows * GG_MR;
        const float *b = pb + (size_t)q * tree->group_rows * GG_NR;
        for (int r = 0; r < tree->group_rows; ++r) {
            const float *ar = a + (size_t)r * GG_MR, *br = b + (size_t)r * GG_NR;
            for (int i = 0; i < GG_MR; ++i)
                for (int j = 0; j < GG_NR; ++j) acc[i * GG_NR + j] = fmaf(ar[i], br[j], acc[i * GG_NR + j]);
        }
        int level = tree->leaf_level[q];
        for (int up = 1; up <= tree->merges[q]; ++up) {
            const float *left = stack + (size_t)(level - up) * GG_TILE;
            for (int e = 0; e < GG_TILE; ++e) acc[e] = left[e] + acc[e];
        }
        if (q == tree->groups - 1 && c != NULL) {
            for (int i = 0; i < GG_MR; ++i)
                for (int j = 0; j < GG_NR; ++j) c[i * ldc + j] = c[i * ldc + j] + acc[i * GG_NR + j];
            return;
        }
        float *dst = q == tree->groups - 1 ? out : stack + (size_t)(level - tree->merges[q]) * GG_TILE;
        memcpy(dst, acc, sizeof acc);
    }
}

#if defined(__x86_64__)
UK_TARGET_AVX2 static void gg_tile_avx2(const gg_tree *tree, const float *pa, const float *pb,
                                        float *stack, float *out, float *ct, size_t ldc) {
    const int rows = tree->group_rows;
    for (int q = 0; q < tree->groups; ++q) {
        __m256 c[GG_MR][2];
        for (int i = 0; i < GG_MR; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
        const float *a = pa + (size_t)q * rows * GG_MR, *b = pb + (size_t)q * rows * GG_NR;
        for (int r = 0; r < rows; ++r) {
            __m256 b0 = _mm256_loadu_ps(b + (size_t)r * GG_NR);
            __m256 b1 = _mm256_loadu_ps(b + (size_t)r * GG_NR + 8);
            const float *ar = a + (size_t)r * GG_MR;
            for (int i = 0; i < GG_MR; ++i) {
                __m256 av = _mm256_broadcast_ss(ar + i);
                c[i][0] = _mm256_fmadd_ps(av, b0, c[i][0]);
                c[i][1] = _mm256_fmadd_ps(av, b1, c[i][1]);
            }
        }
        int level = tree->leaf_level[q];
        for (int up = 1; up <= tree->merges[q]; ++up) {
            const float *left = stack + (size_t)(level - up) * GG_TILE;
            for (int i = 0; i < GG_MR; ++i) {
                c[i][0] = _mm256_add_ps(_mm256_loadu_ps(left + i * GG_NR), c[i][0]);
                c[i][1] = _mm256_add_ps(_mm256_loadu_ps(left + i * GG_NR + 8), c[i][1]);
            }
        }
        if (q == tree->groups - 1 && ct != NULL) {
            // Straight into C, instead of through `out` and a 4-wide loop in the caller.
            for (int i = 0; i < GG_MR; ++i) {
                float *ci = ct + (size_t)i * ldc;
                _mm256_storeu_ps(ci, _mm256_add_ps(_mm256_loadu_ps(ci), c[i][0]));
                _mm256_storeu_ps(ci + 8, _mm256_add_ps(_mm256_loadu_ps(ci + 8), c[i][1]));
            }
            return;
        }
        float *dst = q == tree->groups - 1 ? out : stack + (size_t)(level - tree->merges[q]) * GG_TILE;
        for (int i = 0; i < GG_MR; ++i) {
            _mm256_storeu_ps(dst + i * GG_NR, c[i][0]);
            _mm256_storeu_ps(dst + i * GG_NR + 8, c[i][1]);
        }
    }
}

/// gg_tile_avx2 for a last strip of at most 8 columns (N = 200: B's decoder.weight, and H = 200
/// layers): columns 0–7 only, the same chains and merges, half the work. Root to `out`.
UK_TARGET_AVX2 static void gg_tile_avx2_half(const gg_tree *tree, const float *pa, const float *pb,
                                             float *stack, float *out) {
    const int rows = tree->group_rows;
    for (int q = 0; q < tree->groups; ++q) {
        __m256 c[GG_MR];
        for (int i = 0; i < GG_MR; ++i) c[i] = _mm256_setzero_ps();
        const float *a = pa + (size_t)q * rows * GG_MR, *b = pb + (size_t)q * rows * GG_NR;
        for (int r = 0; r < rows; ++r) {
            __m256 b0 = _mm256_loadu_ps(b + (size_t)r * GG_NR);
            const float *ar = a + (size_t)r * GG_MR;
            for (int i = 0; i < GG_MR; ++i) c[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ar + i), b0, c[i]);
        }
        int level = tree->leaf_level[q];
        for (int up = 1; up <= tree->merges[q]; ++up) {
            const float *left = stack + (size_t)(level - up) * GG_TILE;
            for (int i = 0; i < GG_MR; ++i) c[i] = _mm256_add_ps(_mm256_loadu_ps(left + i * GG_NR), c[i]);
        }
        float *dst = q == tree->groups - 1 ? out : stack + (size_t)(level - tree->merges[q]) * GG_TILE;
        for (int i = 0; i < GG_MR; ++i) _mm256_storeu_ps(dst + i * GG_NR, c[i]);
    }
}
#endif

/// Records each leaf's level and the merges that follow it for the halving tree over [lo, hi).
static void gg_plan(int lo, int hi, int level, int *leaf_level, int *merges) {
    if (hi - lo == 1) {
        leaf_level[lo] = level;
        merges[lo] = 0;
        return;
    }
    int mid = lo + (hi - lo) / 2;
    gg_plan(lo, mid, level, leaf_level, merges);
    gg_plan(mid, hi, level + 1, leaf_level, merges);
    merges[hi - 1] += 1;
}

static size_t gg_round(size_t floats) { return (floats + 15) / 16 * 16; }

/// Columns of A (rows of C) per packed block: as many 6-column panels as fit beside one strip of
/// b in GG_L2_BUDGET, at least one.
static int gg_block_columns(long rows, int m) {
    long panels = (GG_L2_BUDGET / (4L * rows) - GG_NR) / GG_MR;
    if (panels < 1) panels = 1;
    long cols = panels * GG_MR;
    return cols < m ? (int)cols : m;
}

/// Rows in all: steps · group_size · groups, or −1 when a count is not positive or the rows
/// exceed 2³⁰.
static long gg_rows(int steps, int group_size, int groups) {
    if (steps <= 0 || group_size <= 0 || groups <= 0) return -1;
    long rows = (long)steps * group_size * groups;
    return rows > (1L << 30) ? -1 : rows;
}

size_t uk_group_gemm_tn_a_floats(int m, int steps, int group_size, int groups) {
    long rows = gg_rows(steps, group_size, groups);
    if (m <= 0 || rows < 0) return 0;
    return gg_round((size_t)rows * (((size_t)m + GG_MR - 1) / GG_MR) * GG_MR);
}

size_t uk_group_gemm_tn_b_scratch(int n, int steps, int group_size, int groups) {
    long rows = gg_rows(steps, group_size, groups);
    if (n <= 0 || rows < 0) return 0;
    return gg_round((size_t)rows * (((size_t)n + GG_NR - 1) / GG_NR) * GG_NR) + gg_round(2 * (size_t)groups) + 16;
}

size_t uk_group_gemm_tn_scratch(int m, int n, int steps, int group_size, int groups) {
    if (m <= 0 || n <= 0) return 0;
    return uk_group_gemm_tn_a_floats(m, steps, group_size, groups) +
           uk_group_gemm_tn_b_scratch(n, steps, group_size, groups);
}

/// Source row of local row w of group q: rows (t, u) in t-major order.
static inline const float *gg_row(const float *base, int ld, long group_stride, long step_stride,
                                  int group_size, int q, int w) {
    long row = (long)q * group_stride + (long)(w / group_size) * step_stride + (w % group_size);
    return base + row * (long)ld;
}

/// Columns [col0, col0 + cols) of a's rows, in group order, into 6-column panels of all R rows
/// (panel p: R rows of 6, zero past m), GG_PACK_ROWS rows at a time: the rows of a block are read
/// side by side and each panel receives them as one contiguous run. (One row at a time wrote 24
/// bytes into each of m / 6 panels, more lines than L1 holds, so that every line was written in
/// three visits.) The next block's rows are prefetched: when only a block of columns is packed,
/// each row is a short run, and without it the copy waited on every one.
static void gg_pack_columns(float *packed, const float *a, int lda, int m, int col0, int cols, int R,
                            int L, int group_size, long group_stride, long step_stride) {
    const int panels = (cols + GG_MR - 1) / GG_MR, whole = col0 + cols <= m ? cols / GG_MR : (m - col0) / GG_MR;
    const float *src[2][GG_PACK_ROWS];
    int cur = 0;
    for (int i = 0; i < GG_PACK_ROWS && i < R; ++i)
        src[cur][i] = gg_row(a, lda, group_stride, step_stride, group_size, i / L, i % L) + col0;
    for (int r0 = 0; r0 < R; r0 += GG_PACK_ROWS) {
        const int nr = R - r0 < GG_PACK_ROWS ? R - r0 : GG_PACK_ROWS;
        const int next = r0 + GG_PACK_ROWS, nn = R - next < GG_PACK_ROWS ? R - next : GG_PACK_ROWS;
        for (int i = 0; i < nn; ++i) {
            const float *row = gg_row(a, lda, group_stride, step_stride, group_size, (next + i) / L, (next + i) % L) + col0;
            src[cur ^ 1][i] = row;
            if (cols <= GG_PREFETCH_COLUMNS)
                for (int e = 0; e < cols; e += 16) __builtin_prefetch(row + e);
        }
        float *d = packed + (size_t)r0 * GG_MR;
        int p = 0;
        for (; p < whole; ++p, d += (size_t)R * GG_MR)
            for (int i = 0; i < nr; ++i) memcpy(d + i * GG_MR, src[cur][i] + p * GG_MR, GG_MR * sizeof(float));
        for (; p < panels; ++p, d += (size_t)R * GG_MR)
            for (int i = 0; i < nr; ++i)
                for (int e = 0; e < GG_MR; ++e)
                    d[i * GG_MR + e] = col0 + p * GG_MR + e < m ? src[cur][i][p * GG_MR + e] : 0.0f;
        cur ^= 1;
    }
}

int uk_group_gemm_tn_pack_a(int m, int steps, int group_size, int groups, long group_stride,
                            long step_stride, const float *a, int lda, float *packed_a) {
    const long rows = gg_rows(steps, group_size, groups);
    if (rows < 0) return -1;
    if (m <= 0) return 0;
    gg_pack_columns(packed_a, a, lda, m, 0, (m + GG_MR - 1) / GG_MR * GG_MR, (int)rows, steps * group_size,
                    group_size, group_stride, step_stride);
    return 0;
}

static int gg_run(int isa, int m, int n, int steps, int group_size, int groups, long group_stride,
                  long step_stride, const float *packed_a, const float *a, int lda, float *block,
                  const float *b, int ldb, float *c, int ldc, float *scratch);

int uk_group_gemm_tn(int m, int n, int steps, int group_size, int groups, long group_stride,
                     long step_stride, const float *a, int lda, const float *b, int ldb, float *c,
                     int ldc, float *scratch) {
    return uk_group_gemm_tn_on(uk_active_isa(), m, n, steps, group_size, groups, group_stride,
                               step_stride, a, lda, b, ldb, c, ldc, scratch);
}

int uk_group_gemm_tn_on(int isa, int m, int n, int steps, int group_size, int groups,
                        long group_stride, long step_stride, const float *a, int lda,
                        const float *b, int ldb, float *c, int ldc, float *scratch) {
    if (m <= 0 || n <= 0 || groups <= 0) return 0;
    const long rows = gg_rows(steps, group_size, groups);
    if (rows < 0) return -1;
    float *packed_a = scratch + uk_group_gemm_tn_b_scratch(n, steps, group_size, groups);
    if (gg_block_columns(rows, m) >= GG_BLOCK_PACK_MIN_COLUMNS)
        // Few rows, so wide blocks: a is packed a block of columns at a time, right before its
        // tiles, into the room scratch has for all of it. The block stays in L2 instead of all
        // of a making a round trip through memory (B's ∂L/∂logits: 16 MB written and read back
        // per step; 4–5 % of the product). With narrow blocks (many rows) the short runs of each
        // row cost more than that.
        return gg_run(isa, m, n, steps, group_size, groups, group_stride, step_stride, NULL, a, lda,
                      packed_a, b, ldb, c, ldc, scratch);
    uk_group_gemm_tn_pack_a(m, steps, group_size, groups, group_stride, step_stride, a, lda, packed_a);
    return gg_run(isa, m, n, steps, group_size, groups, group_stride, step_stride, packed_a, NULL, 0,
                  NULL, b, ldb, c, ldc, scratch);
}

int uk_group_gemm_tn_packed(int m, int n, int steps, int group_size, int groups, long group_stride,
                            long step_stride, const float *packed_a, const float *b, int ldb,
                            float *c, int ldc, float *scratch) {
    return uk_group_gemm_tn_packed_on(uk_active_isa(), m, n, steps, group_size, groups, group_stride,
                                      step_stride, packed_a, b, ldb, c, ldc, scratch);
}

int uk_group_gemm_tn_packed_on(int isa, int m, int n, int steps, int group_size, int groups,
                               long group_stride, long step_stride, const float *packed_a,
                               const float *b, int ldb, float *c, int ldc, float *scratch) {
    return gg_run(isa, m, n, steps, group_size, groups, group_stride, step_stride, packed_a, NULL, 0,
                  NULL, b, ldb, c, ldc, scratch);
}

/// The product, from a packed whole (`packed_a`) or — when it is NULL — from a itself, packed a
/// block of columns at a time into `block`.
static int gg_run(int isa, int m, int n, int steps, int group_size, int groups, long group_stride,
                  long step_stride, const float *packed_a, const float *a, int lda, float *block,
                  const float *b, int ldb, float *c, int ldc, float *scratch) {
    if (m <= 0 || n <= 0 || groups <= 0) return 0;
    if (gg_rows(steps, group_size, groups) < 0) return -1;
    const int L = steps * group_size, R = L * groups;
    const int strips = (n + GG_NR - 1) / GG_NR;
    const int mc = gg_block_columns(R, m);
    float *pb = scratch;
    int *leaf_level = (int *)(pb + gg_round((size_t)R * strips * GG_NR));
    int *merges = leaf_level + groups;
    gg_plan(0, groups, 0, leaf_level, merges);
    int levels = 0;
    for (int q = 0; q < groups; ++q) levels = leaf_level[q] + 1 > levels ? leaf_level[q] + 1 : levels;
    if (levels > GG_MAX_LEVELS) return -1;
    const gg_tree tree = {groups, L, leaf_level, merges};
    gg_tile_fn tile_fn = gg_tile_generic;
    int half_tiles = 0;
#if defined(__x86_64__)
    // AVX-512 machines run the AVX2 tile: same bits, and the product is bound by memory, not width.
    if (isa != UK_ISA_GENERIC) {
        if (uk_kernels_for_isa(UK_ISA_AVX2) == NULL) return -1;
        tile_fn = gg_tile_avx2;
        half_tiles = 1;
    }
#endif
    (void)half_tiles;
    float stack[GG_MAX_LEVELS * GG_TILE] __attribute__((aligned(64)));
    float out[GG_TILE] __attribute__((aligned(64)));
    // Pack b: strip s holds columns [16 s, 16 s + 16) of all rows in group order, zero past n.
    for (int q = 0, rb = 0; q < groups; ++q) {
        for (int w = 0; w < L; ++w, ++rb) {
            const float *src = gg_row(b, ldb, group_stride, step_stride, group_size, q, w);
            int s = 0;
            // Whole strips as fixed-size copies, which compile to vector moves (a call to memcpy
            // per 64 bytes cost D 2 of its 60 ms per step).
            for (; s < n / GG_NR; ++s)
                memcpy(pb + ((size_t)s * R + rb) * GG_NR, src + s * GG_NR, GG_NR * sizeof(float));
            if (s < strips) {
                float *d = pb + ((size_t)s * R + rb) * GG_NR;
                for (int j = 0; j < GG_NR; ++j) d[j] = s * GG_NR + j < n ? src[s * GG_NR + j] : 0.0f;
            }
        }
    }
    for (int ic = 0; ic < m; ic += mc) {
        int mcb = m - ic < mc ? m - ic : mc;
        int panels = (mcb + GG_MR - 1) / GG_MR;
        const float *pa_block = block;
        if (packed_a != NULL)
            pa_block = packed_a + (size_t)(ic / GG_MR) * R * GG_MR;
        else
            gg_pack_columns(block, a, lda, m, ic, panels * GG_MR, R, L, group_size, group_stride, step_stride);
        for (int s = 0; s < strips; ++s) {
            int j0 = s * GG_NR, nv = n - j0 < GG_NR ? n - j0 : GG_NR;
            for (int p = 0; p < panels; ++p) {
                int i0 = ic + p * GG_MR, mv = m - i0 < GG_MR ? m - i0 : GG_MR;
                float *ct = c + (size_t)i0 * ldc + j0;
                // C's tile is read once, after the tile's whole sum: fetch it now, while it runs,
                // into L2 (into L1, the panel and strip streaming through evicted it first).
                for (int i = 0; i < mv; ++i) __builtin_prefetch(ct + (size_t)i * ldc, 1, 2);
                const float *pa = pa_block + (size_t)p * R * GG_MR, *pbs = pb + (size_t)s * R * GG_NR;
                if (mv == GG_MR && nv == GG_NR) {
                    tile_fn(&tree, pa, pbs, stack, out, ct, (size_t)ldc);
                    continue;
                }
#if defined(__x86_64__)
                if (half_tiles && nv <= GG_NR / 2)
                    gg_tile_avx2_half(&tree, pa, pbs, stack, out);
                else
#endif
                    tile_fn(&tree, pa, pbs, stack, out, NULL, 0);
                for (int i = 0; i < mv; ++i)
                    for (int j = 0; j < nv; ++j) ct[(size_t)i * ldc + j] = ct[(size_t)i * ldc + j] + out[i * GG_NR + j];
            }
        }
    }
    return 0;
}
