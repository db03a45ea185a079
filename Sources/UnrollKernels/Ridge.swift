// Closed-form linear readouts (Deep Learning §10.8, echo state networks; Lukoševičius 2012 §4.1):
// the normal equations of ridge regression, accumulated in Double, and their solve by Cholesky
// through LAPACK (OpenBLAS's dpotrf/dpotrs). `ExactSum` adds Double partial sums exactly, so a sum
// over pieces computed on different ranks is the same bits in any order and at any world size.
//
// Letters: N rows, F features (columns of Φ), O outputs (columns of Y).
import CCBLAS

/// An exact accumulator of Double values for n entries: each value is cut into K = 10 limbs of 32
/// bits on the fixed grid 2⁻¹⁶⁰ … 2¹⁶⁰, each limb an integer held in a Double. Integer sums below
/// 2⁵³ are exact in Double, and carries keep every limb below 2³³ in magnitude, so adding values —
/// or whole accumulators, e.g. with a Double allreduce over up to 2¹⁹ ranks — never rounds: the
/// total depends only on the multiset of values added, never on their order or grouping. Only
/// the part of a value below 2⁻¹⁶⁰ is rounded off (to nearest, per value), before any sum. After
/// `normalize()` the limbs are canonical (lower limbs in [0, 2³²)), so equal sums have equal limbs.
public struct ExactSum {
    /// Limbs per entry.
    public static let limbs = 10
    /// Exponent of the lowest limb's unit.
    static let lowExponent = -160
    /// 2^(lowExponent + 32k), k in 0..<limbs.
    static let scales: [Double] = (0..<limbs).map { Double(sign: .plus, exponent: lowExponent + 32 * $0, significand: 1) }
    static let base = 4_294_967_296.0   // 2³²
    /// The largest magnitude an entry may reach: 2¹⁵⁹.
    public static let limit = Double(sign: .plus, exponent: lowExponent + 32 * limbs - 1, significand: 1)

    /// Number of entries.
    public let count: Int
    /// (count, limbs) integers, lowest limb first.
    public var storage: [Double]

    /// n zero entries.
    public init(count n: Int) {
        count = n
        storage = [Double](repeating: 0, count: n * Self.limbs)
    }

    /// Adds `value` to entry `i`. - Precondition: value finite, |value| < `limit`.
    public mutating func add(_ value: Double, at i: Int) {
        withUnsafePointer(to: value) { add($0, count: 1, at: i) }
    }

    /// Adds values[0..<n] to entries i..<i+n. - Precondition: every value finite, |value| < `limit`.
    public mutating func add(_ values: UnsafePointer<Double>, count n: Int, at i: Int) {
        precondition(i >= 0 && i + n <= count, "ExactSum: entries \(i)..<\(i + n) of \(count)")
        let units = Self.scales, K = Self.limbs, limit = Self.limit
        units.withUnsafeBufferPointer { units in
            storage.withUnsafeMutableBufferPointer { s in
                for e in 0..<n {
                    var v = values[e]
                    precondition(v.isFinite && abs(v) < limit, "ExactSum: \(v) outside the grid")
                    if v == 0 { continue }
                    let limb = s.baseAddress! + (i + e) * K
                    // From the top limb down: the truncated quotient is v's bits at or above the
                    // limb's unit, so v − q·unit is exact (it keeps a subset of v's bits).
                    var k = K - 1
                    while k >= 1 {
                        let q = (v / units[k]).rounded(.towardZero)
                        if q != 0 {
                            v -= q * units[k]
                            limb[k] += q
                        }
                        k -= 1
                    }
                    limb[0] += (v / units[0]).rounded(.toNearestOrEven)
                    Self.carry(limb)
                }
            }
        }
    }

    /// Adds `other` entry by entry (exact).
    public mutating func add(_ other: ExactSum) {
        precondition(other.count == count, "ExactSum: \(other.count) entries added to \(count)")
        storage.withUnsafeMutableBufferPointer { s in
            other.storage.withUnsafeBufferPointer { o in
                for j in 0..<s.count { s[j] += o[j] }
                for i in 0..<count { Self.carry(s.baseAddress! + i * Self.limbs) }
            }
        }
    }

    /// Moves whole multiples of 2³² of each limb into the next one (exact, rounding the quotient
    /// down), so that every limb but the top one is in [0, 2³²): the canonical base-2³² digits of
    /// the entry's integer, one representation per value — so `value(at:)` is a function of the
    /// exact sum alone.
    public mutating func normalize() {
        storage.withUnsafeMutableBufferPointer { s in
            for i in 0..<count { Self.carry(s.baseAddress! + i * Self.limbs) }
        }
    }

    @inline(__always)
    static func carry(_ limb: UnsafeMutablePointer<Double>) {
        for k in 0..<(limbs - 1) {
            let c = (limb[k] / base).rounded(.down)
            if c != 0 {
                limb[k] -= c * base
                limb[k + 1] += c
            }
        }
    }

    /// Entry `i` as a Double: the limbs added from the top down (one function of the limbs, so
    /// equal limbs give equal bits).
    public func value(at i: Int) -> Double {
        var total = 0.0
        for k in stride(from: Self.limbs - 1, through: 0, by: -1) { total += storage[i * Self.limbs + k] * Self.scales[k] }
        return total
    }
}

/// A ridge system that cannot be solved.
public struct RidgeError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

/// Normal equations and their solve.
public enum Ridge {
    /// gram (F, F) += Φᵀ Φ (both triangles, exactly symmetric) and cross (F, O) += Φᵀ Y, for
    /// Φ (N, F) and Y (N, O) row-major, in Double through BLAS (dsyrk, dgemm).
    public static func accumulate(gram: UnsafeMutablePointer<Double>, cross: UnsafeMutablePointer<Double>,
                                  phi: UnsafePointer<Double>, y: UnsafePointer<Double>, rows n: Int, features f: Int,
                                  outputs o: Int) {
        precondition(n >= 0 && f >= 1 && o >= 1, "Ridge.accumulate: bad sizes")
        guard n > 0 else { return }
        // Lower triangle of ΦᵀΦ (row-major), then mirrored so that both halves are the same bits.
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(f), Int32(n), 1, phi, Int32(f), 1, gram, Int32(f))
        for i in 0..<f { for j in (i + 1)..<max(f, i + 1) { gram[i * f + j] = gram[j * f + i] } }
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(f), Int32(o), Int32(n), 1, phi, Int32(f),
                    y, Int32(o), 1, cross, Int32(o))
    }

    /// Solves (gram + λI) W = cross for W (F, O) by Cholesky (LAPACK dpotrf + dpotrs).
    /// - gram: (F, F) symmetric, row-major (only the lower triangle is read); cross (F, O) row-major.
    /// - Throws: `RidgeError` when the system is not positive definite, or so close to singular
    ///   that the solution would be noise: a Cholesky pivot l_jj² ≤ F·ε·max_i a_ii (ε = 2⁻⁵²).
    /// - Returns: W (F, O) row-major.
    public static func solve(gram: [Double], cross: [Double], features f: Int, outputs o: Int,
                             lambda: Double) throws -> [Double] {
        precondition(gram.count == f * f && cross.count == f * o && f >= 1 && o >= 1, "Ridge.solve: bad sizes")
        precondition(lambda >= 0 && lambda.isFinite, "Ridge.solve: λ = \(lambda)")
        // Row-major lower triangle = column-major upper triangle: factor with uplo 'U' in LAPACK's
        // column-major view of the same array, which reads exactly the entries we hold.
        var a = gram
        var scale = 0.0
        for i in 0..<f {
            a[i * f + i] += lambda
            scale = max(scale, a[i * f + i])
        }
        // B column-major (F × O): column j is output j.
        var b = [Double](repeating: 0, count: f * o)
        for i in 0..<f { for j in 0..<o { b[j * f + i] = cross[i * o + j] } }
        var n = Int32(f), nrhs = Int32(o), info: Int32 = 0
        var uplo = Int8(UInt8(ascii: "U"))
        a.withUnsafeMutableBufferPointer { dpotrf_(&uplo, &n, $0.baseAddress, &n, &info) }
        let what = "the ridge system (HᵀH + λI, λ = \(lambda)) of \(f) features"
        if info > 0 {
            throw RidgeError(message: "\(what) is singular (not positive definite at feature \(info - 1))")
        }
        precondition(info == 0, "dpotrf_: argument \(-info) invalid")
        let threshold = Double(f) * Double.ulpOfOne * scale
        for j in 0..<f where !(a[j * f + j] * a[j * f + j] > threshold) {
            throw RidgeError(message: "\(what) is singular to working precision (Cholesky pivot \(j): "
                             + "\(a[j * f + j] * a[j * f + j]) ≤ \(threshold))")
        }
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { dpotrs_(&uplo, &n, &nrhs, ap.baseAddress, &n, $0.baseAddress, &n, &info) }
        }
        precondition(info == 0, "dpotrs_: argument \(-info) invalid")
        var w = [Double](repeating: 0, count: f * o)
        for i in 0..<f { for j in 0..<o { w[i * o + j] = b[j * f + i] } }
        return w
    }
}
