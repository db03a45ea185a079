// Fused per-time-step pointwise kernels of the LSTM, GRU and leaky cells, and the bias-gradient column
// sums: one pass over a step's (B, G·H) gate block each. They are plain loops over `restrict`
// pointers so that the compiler vectorises them (the Swift versions could not prove the seven
// buffers distinct and ran scalar: 6–8% of a training step); compiled for AVX-512, AVX2 and
// baseline x86-64, the loader picks one (target_clones). Formulas and derivations:
// Sources/UnrollKernels/Derivations.md. Gate layouts follow PyTorch: LSTM i,f,g,o; GRU r,z,n.
#include "uk_internal.h"

#define UK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

UK_CLONES void uk_lstm_forward(float *restrict gates, const float *restrict c_prev, float *restrict c,
                               float *restrict tanh_c, float *restrict h, int batch, int hidden) {
    const size_t H = (size_t)hidden;
    for (int b = 0; b < batch; ++b) {
        float *restrict g = gates + (size_t)b * 4 * H;
        uk_sigmoid(g, g, 2 * H);          // i, f
        uk_tanh(g + 2 * H, g + 2 * H, H);  // g
        uk_sigmoid(g + 3 * H, g + 3 * H, H);  // o
        const float *restrict cp = c_prev + (size_t)b * H;
        float *restrict cn = c + (size_t)b * H, *restrict tc = tanh_c + (size_t)b * H;
        float *restrict hn = h + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) cn[j] = g[H + j] * cp[j] + g[j] * g[2 * H + j];
        uk_tanh(tc, cn, H);
        for (size_t j = 0; j < H; ++j) hn[j] = g[3 * H + j] * tc[j];
    }
}

UK_CLONES void uk_lstm_backward(float *restrict d_gates, float *restrict dc, const float *restrict dh,
                                const float *restrict gates, const float *restrict c_prev,
                                const float *restrict tanh_c, int batch, int hidden) {
    const size_t H = (size_t)hidden;
    for (int b = 0; b < batch; ++b) {
        const float *restrict g = gates + (size_t)b * 4 * H;
        float *restrict dg = d_gates + (size_t)b * 4 * H;
        float *restrict dcb = dc + (size_t)b * H;
        const float *restrict dhb = dh + (size_t)b * H, *restrict cp = c_prev + (size_t)b * H;
        const float *restrict tc = tanh_c + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) {
            float i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], t = tc[j];
            float dc_total = dcb[j] + dhb[j] * o * (1 - t * t);
            dg[j] = dc_total * gg * i * (1 - i);
            dg[H + j] = dc_total * cp[j] * f * (1 - f);
            dg[2 * H + j] = dc_total * i * (1 - gg * gg);
            dg[3 * H + j] = dhb[j] * t * o * (1 - o);
            dcb[j] = dc_total * f;
        }
    }
}

UK_CLONES void uk_gru_forward(float *restrict gates_ih, const float *restrict gates_hh, float *restrict hh_n,
                              const float *restrict h_prev, float *restrict h, int batch, int hidden) {
    const size_t H = (size_t)hidden;
    for (int b = 0; b < batch; ++b) {
        float *restrict gi = gates_ih + (size_t)b * 3 * H;
        const float *restrict gh = gates_hh + (size_t)b * 3 * H;
        for (size_t j = 0; j < 2 * H; ++j) gi[j] += gh[j];
        uk_sigmoid(gi, gi, 2 * H);
        float *restrict hn = hh_n + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) {
            hn[j] = gh[2 * H + j];
            gi[2 * H + j] += gi[j] * hn[j];
        }
        uk_tanh(gi + 2 * H, gi + 2 * H, H);
        const float *restrict hp = h_prev + (size_t)b * H;
        float *restrict ho = h + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) {
            float z = gi[H + j], n = gi[2 * H + j];
            ho[j] = n + z * (hp[j] - n);
        }
    }
}

UK_CLONES void uk_gru_backward(float *restrict d_gates_ih, float *restrict d_gates_hh, float *restrict dh_prev,
                               const float *restrict dh, const float *restrict gates,
                               const float *restrict hh_n, const float *restrict h_prev, int batch,
                               int hidden) {
    const size_t H = (size_t)hidden;
    for (int b = 0; b < batch; ++b) {
        const float *restrict g = gates + (size_t)b * 3 * H;
        float *restrict di = d_gates_ih + (size_t)b * 3 * H, *restrict dhh = d_gates_hh + (size_t)b * 3 * H;
        const float *restrict dhb = dh + (size_t)b * H, *restrict hp = h_prev + (size_t)b * H;
        const float *restrict hn = hh_n + (size_t)b * H;
        float *restrict dp = dh_prev + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) {
            float r = g[j], z = g[H + j], n = g[2 * H + j], d = dhb[j];
            float dn_pre = d * (1 - z) * (1 - n * n);
            float dz_pre = d * (hp[j] - n) * z * (1 - z);
            float dr_pre = dn_pre * hn[j] * r * (1 - r);
            di[j] = dr_pre;
            di[H + j] = dz_pre;
            di[2 * H + j] = dn_pre;
            dhh[j] = dr_pre;
            dhh[H + j] = dz_pre;
            dhh[2 * H + j] = dn_pre * r;
            dp[j] = d * z;
        }
    }
}

// Leaky integration (Deep Learning §10.7.3): u = tanh(pre), h = h_prev + α ⊙ (u − h_prev).
UK_CLONES void uk_leaky_forward(float *restrict u, const float *restrict h_prev, const float *restrict alpha,
                                float *restrict h, int batch, int hidden) {
    const size_t H = (size_t)hidden;
    uk_tanh(u, u, (size_t)batch * H);
    for (int b = 0; b < batch; ++b) {
        const float *restrict ub = u + (size_t)b * H, *restrict hp = h_prev + (size_t)b * H;
        float *restrict ho = h + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) ho[j] = hp[j] + alpha[j] * (ub[j] - hp[j]);
    }
}

// ∂h/∂pre = α (1 − u²), ∂h/∂h_prev (direct) = 1 − α, ∂h/∂α = u − h_prev; d_rate is ∂L/∂α per
// row times rate_scale (α(1 − α) for learned rates: ∂L/∂a per row, so that rows sum to the gradient
// in any grouping without a multiplication after the sum).
UK_CLONES void uk_leaky_backward(float *restrict d_pre, float *restrict dh_prev, float *restrict d_rate,
                                 const float *restrict dh, const float *restrict u,
                                 const float *restrict h_prev, const float *restrict alpha,
                                 const float *restrict rate_scale, int batch, int hidden) {
    const size_t H = (size_t)hidden;
    for (int b = 0; b < batch; ++b) {
        const size_t o = (size_t)b * H;
        const float *restrict d = dh + o, *restrict ub = u + o, *restrict hp = h_prev + o;
        float *restrict dp = d_pre + o, *restrict dhp = dh_prev + o, *restrict da = d_rate + o;
        for (size_t j = 0; j < H; ++j) {
            float a = alpha[j], uj = ub[j];
            dp[j] = d[j] * a * (1 - uj * uj);
            dhp[j] = d[j] * (1 - a);
            da[j] = d[j] * (uj - hp[j]) * rate_scale[j];
        }
    }
}

UK_CLONES void uk_add_column_sums(float *restrict sums, const float *restrict x, int rows, int cols) {
    // Row after row, so every column is summed in row order whatever the vector width.
    for (int r = 0; r < rows; ++r) {
        const float *restrict row = x + (size_t)r * (size_t)cols;
        for (int j = 0; j < cols; ++j) sums[j] += row[j];
    }
}

/* Binary Tree-LSTM (Tai, Socher & Manning 2015, N-ary with N = 2), gates [i fL fR o u] per row:
 * c = i*u + fL*cL + fR*cR, h = o*tanh(c). c_children (B, 2H) holds [cL cR] per row. */
UK_CLONES void uk_tree_lstm_forward(float *restrict gates, const float *restrict c_children, float *restrict c,
                                    float *restrict tanh_c, float *restrict h, int batch, int hidden) {
    const size_t H = (size_t)hidden;
    for (int b = 0; b < batch; ++b) {
        float *restrict g = gates + (size_t)b * 5 * H;
        uk_sigmoid(g, g, 4 * H);              // i, fL, fR, o
        uk_tanh(g + 4 * H, g + 4 * H, H);     // u
        const float *restrict cl = c_children + (size_t)b * 2 * H, *restrict cr = cl + H;
        float *restrict cn = c + (size_t)b * H, *restrict tc = tanh_c + (size_t)b * H;
        float *restrict hn = h + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) cn[j] = g[j] * g[4 * H + j] + g[H + j] * cl[j] + g[2 * H + j] * cr[j];
        uk_tanh(tc, cn, H);
        for (size_t j = 0; j < H; ++j) hn[j] = g[3 * H + j] * tc[j];
    }
}

UK_CLONES void uk_tree_lstm_backward(float *restrict d_gates, float *restrict dc_children, const float *restrict dc,
                                     const float *restrict dh, const float *restrict gates,
                                     const float *restrict c_children, const float *restrict tanh_c, int batch,
                                     int hidden) {
    const size_t H = (size_t)hidden;
    for (int b = 0; b < batch; ++b) {
        const float *restrict g = gates + (size_t)b * 5 * H;
        float *restrict dg = d_gates + (size_t)b * 5 * H;
        const float *restrict cl = c_children + (size_t)b * 2 * H, *restrict cr = cl + H;
        float *restrict dcl = dc_children + (size_t)b * 2 * H, *restrict dcr = dcl + H;
        const float *restrict dcb = dc + (size_t)b * H, *restrict dhb = dh + (size_t)b * H;
        const float *restrict tc = tanh_c + (size_t)b * H;
        for (size_t j = 0; j < H; ++j) {
            float i = g[j], fl = g[H + j], fr = g[2 * H + j], o = g[3 * H + j], u = g[4 * H + j], t = tc[j];
            float dct = dcb[j] + dhb[j] * o * (1 - t * t);
            dg[j] = dct * u * i * (1 - i);
            dg[H + j] = dct * cl[j] * fl * (1 - fl);
            dg[2 * H + j] = dct * cr[j] * fr * (1 - fr);
            dg[3 * H + j] = dhb[j] * t * o * (1 - o);
            dg[4 * H + j] = dct * i * (1 - u * u);
            dcl[j] = dct * fl;
            dcr[j] = dct * fr;
        }
    }
}
