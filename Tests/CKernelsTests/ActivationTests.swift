// Checks uk_exp / uk_sigmoid / uk_tanh on every path this CPU can run against double-precision
// Foundation references: max relative error ≤ 2e-6 wherever the float result is normal, a couple
// of subnormal units below that, correct saturation, symmetry, special values and aliasing.
import CKernels
import Foundation
import Testing

/// The accuracy contract in CKernels.h.
private let maxRelativeError = 2e-6

/// Dense grid where the functions vary, every binade of the float range at several mantissas,
/// random bit patterns over all finite floats, random moderate values, and named extremes.
private let activationInputs: [Float] = {
    var xs: [Float] = []
    for v in stride(from: -110.0, through: 110.0, by: 0.00731) { xs.append(Float(v)) }
    for e in -149...127 {
        for m in [1.0, 1.1, 1.37, 1.5, 1.73, 1.999] {
            let v = Float(m * pow(2.0, Double(e)))
            xs += [v, -v]
        }
    }
    var rng = SplitMix64(seed: 0xAC71)
    while xs.count < 120_000 {
        let v = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
        if v.isFinite { xs.append(v) }
    }
    for _ in 0..<50_000 { xs.append(Float.random(in: -30...30, using: &rng)) }
    let extremes: [Float] = [
        0, Float.leastNonzeroMagnitude, Float.leastNormalMagnitude, 1e-30, 1e-10, 1e-4, 0.5, 0.625,
        1, 9, 9.02, 9.5, 10, 20, 87.3, 88, 88.72, 88.73, 89, 100, 103.9, 104, 1e30,
        Float.greatestFiniteMagnitude,
    ]
    for v in extremes { xs += [v, -v] }
    return xs
}()

private func reference(_ act: Activation, _ x: Double) -> Double {
    switch act {
    case .exp: return Foundation.exp(x)
    case .sigmoid: return 1 / (1 + Foundation.exp(-x))
    case .tanh: return Foundation.tanh(x)
    }
}

/// Nil when `y` honours the contract for reference `r`, else why not.
private func violation(_ y: Float, _ r: Double) -> String? {
    let fmax = Double(Float.greatestFiniteMagnitude)
    if r.isNaN { return y.isNaN ? nil : "expected NaN" }
    if abs(r) >= fmax * (1 + 1e-6) {
        return y.isInfinite && (y > 0) == (r > 0) ? nil : "expected ±Inf"
    }
    if abs(r) < Double(Float.leastNormalMagnitude) {
        // Subnormal results: within two units of the smallest subnormal.
        let err = abs(Double(y) - r)
        return err <= 2 * Double(Float.leastNonzeroMagnitude) ? nil : "subnormal abs error \(err)"
    }
    if abs(r) > fmax * (1 - 1e-6) && y.isInfinite { return nil }  // rounding boundary of FLT_MAX
    let rel = abs(Double(y) - r) / abs(r)
    return rel <= maxRelativeError ? nil : "relative error \(rel)"
}

@Suite("Activations")
struct ActivationTests {
    @Test("exp, sigmoid and tanh match double-precision libm over the float range",
          arguments: availablePaths, Activation.allCases)
    func matchesDoubleReference(isa: Int32, act: Activation) {
        let ys = apply(act, isa: isa, activationInputs)
        var failures: [String] = []
        var worst = 0.0
        for (x, y) in zip(activationInputs, ys) {
            let r = reference(act, Double(x))
            if let why = violation(y, r) {
                failures.append("\(act)(\(x)) = \(y), want \(r): \(why)")
            } else if abs(r) >= Double(Float.leastNormalMagnitude), y.isFinite {
                worst = max(worst, abs(Double(y) - r) / abs(r))
            }
        }
        #expect(failures.isEmpty, "\(pathName(isa)) \(failures.count) failures, e.g. \(failures.prefix(5))")
        #expect(worst <= maxRelativeError, "\(pathName(isa)) \(act) worst relative error \(worst)")
    }

    @Test("sigmoid and tanh stay finite and inside their ranges for every finite input",
          arguments: availablePaths)
    func saturatesWithoutNaN(isa: Int32) {
        let xs = activationInputs
        let s = apply(.sigmoid, isa: isa, xs)
        let t = apply(.tanh, isa: isa, xs)
        #expect(s.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
        #expect(t.allSatisfy { $0.isFinite && $0 >= -1 && $0 <= 1 })
    }

    @Test("special values are exact", arguments: availablePaths)
    func specialValues(isa: Int32) {
        let xs: [Float] = [0, -0.0, 10, -10, 20, -20, 100, -100, 1e30, -1e30, .infinity, -.infinity]
        let e = apply(.exp, isa: isa, xs)
        let s = apply(.sigmoid, isa: isa, xs)
        let t = apply(.tanh, isa: isa, xs)
        #expect(e[0] == 1 && e[1] == 1)
        #expect(e[6] == Float(Foundation.exp(100.0)))  // +Inf: overflow rounds to infinity
        #expect(e[7] == Float(Foundation.exp(-100.0)))  // a subnormal, correctly rounded
        #expect(e[8] == .infinity && e[9] == 0 && e[10] == .infinity && e[11] == 0)
        #expect(s[0] == 0.5 && s[1] == 0.5)
        #expect(s[4] == 1 && s[8] == 1 && s[9] == 0 && s[10] == 1 && s[11] == 0)
        #expect(t[0] == 0 && t[0].sign == .plus)
        #expect(t[1] == 0 && t[1].sign == .minus)
        #expect(t[2] == 1 && t[3] == -1 && t[4] == 1 && t[5] == -1)
        #expect(t[8] == 1 && t[9] == -1 && t[10] == 1 && t[11] == -1)
        let tiny: [Float] = [Float.leastNonzeroMagnitude, 1e-20, -1e-20]
        #expect(apply(.tanh, isa: isa, tiny) == tiny)  // tanh(x) = x below sqrt(ulp)
    }

    @Test("NaN in gives NaN out", arguments: availablePaths, Activation.allCases)
    func propagatesNaN(isa: Int32, act: Activation) {
        let xs: [Float] = [1, .nan, -2, -.nan, 3]
        let ys = apply(act, isa: isa, xs)
        #expect(ys[1].isNaN && ys[3].isNaN)
        #expect(!ys[0].isNaN && !ys[2].isNaN && !ys[4].isNaN)
    }

    @Test("tanh is exactly odd and sigmoid(x) + sigmoid(-x) = 1", arguments: availablePaths)
    func symmetries(isa: Int32) {
        let xs = activationInputs.filter { $0 >= 0 }
        let negated = xs.map { -$0 }
        let tp = apply(.tanh, isa: isa, xs)
        let tn = apply(.tanh, isa: isa, negated)
        #expect(zip(tp, tn).allSatisfy { $0.bitPattern == (-$1).bitPattern })
        let sp = apply(.sigmoid, isa: isa, xs)
        let sn = apply(.sigmoid, isa: isa, negated)
        let worst = zip(sp, sn).map { abs(Double($0) + Double($1) - 1) }.max() ?? 0
        #expect(worst <= 1e-6, "\(pathName(isa)) |s(x)+s(-x)-1| up to \(worst)")
    }

    @Test("in place equals out of place, and nothing past n is written",
          arguments: availablePaths, Activation.allCases)
    func aliasingAndTails(isa: Int32, act: Activation) {
        var rng = SplitMix64(seed: 7)
        for n in Array(0...40) + [63, 64, 65, 1000, 1023] {
            let xs = (0..<n).map { _ in Float.random(in: -12...12, using: &rng) }
            let sentinel: Float = 4242
            var ys = [Float](repeating: sentinel, count: n + 20)
            apply(act, isa: isa, x: xs, into: &ys)
            #expect(ys[n...].allSatisfy { $0 == sentinel }, "n=\(n) wrote past the end")
            var inPlace = xs
            applyInPlace(act, isa: isa, &inPlace)
            #expect(inPlace.map(\.bitPattern) == ys[..<n].map(\.bitPattern), "n=\(n)")
        }
    }
}

@Suite("Dispatch", .serialized)
struct DispatchTests {
    @Test("the dispatcher picks the widest path, and forcing a path switches the public entry points")
    func picksWidestAndCanBeForced() throws {
        let widest = try #require(availablePaths.last)
        #expect(uk_active_isa() == widest)
        #expect(uk_kernels_for_isa(Int32(UK_ISA_GENERIC)) != nil)
        #expect(uk_kernels_for_isa(7) == nil)
        #expect(uk_force_isa(7) == -1)
        #expect(uk_active_isa() == widest)
        for isa in availablePaths {
            #expect(uk_force_isa(isa) == 0)
            #expect(uk_active_isa() == isa)
            #expect(String(cString: uk_isa_name()) == pathName(isa))
            var y: [Float] = [0, 0]
            uk_tanh(&y, [0.5, -30], 2)
            #expect(y == apply(.tanh, isa: isa, [0.5, -30]))
        }
        #expect(uk_force_isa(Int32(UK_ISA_AUTO)) == 0)
        #expect(uk_active_isa() == widest)
    }
}
