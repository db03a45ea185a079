// Elementwise activations on contiguous Float buffers and their derivatives expressed through the
// forward outputs (σ' = y(1−y), tanh' = 1−y², relu' = [y>0]), which is what backward passes keep.
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Vector activations over contiguous buffers (AVX-512/AVX2 kernels from CKernels, max relative
/// error ≤ 2e-6). `y` may alias `x` exactly; no other overlap.
public enum Activations {
    /// y = σ(x) = 1 / (1 + e^(−x)).
    @inlinable
    public static func sigmoid(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        uk_sigmoid(y, x, count)
    }

    /// y = tanh(x).
    @inlinable
    public static func tanh(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        uk_tanh(y, x, count)
    }

    /// y = max(x, 0).
    @inlinable
    public static func relu(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = max(x[i], 0) }
    }

    /// y = e^x.
    @inlinable
    public static func exp(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        uk_exp(y, x, count)
    }

    /// dx = dy · σ'(x) given y = σ(x).
    @inlinable
    public static func sigmoidBackward(_ dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                       y: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
    }

    /// dx = dy · tanh'(x) given y = tanh(x).
    @inlinable
    public static func tanhBackward(_ dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                    y: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
    }

    /// dx = dy · relu'(x) given y = relu(x).
    @inlinable
    public static func reluBackward(_ dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                    y: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { dx[i] = y[i] > 0 ? dy[i] : 0 }
    }
}

/// Numerically safe scalar logistic function (no overflow for large |x|).
@inlinable @inline(__always)
public func sigmoidScalar(_ x: Float) -> Float {
    if x >= 0 { return 1 / (1 + expf(-x)) }
    let e = expf(x)
    return e / (1 + e)
}
