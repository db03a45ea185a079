// Fused per-time-step pointwise kernels of the recurrent cells, forward next to backward.
// The matrix products (input projection for all steps, h·W_hhᵀ per step, weight gradients over the
// window) happen in the layers; these kernels do everything elementwise between them, in one pass
// over the (B, G·H) gate block of a step. Gate layouts follow PyTorch: LSTM i,f,g,o; GRU r,z,n.
// Derivations: Sources/UnrollKernels/Derivations.md.

/// LSTM cell pointwise kernels (Hochreiter & Schmidhuber 1997; Deep Learning eq. 10.40–10.44).
public enum LSTMKernels {
    /// One step forward.
    /// - gates: (B, 4H) pre-activations [i f g o] on entry (x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh);
    ///   activations [σ(i) σ(f) tanh(g) σ(o)] on exit (kept for backward).
    /// - cPrev: (B, H) c_{t−1}; c: (B, H) c_t out; tanhC: (B, H) tanh(c_t) out; h: (B, H) h_t out.
    @inlinable
    public static func forward(gates: UnsafeMutablePointer<Float>, cPrev: UnsafePointer<Float>,
                               c: UnsafeMutablePointer<Float>, tanhC: UnsafeMutablePointer<Float>,
                               h: UnsafeMutablePointer<Float>, batch: Int, hidden: Int) {
        let H = hidden
        for b in 0..<batch {
            let g = gates + b * 4 * H
            Activations.sigmoid(g, g, count: 2 * H)           // i, f
            Activations.tanh(g + 2 * H, g + 2 * H, count: H)  // g
            Activations.sigmoid(g + 3 * H, g + 3 * H, count: H) // o
            let cp = cPrev + b * H, cn = c + b * H
            for j in 0..<H { cn[j] = g[H + j] * cp[j] + g[j] * g[2 * H + j] }
            Activations.tanh(tanhC + b * H, cn, count: H)
            let tc = tanhC + b * H, hn = h + b * H
            for j in 0..<H { hn[j] = g[3 * H + j] * tc[j] }
        }
    }

    /// One step backward.
    /// - dGates: (B, 4H) out, gradient w.r.t. the pre-activations [i f g o].
    /// - dc: (B, H) in: ∂L/∂c_t arriving from step t+1 (zero or the final-state gradient at the
    ///   last step); out: ∂L/∂c_{t−1}.
    /// - dh: (B, H) ∂L/∂h_t (output gradient plus recurrent gradient from step t+1).
    /// - gates: (B, 4H) activations from forward; cPrev: (B, H) c_{t−1}; tanhC: (B, H) tanh(c_t).
    @inlinable
    public static func backward(dGates: UnsafeMutablePointer<Float>, dc: UnsafeMutablePointer<Float>,
                                dh: UnsafePointer<Float>, gates: UnsafePointer<Float>,
                                cPrev: UnsafePointer<Float>, tanhC: UnsafePointer<Float>,
                                batch: Int, hidden: Int) {
        let H = hidden
        for b in 0..<batch {
            let g = gates + b * 4 * H, dg = dGates + b * 4 * H
            let dcb = dc + b * H, dhb = dh + b * H, cp = cPrev + b * H, tc = tanhC + b * H
            for j in 0..<H {
                let i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j], t = tc[j]
                let dcTotal = dcb[j] + dhb[j] * o * (1 - t * t)
                dg[j] = dcTotal * gg * i * (1 - i)
                dg[H + j] = dcTotal * cp[j] * f * (1 - f)
                dg[2 * H + j] = dcTotal * i * (1 - gg * gg)
                dg[3 * H + j] = dhb[j] * t * o * (1 - o)
                dcb[j] = dcTotal * f
            }
        }
    }
}

/// GRU cell pointwise kernels in PyTorch's formulation (Cho et al. 2014):
/// r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
/// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
public enum GRUKernels {
    /// One step forward.
    /// - gatesIH: (B, 3H) input part [r z n] incl. b_ih; overwritten with activations [r z n].
    /// - gatesHH: (B, 3H) recurrent part h·W_hhᵀ + b_hh (read only).
    /// - hhN: (B, H) out: the n-part of gatesHH (W_hn h + b_hn), kept for backward.
    /// - hPrev: (B, H) h_{t−1}; h: (B, H) h_t out.
    @inlinable
    public static func forward(gatesIH: UnsafeMutablePointer<Float>, gatesHH: UnsafePointer<Float>,
                               hhN: UnsafeMutablePointer<Float>, hPrev: UnsafePointer<Float>,
                               h: UnsafeMutablePointer<Float>, batch: Int, hidden: Int) {
        let H = hidden
        for b in 0..<batch {
            let gi = gatesIH + b * 3 * H, gh = gatesHH + b * 3 * H
            for j in 0..<2 * H { gi[j] += gh[j] }
            Activations.sigmoid(gi, gi, count: 2 * H)
            let hn = hhN + b * H
            for j in 0..<H {
                hn[j] = gh[2 * H + j]
                gi[2 * H + j] += gi[j] * hn[j]
            }
            Activations.tanh(gi + 2 * H, gi + 2 * H, count: H)
            let hp = hPrev + b * H, ho = h + b * H
            for j in 0..<H {
                let z = gi[H + j], n = gi[2 * H + j]
                ho[j] = n + z * (hp[j] - n)
            }
        }
    }

    /// One step backward.
    /// - dGatesIH: (B, 3H) out, gradient w.r.t. the input pre-activations [r z n].
    /// - dGatesHH: (B, 3H) out, gradient w.r.t. h·W_hhᵀ + b_hh (n part is dn_pre ⊙ r).
    /// - dhPrev: (B, H) out, the direct part z ⊙ dh of ∂L/∂h_{t−1} (the caller adds dGatesHH·W_hh).
    /// - dh: (B, H) ∂L/∂h_t; gates: (B, 3H) activations [r z n]; hhN: (B, H); hPrev: (B, H).
    @inlinable
    public static func backward(dGatesIH: UnsafeMutablePointer<Float>, dGatesHH: UnsafeMutablePointer<Float>,
                                dhPrev: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>,
                                gates: UnsafePointer<Float>, hhN: UnsafePointer<Float>,
                                hPrev: UnsafePointer<Float>, batch: Int, hidden: Int) {
        let H = hidden
        for b in 0..<batch {
            let g = gates + b * 3 * H, di = dGatesIH + b * 3 * H, dhh = dGatesHH + b * 3 * H
            let dhb = dh + b * H, hp = hPrev + b * H, hn = hhN + b * H, dp = dhPrev + b * H
            for j in 0..<H {
                let r = g[j], z = g[H + j], n = g[2 * H + j], d = dhb[j]
                let dnPre = d * (1 - z) * (1 - n * n)
                let dzPre = d * (hp[j] - n) * z * (1 - z)
                let drPre = dnPre * hn[j] * r * (1 - r)
                di[j] = drPre; di[H + j] = dzPre; di[2 * H + j] = dnPre
                dhh[j] = drPre; dhh[H + j] = dzPre; dhh[2 * H + j] = dnPre * r
                dp[j] = d * z
            }
        }
    }
}

/// Elman cell pointwise kernels: h = φ(W_ih x + b_ih + W_hh h + b_hh), φ = tanh or relu
/// (Deep Learning eq. 10.8–10.9).
public enum ElmanKernels {
    /// h (B·H) in: pre-activation; out: φ(pre-activation).
    @inlinable
    public static func forward(h: UnsafeMutablePointer<Float>, count: Int, relu: Bool) {
        if relu { Activations.relu(h, h, count: count) } else { Activations.tanh(h, h, count: count) }
    }

    /// dPre (B·H) out = dh ⊙ φ'(given h = φ(pre)).
    @inlinable
    public static func backward(dPre: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>,
                                h: UnsafePointer<Float>, count: Int, relu: Bool) {
        if relu {
            Activations.reluBackward(dPre, dy: dh, y: h, count: count)
        } else {
            Activations.tanhBackward(dPre, dy: dh, y: h, count: count)
        }
    }
}
