// Single-process training-step benchmark over the five reference shapes (A–E): forward, backward,
// global-norm clip and SGD update of a TBPTT window, hidden state carried and detached — the
// same recipe as launch/bench_torch.py. Reports medians after warm-up, achieved GFLOP/s from the
// model's GEMM FLOP count, and single-thread sgemm peak measured in the same run.
import UnrollData
import UnrollKernels
import UnrollModels
import UnrollTraining
#if canImport(Glibc)
import Glibc
#endif

/// One benchmark shape.
public struct BenchmarkShape: Sendable {
    public let name: String
    public let config: ModelConfig
    public let batch: Int
    public let bptt: Int

    /// The reference shapes A–E shared with the PyTorch benchmark.
    public static let reference: [BenchmarkShape] = [
        .init(name: "A", config: .init(cell: .lstm, vocabSize: 65, embeddingSize: 64, hiddenSize: 512, layers: 1),
              batch: 32, bptt: 64),
        .init(name: "B", config: .init(cell: .lstm, vocabSize: 10000, embeddingSize: 200, hiddenSize: 200, layers: 2),
              batch: 20, bptt: 20),
        .init(name: "C", config: .init(cell: .gru, vocabSize: 65, embeddingSize: 64, hiddenSize: 512, layers: 1),
              batch: 32, bptt: 64),
        .init(name: "D", config: .init(cell: .rnnTanh, vocabSize: 65, embeddingSize: 64, hiddenSize: 512, layers: 1),
              batch: 32, bptt: 64),
        .init(name: "E", config: .init(cell: .lstm, vocabSize: 65, embeddingSize: 128, hiddenSize: 1024, layers: 2),
              batch: 32, bptt: 64),
    ]

    public var summary: String {
        "V=\(config.vocabSize) E=\(config.embeddingSize) \(config.cell.rawValue) \(config.layers)×\(config.hiddenSize) B=\(batch) T=\(bptt)"
    }
}

/// Measured figures for one shape.
public struct BenchmarkResult: Sendable {
    public let shape: BenchmarkShape
    public let steps: Int
    public let medianStepSeconds: Double
    public var tokensPerSecond: Double { Double(shape.batch * shape.bptt) / medianStepSeconds }
    public var gflops: Double { shape.config.trainingFlopsPerToken * tokensPerSecond / 1e9 }
}

/// Runs the training-step benchmark.
public enum KernelBenchmark {
    /// Times TBPTT steps of `shape` for about `seconds` after `warmup` steps (at least 5 timed steps).
    public static func run(_ shape: BenchmarkShape, warmup: Int, seconds: Double) -> BenchmarkResult {
        let T = shape.bptt, B = shape.batch, V = shape.config.vocabSize
        let model = RecurrentLanguageModel(config: shape.config, seed: 1, maxSteps: T, maxBatch: B)
        let arena = model.arena
        let state = RecurrentState(config: shape.config, batch: B)
        // A random token stream, B streams, wrapping after 64 windows (as the PyTorch side).
        let windows = 64
        var rng = SplitMix64(seed: 7)
        let stream = (0..<((windows * T + 1) * B)).map { _ in Int32(rng.next() % UInt64(V)) }
        var tokens = [Int32](repeating: 0, count: T * B), targets = tokens
        var times: [Double] = []
        var step = 0
        let optimizer = Optimizer(config: OptimizerConfig(kind: .sgd), parameterCount: arena.count)
        let start = monotonicSeconds()
        while true {
            let w = step % windows
            for t in 0..<T {
                for b in 0..<B {
                    tokens[t * B + b] = stream[(w * T + t) * B + b]
                    targets[t * B + b] = stream[(w * T + t + 1) * B + b]
                }
            }
            let t0 = monotonicSeconds()
            arena.zeroGradients()
            model.forward(tokens: tokens, steps: T, batch: B, state: state, dropout: nil)
            let (_, count) = model.backward(targets: targets, gradScale: 1)
            // Mean over tokens, clip to norm 5, SGD: the trainer's update rule.
            _ = UpdateRule.apply(to: arena, optimizer: optimizer, divisor: count, clip: 5, clipMode: .norm, lr: 0.1)
            let elapsed = monotonicSeconds() - t0
            if step >= warmup { times.append(elapsed) }
            step += 1
            if times.count >= 5 && (monotonicSeconds() - start >= seconds || times.count >= 10_000) { break }
        }
        times.sort()
        return BenchmarkResult(shape: shape, steps: times.count, medianStepSeconds: times[times.count / 2])
    }

    /// Single-thread `cblas_sgemm` GFLOP/s on an (m, n, k) product, median of `repeats`.
    public static func sgemmGflops(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false,
                                   repeats: Int = 7) -> Double {
        let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c = FloatBuffer(count: m * n)
        var rng = SplitMix64(seed: 3)
        for i in 0..<a.count { a[i] = Float(rng.next() % 1000) / 1000 - 0.5 }
        for i in 0..<b.count { b[i] = Float(rng.next() % 1000) / 1000 - 0.5 }
        var times: [Double] = []
        for _ in 0..<(repeats + 1) {
            let t0 = monotonicSeconds()
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a.pointer, lda: transA ? m : k,
                       b: b.pointer, ldb: transB ? k : n, beta: 0, c: c.pointer, ldc: n)
            times.append(monotonicSeconds() - t0)
        }
        times.removeFirst()
        times.sort()
        return 2 * Double(m) * Double(n) * Double(k) / times[times.count / 2] / 1e9
    }
}
