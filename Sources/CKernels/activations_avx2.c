// AVX2+FMA exp / sigmoid / tanh, 8 lanes at a time with masked loads/stores for the tail.
// Same algorithm as activations_generic.c; 2^k is applied in two halves for gradual underflow.
#include <immintrin.h>
#include "uk_internal.h"

UK_TARGET_AVX2 UK_INLINE __m256 exp8(__m256 x) {
    // MINPS/MAXPS return the second operand when either is NaN, so NaN passes through.
    x = _mm256_min_ps(_mm256_set1_ps(UK_EXP_HI), x);
    x = _mm256_max_ps(_mm256_set1_ps(UK_EXP_LO), x);
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(UK_LOG2E), magic);
    __m256 kf = _mm256_sub_ps(t, magic);
    __m256i k = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(UK_LN2_HI), x);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(UK_LN2_LO), r);
    __m256 p = _mm256_set1_ps(UK_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(UK_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(UK_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(UK_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(UK_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(UK_EXP_P5));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i k1 = _mm256_srai_epi32(k, 1);
    __m256i k2 = _mm256_sub_epi32(k, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
}

UK_TARGET_AVX2 UK_INLINE __m256 sigmoid8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 e = exp8(_mm256_or_ps(x, sign));  // exp(-|x|)
    __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 nonneg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ);
    return _mm256_blendv_ps(_mm256_mul_ps(e, r), r, nonneg);
}

UK_TARGET_AVX2 UK_INLINE __m256 tanh8(__m256 x) {
    // Both branches work on |x| and the sign is restored last (exactly odd, tanh(-0) = -0).
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 q = _mm256_set1_ps(UK_TANH_Q0);
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(UK_TANH_Q1));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(UK_TANH_Q2));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(UK_TANH_Q3));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(UK_TANH_Q4));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(q, z), ax, ax);
    __m256 a = _mm256_min_ps(_mm256_set1_ps(UK_TANH_CLAMP), ax);
    __m256 e = exp8(_mm256_add_ps(a, a));
    __m256 d = _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
    __m256 large = _mm256_sub_ps(_mm256_set1_ps(1.0f), d);
    __m256 is_small = _mm256_cmp_ps(ax, _mm256_set1_ps(UK_TANH_SMALL), _CMP_LT_OQ);
    __m256 t = _mm256_blendv_ps(large, small, is_small);
    return _mm256_or_ps(t, _mm256_and_ps(x, sign));
}

UK_TARGET_AVX2 UK_INLINE __m256i tail_mask8(size_t left) {
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), idx);
}

#define UK_AVX2_MAP(name, op)                                                   \
    UK_TARGET_AVX2 void name(float *y, const float *x, size_t n) {              \
        size_t i = 0;                                                           \
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, op(_mm256_loadu_ps(x + i))); \
        if (i < n) {                                                            \
            __m256i m = tail_mask8(n - i);                                      \
            _mm256_maskstore_ps(y + i, m, op(_mm256_maskload_ps(x + i, m)));    \
        }                                                                       \
    }

UK_AVX2_MAP(uk_exp_avx2, exp8)
UK_AVX2_MAP(uk_sigmoid_avx2, sigmoid8)
UK_AVX2_MAP(uk_tanh_avx2, tanh8)
