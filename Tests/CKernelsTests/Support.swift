// Shared helpers for the CKernels tests: the instruction-set paths this CPU can run, a seeded
// random generator, and thin Swift wrappers over one path's C function pointers.
import CKernels

/// Paths this CPU can run (generic always; AVX2 and AVX-512 when present).
let availablePaths: [Int32] = [UK_ISA_GENERIC, UK_ISA_AVX2, UK_ISA_AVX512]
    .map { Int32($0) }
    .filter { uk_kernels_for_isa($0) != nil }

/// Name of a path, for failure messages.
func pathName(_ isa: Int32) -> String {
    guard let table = uk_kernels_for_isa(isa) else { return "unavailable(\(isa))" }
    return String(cString: table.pointee.name)
}

/// SplitMix64: small, seeded, reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Which activation of a path to call.
enum Activation: String, CaseIterable, Sendable {
    case exp, sigmoid, tanh
}

/// Runs one activation of path `isa` out of place.
func apply(_ act: Activation, isa: Int32, _ xs: [Float]) -> [Float] {
    var ys = [Float](repeating: .nan, count: xs.count)
    apply(act, isa: isa, x: xs, into: &ys)
    return ys
}

/// Runs one activation of path `isa` on the first `x.count` elements of `ys`.
func apply(_ act: Activation, isa: Int32, x: [Float], into ys: inout [Float]) {
    guard let table = uk_kernels_for_isa(isa)?.pointee else { return }
    precondition(ys.count >= x.count)
    switch act {
    case .exp: table.exp_(&ys, x, x.count)
    case .sigmoid: table.sigmoid(&ys, x, x.count)
    case .tanh: table.tanh_(&ys, x, x.count)
    }
}

/// Runs one activation of path `isa` in place (y == x).
func applyInPlace(_ act: Activation, isa: Int32, _ xs: inout [Float]) {
    guard let table = uk_kernels_for_isa(isa)?.pointee else { return }
    let n = xs.count
    xs.withUnsafeMutableBufferPointer { buf in
        guard let p = buf.baseAddress else { return }
        switch act {
        case .exp: table.exp_(p, p, n)
        case .sigmoid: table.sigmoid(p, p, n)
        case .tanh: table.tanh_(p, p, n)
        }
    }
}
