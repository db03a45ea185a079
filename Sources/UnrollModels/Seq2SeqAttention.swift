// Global attention of the sequence-to-sequence decoder (Luong et al. 2015 §3.1; Bahdanau et al.
// 2015 for the additive score; Deep Learning §10.12), forward next to backward, over a block of
// whole decoder steps [t0, t0 + n) of a time-major batch: scores → softmax over each row's valid
// source steps (padded ones masked, weight exactly 0) → context c_t = Σ_s a_ts e_s, written with
// h_t as [c_t; h_t] for the combine layer. dot and general scores of one row are one GEMM
// (n × S) = h_b · K_bᵀ on strided views of the time-major buffers; the additive score is one block
// U = tanh(q + k_s) (S × A) and one product U·v per row, recomputed in backward (the (n, S, A)
// tanh block is never stored).
//
// Backward (a = softmax(z), c = Σ a e): ∂a = ∂c · Eᵀ, ∂e += aᵀ · ∂c, ∂z = a ⊙ (∂a − Σ_s a ∂a);
// dot/general ∂h += ∂z · K, ∂K += ∂zᵀ · h; additive with u = tanh(q + k): ∂v += Σ ∂z u,
// g = ∂z v ⊙ (1 − u²), ∂q += Σ_s g, ∂k += Σ_t g. The projections K = E W_aᵀ (or W_k) and
// q = h W_qᵀ get their weight gradients as one GEMM over all rows in `finishAttentionBackward`.
//
// Letters: B batch, S source steps, n decoder steps in the block, H hidden, D encoder width, C = D + H.
import UnrollKernels

extension Seq2SeqModel {
    /// Attention forward for decoder steps [t0, t0 + n): fills `ws.weights` (rows, S), `ws.concat`
    /// (rows, C) and, additive, `ws.query` (rows, H) for rows t0·B ..< (t0 + n)·B.
    /// - query: (≥ (t0 + n)·B, H) top decoder outputs, row (t, b) at t·B + b.
    func attentionForward(_ ws: DecoderHeadWorkspace, firstStep t0: Int, steps n: Int, query: UnsafePointer<Float>,
                          memory m: AttentionMemory) {
        let B = m.batch, S = m.steps, H = config.hiddenSize, D = config.encoderWidth, C = D + H
        let r0 = t0 * B, kw = m.keyWidth
        let a = ws.weights.pointer
        switch config.attention {
        case .none:
            return
        case .dot, .general:
            // z_b (n × len) = h_b (n × H) · K_b (len × H)ᵀ, rows strided by B in time-major order.
            for b in 0..<B {
                BLAS.sgemm(transB: true, m: n, n: m.lengths[b], k: H, a: query + (r0 + b) * H, lda: B * H,
                           b: m.keys + b * kw, ldb: B * kw, beta: 0, c: a + (r0 + b) * S, ldc: B * S)
            }
        case .additive:
            let q = ws.query.pointer + r0 * H
            BLAS.sgemm(transB: true, m: n * B, n: H, k: H, a: query + r0 * H, lda: H,
                       b: arena.parameters(queryWeight!), ldb: H, beta: 0, c: q, ldc: H)
            let v = UnsafePointer(arena.parameters(vWeight!))
            // Per row: U (len × H) = tanh(q + k_s) in one pass, then z = U·v as one product.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: S * H) { buffer in
                let u = buffer.baseAddress!
                for r in r0..<(r0 + n * B) {
                    let b = r % B, len = m.lengths[b]
                    additiveBlock(u, query: ws.query.pointer + r * H, memory: m, row: b)
                    BLAS.sgemm(m: len, n: 1, k: H, a: u, lda: H, b: v, ldb: 1, beta: 0, c: a + r * S, ldc: 1)
                }
            }
        }
        // Masked softmax over each row's valid source steps.
        for r in r0..<(r0 + n * B) {
            let len = m.lengths[r % B], row = a + r * S
            let top = RowKernels.maximum(row, count: len)
            for s in 0..<len { row[s] -= top }
            Activations.exp(row, row, count: len)
            let inverse = Float(1 / RowKernels.sum(row, count: len))
            for s in 0..<len { row[s] *= inverse }
            (row + len).update(repeating: 0, count: S - len)
        }
        // c_b (n × D) = a_b (n × len) · E_b (len × D) into [c; h]; then h.
        let concat = ws.concat.pointer
        for b in 0..<B {
            BLAS.sgemm(m: n, n: D, k: m.lengths[b], a: a + (r0 + b) * S, lda: B * S, b: m.values + b * D, ldb: B * D,
                       beta: 0, c: concat + (r0 + b) * C, ldc: B * C)
        }
        for r in r0..<(r0 + n * B) { (concat + r * C + D).update(from: query + r * H, count: H) }
    }

    /// Attention backward for decoder steps [t0, t0 + n) from `dConcat` (rows, C): writes dTop (rows,
    /// H) (the h part plus the score path; additive leaves ∂q in `dQuery` for the caller), adds into
    /// dMemory (S, B, D) and dKeys (S, B, H) (dot: the keys are the values, so into dMemory), and
    /// into the gradient of v (additive).
    func attentionBackward(_ ws: DecoderHeadWorkspace, firstStep t0: Int, steps n: Int, query: UnsafePointer<Float>,
                           memory m: AttentionMemory) {
        let B = m.batch, S = m.steps, H = config.hiddenSize, D = config.encoderWidth, C = D + H
        let r0 = t0 * B, kw = m.keyWidth
        let a = UnsafePointer(ws.weights.pointer), dA = dWeights.pointer, dC = dConcat.pointer
        let dTopRows = dTop.pointer
        for r in r0..<(r0 + n * B) { (dTopRows + r * H).update(from: dC + r * C + D, count: H) }
        for b in 0..<B {
            let len = m.lengths[b]
            // ∂a_b (n × len) = ∂c_b (n × D) · E_bᵀ;  ∂E_b (len × D) += a_bᵀ · ∂c_b.
            BLAS.sgemm(transB: true, m: n, n: len, k: D, a: dC + (r0 + b) * C, lda: B * C, b: m.values + b * D,
                       ldb: B * D, beta: 0, c: dA + (r0 + b) * S, ldc: B * S)
            BLAS.sgemm(transA: true, m: len, n: D, k: n, a: a + (r0 + b) * S, lda: B * S, b: dC + (r0 + b) * C,
                       ldb: B * C, beta: 1, c: dMemory.pointer + b * D, ldc: B * D)
        }
        // Softmax backward in place: ∂z = a ⊙ (∂a − Σ a ∂a); masked steps keep ∂z = 0 (unused).
        for r in r0..<(r0 + n * B) {
            let len = m.lengths[r % B], ar = a + r * S, dr = dA + r * S
            var inner: Float = 0
            for s in 0..<len { inner += ar[s] * dr[s] }
            for s in 0..<len { dr[s] = ar[s] * (dr[s] - inner) }
        }
        switch config.attention {
        case .none:
            return
        case .dot, .general:
            let dK = config.attention == .dot ? dMemory.pointer : dKeys.pointer
            for b in 0..<B {
                let len = m.lengths[b]
                BLAS.sgemm(m: n, n: H, k: len, a: dA + (r0 + b) * S, lda: B * S, b: m.keys + b * kw, ldb: B * kw,
                           beta: 1, c: dTopRows + (r0 + b) * H, ldc: B * H)
                BLAS.sgemm(transA: true, m: len, n: H, k: n, a: dA + (r0 + b) * S, lda: B * S,
                           b: query + (r0 + b) * H, ldb: B * H, beta: 1, c: dK + b * kw, ldc: B * kw)
            }
        case .additive:
            let v = UnsafePointer(arena.parameters(vWeight!)), dv = arena.gradients(vWeight!)
            let dQ = dQuery.pointer, dK = dKeys.pointer
            dQ.advanced(by: r0 * H).update(repeating: 0, count: n * B * H)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: S * H) { buffer in
                let u = buffer.baseAddress!
                for r in r0..<(r0 + n * B) {
                    let b = r % B, len = m.lengths[b], dz = dA + r * S
                    additiveBlock(u, query: ws.query.pointer + r * H, memory: m, row: b)
                    // ∂v += Uᵀ·∂z; then U becomes G = ∂z vᵀ ⊙ (1 − U²).
                    BLAS.sgemm(transA: true, m: H, n: 1, k: len, a: u, lda: H, b: dz, ldb: 1, beta: 1, c: dv, ldc: 1)
                    for s in 0..<len {
                        let row = u + s * H, g = dz[s]
                        for j in 0..<H { row[j] = g * v[j] * (1 - row[j] * row[j]) }
                        RowKernels.add(dK + (s * B + b) * kw, row, count: H)
                    }
                    RowKernels.accumulateColumnSums(dQ + r * H, u, rows: len, cols: H)
                }
            }
        }
    }

    /// u (len, H) = tanh(q + k_s) for s < len of row `b` of the memory (additive attention).
    private func additiveBlock(_ u: UnsafeMutablePointer<Float>, query q: UnsafePointer<Float>, memory m: AttentionMemory,
                               row b: Int) {
        let H = config.hiddenSize, len = m.lengths[b]
        for s in 0..<len {
            let k = m.keys + (s * m.batch + b) * m.keyWidth, row = u + s * H
            for j in 0..<H { row[j] = q[j] + k[j] }
        }
        Activations.tanh(u, u, count: len * H)
    }

    /// After all steps' attention backward: the key projection's weight gradient and its input
    /// gradient (one GEMM each over all S·B source rows), and for additive W_q's gradient over all
    /// `rows` decoder rows (plus dTop += ∂q·W_q unless the step path did that per step).
    func finishAttentionBackward(memory m: AttentionMemory, top: UnsafePointer<Float>, rows: Int, dTopDone: Bool) {
        let H = config.hiddenSize, D = config.encoderWidth, sourceRows = m.steps * m.batch
        guard let w = attentionWeight ?? keyWeight else { return }
        BLAS.sgemm(transA: true, m: H, n: D, k: sourceRows, a: dKeys.pointer, lda: H, b: m.values, ldb: D, beta: 1,
                   c: arena.gradients(w), ldc: D)
        BLAS.sgemm(m: sourceRows, n: D, k: H, a: dKeys.pointer, lda: H, b: arena.parameters(w), ldb: D, beta: 1,
                   c: dMemory.pointer, ldc: D)
        guard let queryWeight else { return }
        BLAS.sgemm(transA: true, m: H, n: H, k: rows, a: dQuery.pointer, lda: H, b: top, ldb: H, beta: 1,
                   c: arena.gradients(queryWeight), ldc: H)
        if !dTopDone {
            BLAS.sgemm(m: rows, n: H, k: H, a: dQuery.pointer, lda: H, b: arena.parameters(queryWeight), ldb: H,
                       beta: 1, c: dTop.pointer, ldc: H)
        }
    }
}
