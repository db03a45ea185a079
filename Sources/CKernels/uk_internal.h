// Declarations shared by the CKernels translation units: per-ISA entry points, the packed-panel
// width, target attributes, and the scalar constants every path uses.
#ifndef UK_INTERNAL_H
#define UK_INTERNAL_H
#include <stddef.h>
#include "CKernels.h"

/// Columns per packed panel of op(B). The packed layout is: panel p holds columns
/// [p·UK_NR, p·UK_NR + UK_NR) as K rows of UK_NR contiguous floats (zero-padded past N),
/// panels one after another, their number rounded up to even so that a path may read panels in
/// pairs (AVX-512: 32 columns). Every ISA path reads this same layout. 16 columns make a
/// panel's k-block one contiguous 16 KiB stream: with 32-column panels the AVX2 tile's 16-column
/// strips had a 128-byte stride and filled only half of L1's sets (E's 2,048 × 4,096 × 1,024:
/// 67–78 → 81–84 GFLOP/s).
#define UK_NR 16
#define UK_NR_PAIR (2 * UK_NR)

#define UK_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define UK_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define UK_INLINE static inline __attribute__((always_inline))

// Cephes expf: Cody–Waite split of ln 2 (C1 has few enough bits that k·C1 is exact) and the
// degree-7 polynomial e^r ≈ 1 + r + r²·P(r) on |r| ≤ ln2/2 (about 1 ulp).
#define UK_LOG2E 1.44269504088896341f
#define UK_LN2_HI 0.693359375f
#define UK_LN2_LO (-2.12194440e-4f)
#define UK_EXP_P0 1.9875691500e-4f
#define UK_EXP_P1 1.3981999507e-3f
#define UK_EXP_P2 8.3334519073e-3f
#define UK_EXP_P3 4.1665795894e-2f
#define UK_EXP_P4 1.6666665459e-1f
#define UK_EXP_P5 5.0000001201e-1f
// exp(x) is exactly 0 in float below -104 (< 2^-150) and +Inf above 89 (> FLT_MAX); clamping
// there keeps the exponent arithmetic in range.
#define UK_EXP_LO (-104.0f)
#define UK_EXP_HI 89.0f

// Cephes tanhf: odd polynomial tanh(x) ≈ x + x³·Q(x²) for |x| < 0.625, where 1 - 2/(e^{2|x|}+1)
// would cancel; beyond 9.5 tanh rounds to ±1 in float (exactly so from 9.02).
#define UK_TANH_SMALL 0.625f
#define UK_TANH_CLAMP 9.5f
#define UK_TANH_Q0 (-5.70498872745e-3f)
#define UK_TANH_Q1 2.06390887954e-2f
#define UK_TANH_Q2 (-5.37397155531e-2f)
#define UK_TANH_Q3 1.33314422036e-1f
#define UK_TANH_Q4 (-3.33332819422e-1f)

void uk_sigmoid_generic(float *y, const float *x, size_t n);
void uk_tanh_generic(float *y, const float *x, size_t n);
void uk_exp_generic(float *y, const float *x, size_t n);
void uk_gemm_packed_generic(int m, int n, int k, float alpha, const float *a, int lda,
                            const float *packed, float beta, float *c, int ldc);

void uk_sigmoid_avx2(float *y, const float *x, size_t n);
void uk_tanh_avx2(float *y, const float *x, size_t n);
void uk_exp_avx2(float *y, const float *x, size_t n);
void uk_gemm_packed_avx2(int m, int n, int k, float alpha, const float *a, int lda,
                         const float *packed, float beta, float *c, int ldc);
void uk_gemm_avx2(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                  int trans, float beta, float *c, int ldc);

void uk_sigmoid_avx512(float *y, const float *x, size_t n);
void uk_tanh_avx512(float *y, const float *x, size_t n);
void uk_exp_avx512(float *y, const float *x, size_t n);
void uk_gemm_packed_avx512(int m, int n, int k, float alpha, const float *a, int lda,
                           const float *packed, float beta, float *c, int ldc);

/// Rows [k0, k0 + kc) × columns [n0, n0 + cols) of op(B) (as uk_pack_b reads it) into
/// ⌈cols / UK_NR⌉ panels of kc rows, panel p at dst + p·UK_NR·kc, columns past `cols` zero: the
/// layout of uk_pack_b for a k × N operand restricted to one k-block and column range.
void uk_pack_b_block(float *dst, const float *b, int ldb, int trans, int k0, int kc, int n0, int cols);

/// Handles the degenerate shapes every GEMM path shares (m or n ≤ 0: nothing; k ≤ 0: C = βC).
/// Returns 1 when it did the whole job.
int uk_gemm_degenerate(int m, int n, int k, float beta, float *c, int ldc);

#endif
