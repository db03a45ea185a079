// Fused per-time-step pointwise kernels of the recurrent cells, forward next to backward.
// The matrix products (input projection for all steps, h·W_hhᵀ per step, weight gradients over the
// window) happen in the layers; these kernels do everything elementwise between them, in one pass
// over the (B, G·H) gate block of a step. They run in C (CKernels/cells.c), where `restrict` lets
// them vectorise. Gate layouts follow PyTorch: LSTM i,f,g,o; GRU r,z,n.
// Derivations: Sources/UnrollKernels/Derivations.md.
import CKernels

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
        uk_lstm_forward(gates, cPrev, c, tanhC, h, Int32(batch), Int32(hidden))
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
        uk_lstm_backward(dGates, dc, dh, gates, cPrev, tanhC, Int32(batch), Int32(hidden))
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
        uk_gru_forward(gatesIH, gatesHH, hhN, hPrev, h, Int32(batch), Int32(hidden))
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
        uk_gru_backward(dGatesIH, dGatesHH, dhPrev, dh, gates, hhN, hPrev, Int32(batch), Int32(hidden))
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

/// Leaky-integration unit pointwise kernels (Deep Learning §10.7.3; Jaeger et al. 2007):
/// h_t = (1 − α) ⊙ h_{t−1} + α ⊙ tanh(W_ih x + b_ih + W_hh h_{t−1} + b_hh), α (H) per unit.
public enum LeakyKernels {
    /// One step forward.
    /// - u: (B, H) pre-activations on entry; u = tanh(pre) on exit (kept for backward).
    /// - hPrev: (B, H) h_{t−1}; alpha: (H) leak rates; h: (B, H) h_t out.
    @inlinable
    public static func forward(u: UnsafeMutablePointer<Float>, hPrev: UnsafePointer<Float>, alpha: UnsafePointer<Float>,
                               h: UnsafeMutablePointer<Float>, batch: Int, hidden: Int) {
        uk_leaky_forward(u, hPrev, alpha, h, Int32(batch), Int32(hidden))
    }

    /// One step backward.
    /// - dPre: (B, H) out, ∂L/∂pre = dh ⊙ α ⊙ (1 − u²).
    /// - dhPrev: (B, H) out, the direct part dh ⊙ (1 − α) of ∂L/∂h_{t−1} (the caller adds dPre·W_hh).
    /// - dRate: (B, H) out, per-row ∂L/∂α ⊙ rateScale = dh ⊙ (u − h_{t−1}) ⊙ rateScale (the caller
    ///   sums the rows; with rateScale = α(1 − α) = σ'(a) the rows are ∂L/∂a of learned rates).
    /// - dh: (B, H) ∂L/∂h_t; u: (B, H) tanh(pre) from forward; hPrev: (B, H); alpha, rateScale: (H).
    @inlinable
    public static func backward(dPre: UnsafeMutablePointer<Float>, dhPrev: UnsafeMutablePointer<Float>,
                                dRate: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>, u: UnsafePointer<Float>,
                                hPrev: UnsafePointer<Float>, alpha: UnsafePointer<Float>,
                                rateScale: UnsafePointer<Float>, batch: Int, hidden: Int) {
        uk_leaky_backward(dPre, dhPrev, dRate, dh, u, hPrev, alpha, rateScale, Int32(batch), Int32(hidden))
    }
}

/// Binary Tree-LSTM node pointwise kernels (Tai, Socher & Manning 2015, N-ary Tree-LSTM with N = 2):
/// gates [i f_L f_R o u] = [σ σ σ σ tanh](W x + U [h_L; h_R] + b), c = i ⊙ u + f_L ⊙ c_L + f_R ⊙ c_R,
/// h = o ⊙ tanh(c). A leaf has c_L = c_R = h_L = h_R = 0.
public enum TreeLSTMKernels {
    /// Gate blocks per node: i, f_L, f_R, o, u.
    public static let gateCount = 5

    /// Nodes forward.
    /// - gates: (B, 5H) pre-activations on entry; activations on exit (kept for backward).
    /// - cChildren: (B, 2H) [c_L c_R] per node; c, tanhC, h: (B, H) out.
    @inlinable
    public static func forward(gates: UnsafeMutablePointer<Float>, cChildren: UnsafePointer<Float>,
                               c: UnsafeMutablePointer<Float>, tanhC: UnsafeMutablePointer<Float>,
                               h: UnsafeMutablePointer<Float>, batch: Int, hidden: Int) {
        uk_tree_lstm_forward(gates, cChildren, c, tanhC, h, Int32(batch), Int32(hidden))
    }

    /// Nodes backward.
    /// - dGates: (B, 5H) out, gradient w.r.t. the pre-activations.
    /// - dcChildren: (B, 2H) out, [∂L/∂c_L ∂L/∂c_R] through this node.
    /// - dc: (B, H) ∂L/∂c arriving from the parent; dh: (B, H) ∂L/∂h (parent and head).
    /// - gates: (B, 5H) activations; cChildren: (B, 2H); tanhC: (B, H) from forward.
    @inlinable
    public static func backward(dGates: UnsafeMutablePointer<Float>, dcChildren: UnsafeMutablePointer<Float>,
                                dc: UnsafePointer<Float>, dh: UnsafePointer<Float>, gates: UnsafePointer<Float>,
                                cChildren: UnsafePointer<Float>, tanhC: UnsafePointer<Float>, batch: Int, hidden: Int) {
        uk_tree_lstm_backward(dGates, dcChildren, dc, dh, gates, cChildren, tanhC, Int32(batch), Int32(hidden))
    }
}
