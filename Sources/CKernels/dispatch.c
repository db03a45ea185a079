// Runtime selection of the widest instruction set this CPU supports, and the public entry points
// that forward to it. The choice is made once and cached in an atomic pointer; a race between
// first callers is benign because they all compute the same table.
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "uk_internal.h"

static const uk_kernel_table generic_table = {
    "generic", uk_sigmoid_generic, uk_tanh_generic, uk_exp_generic, uk_gemm_packed_generic,
};
static const uk_kernel_table avx2_table = {
    "avx2", uk_sigmoid_avx2, uk_tanh_avx2, uk_exp_avx2, uk_gemm_packed_avx2,
};
static const uk_kernel_table avx512_table = {
    "avx512", uk_sigmoid_avx512, uk_tanh_avx512, uk_exp_avx512, uk_gemm_packed_avx512,
};

static _Atomic(const uk_kernel_table *) active_table;

static int cpu_has(int isa) {
    __builtin_cpu_init();
    switch (isa) {
    case UK_ISA_GENERIC:
        return 1;
    case UK_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case UK_ISA_AVX512:
        // The AVX-512 functions are compiled with avx2+fma enabled too.
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    default:
        return 0;
    }
}

const uk_kernel_table *uk_kernels_for_isa(int isa) {
    if (!cpu_has(isa)) return NULL;
    switch (isa) {
    case UK_ISA_AVX512: return &avx512_table;
    case UK_ISA_AVX2: return &avx2_table;
    default: return &generic_table;
    }
}

static const uk_kernel_table *best_table(void) {
    if (cpu_has(UK_ISA_AVX512)) return &avx512_table;
    if (cpu_has(UK_ISA_AVX2)) return &avx2_table;
    return &generic_table;
}

static inline const uk_kernel_table *active(void) {
    const uk_kernel_table *t = atomic_load_explicit(&active_table, memory_order_acquire);
    if (__builtin_expect(t != NULL, 1)) return t;
    const uk_kernel_table *expected = NULL;
    t = best_table();
    // Only fill an empty slot, so a concurrent uk_force_isa is not overwritten.
    if (!atomic_compare_exchange_strong_explicit(&active_table, &expected, t,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        t = expected;
    }
    return t;
}

int uk_force_isa(int isa) {
    const uk_kernel_table *t = isa == UK_ISA_AUTO ? best_table() : uk_kernels_for_isa(isa);
    if (t == NULL) return -1;
    atomic_store_explicit(&active_table, t, memory_order_release);
    return 0;
}

const char *uk_isa_name(void) { return active()->name; }

int uk_active_isa(void) {
    const uk_kernel_table *t = active();
    if (t == &avx512_table) return UK_ISA_AVX512;
    if (t == &avx2_table) return UK_ISA_AVX2;
    return UK_ISA_GENERIC;
}

void uk_sigmoid(float *y, const float *x, size_t n) { active()->sigmoid(y, x, n); }
void uk_tanh(float *y, const float *x, size_t n) { active()->tanh_(y, x, n); }
void uk_exp(float *y, const float *x, size_t n) { active()->exp_(y, x, n); }

// Rows of A (and C) per call of a path's kernel. The paths sweep all of C once per 16-column
// strip, so at thousands of rows (the all-steps input projection, T·B = 2,048) C's rows fall out
// of cache and the TLB between strips: at 2,048 × 2,048 × 64, 43 GFLOP/s unblocked against 72–79
// in blocks of 192–384 rows (AMD EPYC, AVX2). Every path computes each row of C on its own (the
// M-stability reduction groups rely on), so blocking rows changes no bits. 288 is a multiple of
// every path's micro-tile height.
enum { UK_ROW_BLOCK = 288 };

/// Path `t`'s kernel over all m rows, UK_ROW_BLOCK at a time (m ≤ 0 still makes one call, which
/// handles the degenerate shapes).
static void packed_rows(const uk_kernel_table *t, int m, int n, int k, float alpha, const float *a,
                        int lda, const float *packed, float beta, float *c, int ldc) {
    for (int m0 = 0; m0 < m || m0 == 0; m0 += UK_ROW_BLOCK) {
        int rows = m - m0 < UK_ROW_BLOCK ? m - m0 : UK_ROW_BLOCK;
        t->gemm_packed(rows, n, k, alpha, a + (size_t)m0 * (size_t)lda, lda, packed, beta,
                       c + (size_t)m0 * (size_t)ldc, ldc);
    }
}

void uk_gemm_packed(int m, int n, int k, float alpha, const float *a, int lda,
                    const float *packed, float beta, float *c, int ldc) {
    packed_rows(active(), m, n, k, alpha, a, lda, packed, beta, c, ldc);
}

// uk_gemm off the AVX2 path: op(B) packed whole into a buffer kept per thread (grown as needed,
// freed when the thread ends), then uk_gemm_packed's row blocks on path `t`.
typedef struct {
    float *floats;
    size_t capacity;
} whole_buffer;

static pthread_key_t whole_key;
static pthread_once_t whole_once = PTHREAD_ONCE_INIT;
static int whole_key_ok;

static void free_whole(void *p) {
    whole_buffer *w = p;
    free(w->floats);
    free(w);
}

static void make_whole_key(void) { whole_key_ok = pthread_key_create(&whole_key, free_whole) == 0; }

static float *thread_whole_buffer(size_t count) {
    pthread_once(&whole_once, make_whole_key);
    if (!whole_key_ok) return NULL;
    whole_buffer *w = pthread_getspecific(whole_key);
    if (w == NULL) {
        w = calloc(1, sizeof *w);
        if (w == NULL) return NULL;
        if (pthread_setspecific(whole_key, w) != 0) {
            free(w);
            return NULL;
        }
    }
    if (w->capacity < count) {
        size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
        float *grown = aligned_alloc(64, bytes);
        if (grown == NULL) return NULL;
        free(w->floats);
        w->floats = grown;
        w->capacity = count;
    }
    return w->floats;
}

static int gemm_on(const uk_kernel_table *t, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, int trans, float beta, float *c, int ldc) {
    if (t == &avx2_table) {
        uk_gemm_avx2(m, n, k, alpha, a, lda, b, ldb, trans, beta, c, ldc);
        return 0;
    }
    if (uk_gemm_degenerate(m, n, k, beta, c, ldc)) return 0;
    float *packed = thread_whole_buffer(uk_packed_floats(k, n));
    if (packed == NULL) return -1;
    uk_pack_b(packed, b, k, n, ldb, trans);
    packed_rows(t, m, n, k, alpha, a, lda, packed, beta, c, ldc);
    return 0;
}

int uk_gemm(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
            int trans, float beta, float *c, int ldc) {
    return gemm_on(active(), m, n, k, alpha, a, lda, b, ldb, trans, beta, c, ldc);
}

int uk_gemm_on(int isa, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
               int ldb, int trans, float beta, float *c, int ldc) {
    const uk_kernel_table *t = uk_kernels_for_isa(isa);
    if (t == NULL) return -1;
    return gemm_on(t, m, n, k, alpha, a, lda, b, ldb, trans, beta, c, ldc);
}
