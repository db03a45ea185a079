// Portable scalar exp / sigmoid / tanh: the same range reduction and polynomials as the vector
// paths (Cephes expf / tanhf), written so the compiler may vectorise them for baseline x86-64.
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "uk_internal.h"

static inline float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/// exp(x) with gradual underflow: 2^k is applied as 2^(k/2)·2^(k-k/2) so both factors stay
/// normal for k ∈ [-150, 128]; the last multiply rounds once into the subnormal or Inf range.
static inline float exp_scalar(float x) {
    // Comparisons are false for NaN, so NaN survives the clamp.
    if (x < UK_EXP_LO) x = UK_EXP_LO;
    if (x > UK_EXP_HI) x = UK_EXP_HI;
    // Adding 1.5·2^23 rounds x·log2(e) to the nearest integer, which lands in the low mantissa bits.
    const float magic = 12582912.0f;
    float t = x * UK_LOG2E + magic;
    float kf = t - magic;
    int32_t k = (int32_t)(to_bits(t) - to_bits(magic));
    float r = x - kf * UK_LN2_HI;
    r = r - kf * UK_LN2_LO;
    float p = UK_EXP_P0;
    p = p * r + UK_EXP_P1;
    p = p * r + UK_EXP_P2;
    p = p * r + UK_EXP_P3;
    p = p * r + UK_EXP_P4;
    p = p * r + UK_EXP_P5;
    float y = p * (r * r) + r + 1.0f;
    int32_t k1 = k / 2;
    int32_t k2 = k - k1;
    float s1 = from_bits((uint32_t)(k1 + 127) << 23);
    float s2 = from_bits((uint32_t)(k2 + 127) << 23);
    return y * s1 * s2;
}

void uk_exp_generic(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = exp_scalar(x[i]);
}

void uk_sigmoid_generic(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        float v = x[i];
        // e = exp(-|x|) ≤ 1 never overflows; for x < 0, e/(1+e) keeps full relative accuracy
        // where 1 - 1/(1+e) would cancel.
        float e = exp_scalar(-fabsf(v));
        float r = 1.0f / (1.0f + e);
        y[i] = v >= 0.0f ? r : e * r;
    }
}

void uk_tanh_generic(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        float v = x[i];
        float av = fabsf(v);
        float t;
        // Both branches work on |x| and the sign is restored last (exactly odd, tanh(-0) = -0).
        if (av < UK_TANH_SMALL) {
            float z = v * v;
            float q = UK_TANH_Q0;
            q = q * z + UK_TANH_Q1;
            q = q * z + UK_TANH_Q2;
            q = q * z + UK_TANH_Q3;
            q = q * z + UK_TANH_Q4;
            t = q * z * av + av;
        } else {
            float a = av > UK_TANH_CLAMP ? UK_TANH_CLAMP : av;
            float e = exp_scalar(a + a);
            t = 1.0f - 2.0f / (e + 1.0f);
        }
        y[i] = copysignf(t, v);
    }
}
