// Echo-state reservoirs (`--cell esn`): the power-iteration spectral radius against LAPACK's
// eigenvalues (dgeev), the reservoir scaled to --radius within 1 %, W_hh's density and ranges,
// the same bits for the same seed, and the reservoir run by the leaky layer equal to a plain
// Double recurrence h_t = (1 − α)h_{t−1} + α tanh(W_ih x_t + b_ih + W_hh h_{t−1}).
import CCBLAS
import Testing
@testable import UnrollKernels
@testable import UnrollModels

struct EchoStateTests {
    static func config(hidden: Int, echo: EchoStateConfig, leak: LeakRate? = nil) -> SequenceModelConfig {
        SequenceModelConfig(cell: .esn, vocabSize: 0, inputSize: 3, hiddenSize: hidden, layers: 1, bidirectional: false,
                            outputKind: .values, targetDim: 1, numClasses: 0, leak: leak, echoState: echo)
    }

    /// max |λ| of w (n, n) row-major, by LAPACK's dgeev.
    static func eigenRadius(_ w: UnsafePointer<Float>, size n: Int) -> Double {
        // Column-major Wᵀ has the same eigenvalues as W.
        var a = (0..<(n * n)).map { Double(w[$0]) }
        var wr = [Double](repeating: 0, count: n), wi = [Double](repeating: 0, count: n)
        var nn = Int32(n), one = Int32(1), lwork = Int32(8 * n), info: Int32 = 0
        var work = [Double](repeating: 0, count: 8 * n), vl = [Double](repeating: 0, count: 1), vr = vl
        var no = Int8(UInt8(ascii: "N"))
        dgeev_(&no, &no, &nn, &a, &nn, &wr, &wi, &vl, &one, &vr, &one, &work, &lwork, &info)
        precondition(info == 0, "dgeev_ failed: \(info)")
        return (0..<n).map { (wr[$0] * wr[$0] + wi[$0] * wi[$0]).squareRoot() }.max() ?? 0
    }

    @Test func powerIterationMatchesEigenvaluesOfAKnownMatrix() {
        // A dominant complex pair (rotation scaled by 0.8) beside a real 0.5: ρ = 0.8, and the power
        // iterates rotate instead of converging.
        let n = 3, c = 0.8 * 0.6, s = 0.8 * 0.8
        let w: [Float] = [Float(c), Float(-s), 0, Float(s), Float(c), 0, 0, 0, 0.5]
        let rho = w.withUnsafeBufferPointer { EchoState.spectralRadius($0.baseAddress!, size: n, seed: 1, stream: 2) }
        let exact = w.withUnsafeBufferPointer { Self.eigenRadius($0.baseAddress!, size: n) }
        #expect(abs(exact - 0.8) < 1e-6)
        #expect(abs(rho - exact) < 1e-3 * exact, "power iteration \(rho), dgeev \(exact)")
        // A nilpotent matrix has radius 0.
        let nilpotent: [Float] = [0, 1, 0, 0, 0, 1, 0, 0, 0]
        #expect(nilpotent.withUnsafeBufferPointer { EchoState.spectralRadius($0.baseAddress!, size: 3, seed: 1, stream: 2) } == 0)
    }

    @Test(arguments: [(60, 0.1, 0.9), (100, 0.05, 1.2), (40, 0.5, 0.5)])
    func reservoirHasTheRequestedSpectralRadiusAndDensity(hidden: Int, density: Double, radius: Double) {
        let echo = EchoStateConfig(radius: radius, density: density, inputScale: 0.5, ridge: 0)
        let model = SequenceModel(config: Self.config(hidden: hidden, echo: echo), seed: 11, maxSteps: 4, maxBatch: 2)
        let arena = model.arena
        let whh = arena.parameters(arena.view("rnn.weight_hh_l0"))
        let exact = Self.eigenRadius(whh, size: hidden)
        #expect(abs(exact - radius) < 0.01 * radius, "spectral radius \(exact), asked \(radius)")
        let nonzero = (0..<(hidden * hidden)).filter { whh[$0] != 0 }.count
        let expected = density * Double(hidden * hidden)
        let sigma = (expected * (1 - density)).squareRoot()
        #expect(abs(Double(nonzero) - expected) < 4 * sigma + 1, "\(nonzero) nonzero, expected ≈ \(expected)")
        let wih = arena.parameters(arena.view("rnn.weight_ih_l0")), bih = arena.parameters(arena.view("rnn.bias_ih_l0"))
        #expect((0..<(hidden * 3)).allSatisfy { abs(wih[$0]) <= 0.5 })
        #expect((0..<hidden).allSatisfy { abs(bih[$0]) <= 0.5 })
        let bhh = arena.parameters(arena.view("rnn.bias_hh_l0")), head = arena.parameters(arena.view("head.weight"))
        #expect((0..<hidden).allSatisfy { bhh[$0] == 0 && head[$0] == 0 })
    }

    @Test func theSameSeedGivesTheSameReservoirBits() {
        let echo = EchoStateConfig.default
        let a = SequenceModel(config: Self.config(hidden: 30, echo: echo), seed: 5, maxSteps: 2, maxBatch: 1)
        let b = SequenceModel(config: Self.config(hidden: 30, echo: echo), seed: 5, maxSteps: 2, maxBatch: 1)
        let c = SequenceModel(config: Self.config(hidden: 30, echo: echo), seed: 6, maxSteps: 2, maxBatch: 1)
        #expect(a.arena.parameters.array == b.arena.parameters.array)
        #expect(a.arena.parameters.array != c.arena.parameters.array)
    }

    @Test(arguments: [1.0, 0.3])
    func reservoirRunEqualsAPlainRecurrence(alpha: Float) {
        let H = 12, E = 3, T = 7, B = 2
        let echo = EchoStateConfig(radius: 0.95, density: 0.3, inputScale: 1, ridge: 0)
        let model = SequenceModel(config: Self.config(hidden: H, echo: echo, leak: .fixed(alpha)), seed: 9, maxSteps: T, maxBatch: B)
        var x = [Float](repeating: 0, count: T * B * E)
        x.withUnsafeMutableBufferPointer { Philox.fillUniform($0.baseAddress!, count: T * B * E, low: -1, high: 1, seed: 3, stream: 1) }
        let lengths = [T, T - 3]
        x.withUnsafeBufferPointer {
            model.forward(tokens: nil, features: $0.baseAddress!, steps: T, batch: B, lengths: lengths, state: nil, dropout: nil)
        }
        let pooled = model.headInputs!
        let arena = model.arena
        let wih = arena.parameters(arena.view("rnn.weight_ih_l0")), whh = arena.parameters(arena.view("rnn.weight_hh_l0"))
        let bih = arena.parameters(arena.view("rnn.bias_ih_l0"))
        for b in 0..<B {
            var h = [Double](repeating: 0, count: H)
            for t in 0..<lengths[b] {
                var next = h
                for i in 0..<H {
                    var s = Double(bih[i])
                    for j in 0..<E { s += Double(wih[i * E + j]) * Double(x[(t * B + b) * E + j]) }
                    for j in 0..<H { s += Double(whh[i * H + j]) * h[j] }
                    next[i] = (1 - Double(alpha)) * h[i] + Double(alpha) * Foundation_tanh(s)
                }
                h = next
            }
            for i in 0..<H { #expect(abs(Double(pooled[b * H + i]) - h[i]) < 1e-5, "row \(b) unit \(i)") }
        }
    }
}

#if canImport(Glibc)
import Glibc
private func Foundation_tanh(_ x: Double) -> Double { Glibc.tanh(x) }
#endif
