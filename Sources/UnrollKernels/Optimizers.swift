// Parameter updates over the flat arena (one loop over all parameters) and gradient clipping.
// Each update reads the gradient times `gradScale` — the 1/token-count average and the clipping
// factor folded into one multiplier, so the gradient buffer is not rewritten before the update —
// and updates parameters and moments in place.
#if canImport(Glibc)
import Glibc
#endif

/// Optimizer update rules on flat buffers of equal length.
public enum OptimizerKernels {
    /// Plain SGD: θ −= lr·g.
    @inlinable
    public static func sgd(_ p: UnsafeMutablePointer<Float>, grad g: UnsafePointer<Float>, count: Int, lr: Float,
                           weightDecay: Float = 0, gradScale: Float = 1) {
        if weightDecay == 0 {
            let step = lr * gradScale
            for i in 0..<count { p[i] -= step * g[i] }
        } else {
            for i in 0..<count { p[i] -= lr * (gradScale * g[i] + weightDecay * p[i]) }
        }
    }

    /// SGD with momentum (PyTorch's form): v = μ·v + g; θ −= lr·v, or with Nesterov θ −= lr·(g + μ·v).
    @inlinable
    public static func momentum(_ p: UnsafeMutablePointer<Float>, grad g: UnsafePointer<Float>,
                                velocity v: UnsafeMutablePointer<Float>, count: Int, lr: Float, momentum mu: Float,
                                nesterov: Bool, weightDecay: Float = 0, gradScale: Float = 1) {
        for i in 0..<count {
            let gi = gradScale * g[i] + weightDecay * p[i]
            v[i] = mu * v[i] + gi
            p[i] -= lr * (nesterov ? gi + mu * v[i] : v[i])
        }
    }

    /// Adam (Kingma & Ba 2015) at 1-based step `t`; with `decoupledWeightDecay` it is AdamW
    /// (Loshchilov & Hutter 2019): θ −= lr·λ·θ before the Adam step. Otherwise λ adds to g (L2).
    @inlinable
    public static func adam(_ p: UnsafeMutablePointer<Float>, grad g: UnsafePointer<Float>,
                            m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                            lr: Float, beta1: Float, beta2: Float, epsilon: Float, step t: Int,
                            weightDecay: Float, decoupledWeightDecay: Bool, gradScale: Float = 1) {
        let c1 = Float(1 - pow(Double(beta1), Double(t))), c2 = Float(1 - pow(Double(beta2), Double(t)))
        let stepSize = lr / c1, rootC2 = c2.squareRoot()
        for i in 0..<count {
            var gi = gradScale * g[i]
            if decoupledWeightDecay { p[i] -= lr * weightDecay * p[i] } else { gi += weightDecay * p[i] }
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            p[i] -= stepSize * m[i] / (v[i].squareRoot() / rootC2 + epsilon)
        }
    }

    /// Adagrad (Duchi et al. 2011): s += g²; θ −= lr·g / (√s + ε).
    @inlinable
    public static func adagrad(_ p: UnsafeMutablePointer<Float>, grad g: UnsafePointer<Float>,
                               sumSquares s: UnsafeMutablePointer<Float>, count: Int, lr: Float, epsilon: Float,
                               weightDecay: Float = 0, gradScale: Float = 1) {
        for i in 0..<count {
            let gi = gradScale * g[i] + weightDecay * p[i]
            s[i] += gi * gi
            p[i] -= lr * gi / (s[i].squareRoot() + epsilon)
        }
    }
}

/// Gradient clipping (Pascanu et al. 2013; Deep Learning eq. 10.48–10.49).
public enum Clipping {
    /// ‖g‖₂ over the whole buffer, in Double.
    @inlinable
    public static func globalNorm(_ g: UnsafePointer<Float>, count: Int) -> Double {
        RowKernels.sumOfSquares(g, count: count).squareRoot()
    }

    /// Scales g by clip/‖g‖ when ‖g‖ > clip; returns the norm before clipping and whether it clipped.
    @inlinable @discardableResult
    public static func clipByGlobalNorm(_ g: UnsafeMutablePointer<Float>, count: Int,
                                        maxNorm: Double) -> (norm: Double, clipped: Bool) {
        let norm = globalNorm(g, count: count)
        guard norm.isFinite, norm > maxNorm else { return (norm, false) }
        RowKernels.scale(g, by: Float(maxNorm / norm), count: count)
        return (norm, true)
    }

    /// Element-wise clipping to [−c, c] (Mikolov 2012).
    @inlinable
    public static func clipElementwise(_ g: UnsafeMutablePointer<Float>, count: Int, limit c: Float) {
        for i in 0..<count { g[i] = min(max(g[i], -c), c) }
    }
}
