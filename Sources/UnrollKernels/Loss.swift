// Embedding lookup, bias broadcasting and the fused softmax + cross-entropy of the readout.
// Cross-entropy sums the loss in Double (log-sum-exp, stable for any logit range) and writes
// the gradient softmax − onehot in the same pass; target −1 marks an ignored (padded) position.
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Token embedding lookup and its scatter-add backward.
public enum EmbeddingKernels {
    /// out (N, E) = table[tokens[n]] for n in 0..<N; table (V, E).
    @inlinable
    public static func forward(_ out: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>,
                               tokens: UnsafePointer<Int32>, count: Int, vocab: Int, width: Int) {
        for n in 0..<count {
            let t = Int(tokens[n])
            precondition(t >= 0 && t < vocab, "embedding: token id \(t) outside 0..<\(vocab)")
            (out + n * width).update(from: table + t * width, count: width)
        }
    }

    /// dTable[tokens[n]] += dOut[n] (scatter-add; repeated tokens accumulate).
    @inlinable
    public static func backward(dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                tokens: UnsafePointer<Int32>, count: Int, width: Int) {
        for n in 0..<count {
            let row = dTable + Int(tokens[n]) * width, d = dOut + n * width
            for j in 0..<width { row[j] += d[j] }
        }
    }
}

/// Row broadcasts and reductions used around the GEMMs.
public enum RowKernels {
    /// Every row of x (rows, cols) = bias (cols) [+ bias2 (cols)].
    @inlinable
    public static func broadcastRows(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                                     bias2: UnsafePointer<Float>? = nil, rows: Int, cols: Int) {
        guard rows > 0 else { return }
        if let bias2 {
            for j in 0..<cols { x[j] = bias[j] + bias2[j] }
        } else {
            x.update(from: bias, count: cols)
        }
        for r in 1..<max(rows, 1) { (x + r * cols).update(from: x, count: cols) }
    }

    /// sums (cols) += Σ_rows x (rows, cols): bias gradients over all T·B rows.
    @inlinable
    public static func accumulateColumnSums(_ sums: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                            rows: Int, cols: Int) {
        uk_add_column_sums(sums, x, Int32(rows), Int32(cols))
    }

    /// y += x elementwise.
    @inlinable
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }

    /// Σ x² in Double (16 float lanes per block of 4096, blocks added in double; CKernels).
    @inlinable
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        uk_sum_squares(x, count)
    }

    /// Σ x in Double (same blocking as `sumOfSquares`).
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        uk_sum(x, count)
    }

    /// max over x (−∞ for an empty range).
    @inlinable
    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        uk_max(x, count)
    }

    /// x *= s.
    @inlinable
    public static func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
        for i in 0..<count { x[i] *= s }
    }
}

/// Softmax + cross-entropy over rows of logits.
public enum SoftmaxCrossEntropy {
    /// Loss and gradient in one pass.
    /// - dLogits: (N, V) out (may alias `logits`): gradScale · (softmax(row) − onehot(target)); zero
    ///   for ignored rows.
    /// - logits: (N, V); targets: (N) with −1 = ignored.
    /// - Returns: Σ −log softmax(row)[target] in Double over non-ignored rows, and their count.
    @inlinable
    /// - dBias: if given, (V) += Σ rows of dLogits (the readout bias gradient, fused here so the
    ///   (N, V) gradient is not read again).
    public static func forwardBackward(dLogits: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                                       targets: UnsafePointer<Int32>, rows: Int, vocab: Int,
                                       gradScale: Float,
                                       dBias: UnsafeMutablePointer<Float>? = nil) -> (lossSum: Double, count: Int) {
        var lossSum = 0.0, count = 0
        for n in 0..<rows {
            let x = logits + n * vocab, d = dLogits + n * vocab
            let target = Int(targets[n])
            if target < 0 {
                d.update(repeating: 0, count: vocab)
                continue
            }
            precondition(target < vocab, "cross-entropy: target \(target) outside 0..<\(vocab)")
            let xTarget = x[target]
            let m = RowKernels.maximum(x, count: vocab)
            for j in 0..<vocab { d[j] = x[j] - m }
            Activations.exp(d, d, count: vocab)
            let s = RowKernels.sum(d, count: vocab)
            lossSum += Double(m) + log(s) - Double(xTarget)
            count += 1
            let k = Float(Double(gradScale) / s)
            d[target] -= gradScale / k
            if let dBias {
                for j in 0..<vocab {
                    d[j] *= k
                    dBias[j] += d[j]
                }
            } else {
                for j in 0..<vocab { d[j] *= k }
            }
        }
        return (lossSum, count)
    }

    /// Loss only (evaluation); `scratch` is (V) workspace.
    @inlinable
    public static func loss(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, rows: Int,
                            vocab: Int, scratch: UnsafeMutablePointer<Float>) -> (lossSum: Double, count: Int) {
        var lossSum = 0.0, count = 0
        for n in 0..<rows {
            let target = Int(targets[n])
            if target < 0 { continue }
            precondition(target < vocab, "cross-entropy: target \(target) outside 0..<\(vocab)")
            let x = logits + n * vocab
            let m = RowKernels.maximum(x, count: vocab)
            for j in 0..<vocab { scratch[j] = x[j] - m }
            Activations.exp(scratch, scratch, count: vocab)
            let s = RowKernels.sum(scratch, count: vocab)
            lossSum += Double(m) + log(s) - Double(x[target])
            count += 1
        }
        return (lossSum, count)
    }
}
