// AVX-512 exp / sigmoid / tanh, 16 lanes at a time with masked tails. VSCALEFPS applies 2^k with
// correct overflow and gradual underflow, and VRCP14PS plus one Newton step replaces division.
#include <immintrin.h>
#include "uk_internal.h"

/// e^x for x already inside [UK_EXP_LO, UK_EXP_HI] (or NaN).
UK_TARGET_AVX512 UK_INLINE __m512 exp16_unclamped(__m512 x) {
    __m512 kf = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(UK_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(UK_LN2_HI), x);
    r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(UK_LN2_LO), r);
    __m512 p = _mm512_set1_ps(UK_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(UK_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(UK_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(UK_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(UK_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(UK_EXP_P5));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, kf);
}

UK_TARGET_AVX512 UK_INLINE __m512 exp16(__m512 x) {
    // MINPS/MAXPS return the second operand when either is NaN, so NaN passes through.
    x = _mm512_min_ps(_mm512_set1_ps(UK_EXP_HI), x);
    x = _mm512_max_ps(_mm512_set1_ps(UK_EXP_LO), x);
    return exp16_unclamped(x);
}

/// 1/d for finite d ≥ 1: 14-bit estimate refined once by Newton, error ≈ 2^-28 before rounding.
UK_TARGET_AVX512 UK_INLINE __m512 recip16(__m512 d) {
    __m512 r = _mm512_rcp14_ps(d);
    __m512 err = _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f));
    return _mm512_fmadd_ps(r, err, r);
}

UK_TARGET_AVX512 UK_INLINE __m512 sigmoid16(__m512 x) {
    // e = exp(-|x|) ≤ 1; x < 0 uses e/(1+e), which keeps relative accuracy deep into the tail.
    __m512 e = exp16(_mm512_or_ps(x, _mm512_set1_ps(-0.0f)));
    __m512 r = recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ) ^ 0xFFFF;
    return _mm512_mask_mul_ps(r, negative, e, r);
}

UK_TARGET_AVX512 UK_INLINE __m512 tanh16(__m512 x) {
    // Both branches work on |x| and the sign is restored last: tanh is then exactly odd, and
    // tanh(-0) = -0 (x + x·z·q would give +0 there because q < 0).
    __m512 ax = _mm512_abs_ps(x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 q = _mm512_set1_ps(UK_TANH_Q0);
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(UK_TANH_Q1));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(UK_TANH_Q2));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(UK_TANH_Q3));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(UK_TANH_Q4));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(q, z), ax, ax);
    // 2|x| ≤ 19 after the clamp, so exp needs no range clamp and 1 + e stays finite.
    __m512 a = _mm512_min_ps(_mm512_set1_ps(UK_TANH_CLAMP), ax);
    __m512 e = exp16_unclamped(_mm512_add_ps(a, a));
    __m512 d = recip16(_mm512_add_ps(e, _mm512_set1_ps(1.0f)));
    __m512 large = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), d, _mm512_set1_ps(1.0f));
    __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(UK_TANH_SMALL), _CMP_LT_OQ);
    __m512 t = _mm512_mask_blend_ps(is_small, large, small);
    return _mm512_or_ps(t, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
}

#define UK_AVX512_MAP(name, op)                                                  \
    UK_TARGET_AVX512 void name(float *y, const float *x, size_t n) {             \
        size_t i = 0;                                                            \
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, op(_mm512_loadu_ps(x + i))); \
        if (i < n) {                                                             \
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);                     \
            _mm512_mask_storeu_ps(y + i, m, op(_mm512_maskz_loadu_ps(m, x + i))); \
        }                                                                        \
    }

UK_AVX512_MAP(uk_exp_avx512, exp16)
UK_AVX512_MAP(uk_sigmoid_avx512, sigmoid16)
UK_AVX512_MAP(uk_tanh_avx512, tanh16)
