// Losses of sequence heads, forward next to backward: softmax cross-entropy over `targetDim`
// labels per row and squared error over `targetDim` values per row, with a row mask. Losses are
// summed in Double (log-sum-exp, stable for any logit range); gradients are written in the same
// pass. Rows here are sequences (pooled heads) or (step, sequence) pairs (per-step heads).
//
// Letters: N rows, K targets per row (targetDim), C classes.
#if canImport(Glibc)
import Glibc
#endif

/// Summed losses over rows of head outputs, with their gradients.
public enum SequenceLoss {
    /// Softmax cross-entropy: each row holds K labels, each a softmax over C logits.
    /// - logits: (N, K·C) row-major; targets: (N, K) labels in 0..<C, or −1 for a label that does
    ///   not count (zero gradient, no loss).
    /// - rowMask: (N), 0 = row ignored (no loss, zero gradient, not counted); nil = every row counts.
    /// - gradScale: multiplies every gradient (1 gives the gradient of the loss sum).
    /// - dLogits: if non-nil, (N, K·C) out: gradScale · (softmax − onehot) per label, zero for
    ///   ignored rows and labels. May alias `logits` (each label's logits are read before written).
    /// - Returns: Σ over counted rows of Σ over their labels of −log p(label) (Double), and the
    ///   number of counted rows.
    public static func crossEntropy(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                                    rowMask: UnsafePointer<UInt8>?, rows: Int, targetDim: Int, classes: Int,
                                    gradScale: Float, dLogits: UnsafeMutablePointer<Float>?) -> (lossSum: Double, count: Int) {
        precondition(rows >= 0 && targetDim >= 1 && classes >= 1, "cross-entropy: bad sizes")
        let width = targetDim * classes
        var lossSum = 0.0, count = 0
        for n in 0..<rows {
            if let rowMask, rowMask[n] == 0 {
                dLogits?.advanced(by: n * width).update(repeating: 0, count: width)
                continue
            }
            count += 1
            let rowTargets = targets + n * targetDim
            for k in 0..<targetDim where rowTargets[k] < 0 {
                precondition(rowTargets[k] == -1, "cross-entropy: target \(rowTargets[k]) outside 0..<\(classes)")
            }
            if let dLogits {
                // One softmax row per label: the (N·K, C) view of the same memory.
                let r = SoftmaxCrossEntropy.forwardBackward(dLogits: dLogits + n * width, logits: logits + n * width,
                                                            targets: rowTargets, rows: targetDim, vocab: classes,
                                                            gradScale: gradScale)
                lossSum += r.lossSum
            } else {
                for k in 0..<targetDim {
                    let target = Int(rowTargets[k])
                    if target < 0 { continue }
                    precondition(target < classes, "cross-entropy: target \(target) outside 0..<\(classes)")
                    lossSum += logSumExp(logits + n * width + k * classes, count: classes)
                        - Double(logits[n * width + k * classes + target])
                }
            }
        }
        return (lossSum, count)
    }

    /// Squared error: each row holds K predicted values.
    /// - predictions, targets: (N, K). rowMask, gradScale: as `crossEntropy`.
    /// - dPredictions: if non-nil, (N, K) out: gradScale · 2 (prediction − target), zero for ignored
    ///   rows. May alias `predictions` (elementwise).
    /// - Returns: Σ over counted rows of Σ_k (prediction − target)² (Double), and the number of
    ///   counted rows.
    public static func squaredError(predictions: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                                    rowMask: UnsafePointer<UInt8>?, rows: Int, targetDim: Int, gradScale: Float,
                                    dPredictions: UnsafeMutablePointer<Float>?) -> (lossSum: Double, count: Int) {
        precondition(rows >= 0 && targetDim >= 1, "squared error: bad sizes")
        var lossSum = 0.0, count = 0
        for n in 0..<rows {
            let offset = n * targetDim
            if let rowMask, rowMask[n] == 0 {
                dPredictions?.advanced(by: offset).update(repeating: 0, count: targetDim)
                continue
            }
            count += 1
            for k in 0..<targetDim {
                let e = Double(predictions[offset + k]) - Double(targets[offset + k])
                lossSum += e * e
                dPredictions?[offset + k] = Float(2 * e) * gradScale
            }
        }
        return (lossSum, count)
    }

    /// log Σ exp(x) over `count` logits in Double, shifted by the maximum.
    static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        let m = RowKernels.maximum(x, count: count)
        var s = 0.0
        for j in 0..<count { s += exp(Double(x[j]) - Double(m)) }
        return Double(m) + log(s)
    }
}
