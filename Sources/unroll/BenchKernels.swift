// `unroll bench-kernels`: the single-process training-step benchmark (see KernelBenchmark).
import ArgumentParser
import UnrollKernels
import UnrollDistributed
import UnrollBenchmarks
import UnrollTraining
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernels",
        abstract: "Time forward+backward+clip+SGD steps of the reference shapes A–E on one process.",
        discussion: examples("unroll bench-kernels", "unroll bench-kernels --configs A,C --json", "unroll bench-kernels --sgemm-only"))

    @Option(help: "Comma-separated shapes among A,B,C,D,E.")
    var configs: String = "A,B,C,D,E"

    @Option(help: "Seconds of timed steps per shape (after warm-up).")
    var seconds: Double = 10

    @Option(help: "Untimed warm-up steps per shape.")
    var warmup: Int = 3

    @Flag(help: "Print one JSON object per shape instead of a table.")
    var json = false

    @Flag(help: "Only measure single-thread cblas_sgemm peak; print it as JSON.")
    var sgemmOnly = false

    func validate() throws {
        let names = Set(BenchmarkShape.reference.map(\.name))
        for c in configs.split(separator: ",") where !names.contains(String(c)) {
            throw ValidationError("--configs: unknown shape '\(c)', expected some of A,B,C,D,E")
        }
    }

    func run() throws {
        let wanted = configs.split(separator: ",").map(String.init)
        let shapes = BenchmarkShape.reference.filter { wanted.contains($0.name) }
        if !sgemmOnly { print(BLASEnvironment.summary) }
        let peakNN = KernelBenchmark.sgemmGflops(m: 1024, n: 1024, k: 1024)
        let peakTN = KernelBenchmark.sgemmGflops(m: 2048, n: 512, k: 2048, transA: true)
        let peak = max(peakNN, peakTN)
        if sgemmOnly {
            print(try JSONLines.line(SgemmReport(sgemmPeakGflops: round2(peak), nn1024: round2(peakNN),
                                                 tn2048x512x2048: round2(peakTN), blasCore: BLAS.coreName)))
            return
        }
        print("sgemm peak (1 thread, measured now): 1024³ NN \(fmt(peakNN, 1)) GFLOP/s, 2048×512×2048 TN \(fmt(peakTN, 1)) GFLOP/s")
        print("method: median step time over ≥\(fmt(seconds, 0)) s after \(warmup) warm-up steps; tokens/s = B·T / median step;")
        print("        GFLOP/s = 3 × forward GEMM FLOPs per token × tokens/s")
        if !json {
            print("| config | model | tok/s | ms/step | GFLOP/s | % sgemm peak | steps |")
            print("|---|---|---:|---:|---:|---:|---:|")
        }
        for shape in shapes {
            let r = KernelBenchmark.run(shape, warmup: warmup, seconds: seconds)
            if json {
                print(try JSONLines.line(ShapeReport(config: shape.name, tokensPerSecond: rounded(r.tokensPerSecond, 1),
                                                     medianStepMilliseconds: rounded(r.medianStepSeconds * 1000, 3),
                                                     gflops: round2(r.gflops), sgemmPeakGflops: round2(peak),
                                                     steps: r.steps, blasCore: BLAS.coreName)))
            } else {
                print("| \(shape.name) | \(shape.summary) | \(fmt(r.tokensPerSecond, 0)) | \(fmt(r.medianStepSeconds * 1000, 1)) "
                      + "| \(fmt(r.gflops, 1)) | \(fmt(100 * r.gflops / peak, 0))% | \(r.steps) |")
            }
        }
        print("peak RSS \(fmt(peakResidentMiB(), 0)) MiB")
    }
}

/// `bench-kernels --sgemm-only`: the one JSON object printed.
struct SgemmReport: Encodable {
    var sgemmPeakGflops: Double
    var nn1024: Double
    var tn2048x512x2048: Double
    var blasCore: String

    enum CodingKeys: String, CodingKey {
        case sgemmPeakGflops = "sgemm_peak_gflops", nn1024 = "nn_1024", tn2048x512x2048 = "tn_2048_512_2048"
        case blasCore = "blas_core"
    }
}

/// `bench-kernels --json`: one JSON object per shape.
struct ShapeReport: Encodable {
    var config: String
    var tokensPerSecond: Double
    var medianStepMilliseconds: Double
    var gflops: Double
    var sgemmPeakGflops: Double
    var steps: Int
    var blasCore: String

    enum CodingKeys: String, CodingKey {
        case config, gflops, steps
        case tokensPerSecond = "tokens_per_s", medianStepMilliseconds = "median_step_ms"
        case sgemmPeakGflops = "sgemm_peak_gflops", blasCore = "blas_core"
    }
}

/// `x` rounded to `digits` decimals (what the JSON reports carry); NaN stays NaN.
func rounded(_ x: Double, _ digits: Int) -> Double {
    guard x.isFinite else { return x }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return (x * scale).rounded() / scale
}

func round2(_ x: Double) -> Double { rounded(x, 2) }

/// Fixed-point formatting without Foundation.
func fmt(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (x * scale).rounded() / scale
    if digits == 0 { return String(Int(r)) }
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    }
    return s
}

/// Environment access without Foundation.
enum ProcessInfoLite {
    static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
}

/// `unroll bench-train`: the real distributed training step on one reference shape.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-train",
        abstract: "Time real Trainer steps (read-ahead, forward, backward, allreduce, clip, SGD) of one shape A–G; run under mpirun for several ranks. Prints one JSON object (rank 0).",
        discussion: "A–E are language models (TBPTT windows). F is a sequence classifier on a random token set of lengths 20–200 in length-grouped batches; its tokens/s counts real (unpadded) steps. G is an encoder–decoder (bi-GRU 256 encoder, GRU 256 decoder, additive attention) on random pairs with source and target lengths 10–50, B = 64 pairs; its tokens/s counts target tokens (with <eos>), beside pairs/s.\n\n"
            + examples("unroll bench-train --config A", "mpirun -np 2 unroll bench-train --config C --seconds 20 --extras",
                       "unroll bench-train --config F --seconds 6", "unroll bench-train --config G --seconds 6"))

    @Option(help: "Shape: A, B, C, D, E (language models), F (sequence classifier) or G (encoder–decoder).")
    var config: String = "A"
    @Option(help: "Global streams, or sequences for F, pairs for G (default: the shape's batch).")
    var batchSize: Int?
    @Option(help: "Seconds of timed steps (after warm-up).")
    var seconds: Double = 10
    @Option(help: "Untimed warm-up steps.")
    var warmup: Int = 3
    @Option(help: "Directory for the temporary dataset and checkpoint.")
    var workdir: String = "/tmp/unroll-bench"
    @Option(help: "Gradient allreduce bucket size in bytes.")
    var bucketBytes: Int = 4 << 20
    @Option(help: "Streams (config F: sequences) per reduction group, as `train --reduction-group` (default: what `train` gives a new run, auto where the number of ranks fits it; with --compare-groups, auto).")
    var reductionGroup: Int?
    @Flag(help: "Also time the same run without reduction groups, step by step alternating with the grouped one in this process (groupedStepMs, ungroupedStepMs; language models A–E).")
    var compareGroups = false
    @Flag(help: "Run as one independent process even under mpirun (the no-communication ceiling).")
    var noComm = false
    @Flag(help: "Also time plain and ordered allreduces of the gradient bytes and a checkpoint save vs a raw write.")
    var extras = false

    func validate() throws {
        let names = BenchmarkShape.reference.map(\.name) + SequenceBenchmarkShape.reference.map(\.name)
            + Seq2SeqBenchmarkShape.reference.map(\.name)
        guard names.contains(config) else {
            throw ValidationError("--config: unknown shape '\(config)', expected one of \(names.joined(separator: ", "))")
        }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1, got \(batchSize)") }
    }

    func run() throws {
        let comm: any Communicator = noComm ? SingleProcessCommunicator() : try makeCommunicator()
        try runReportingErrors(communicator: comm) {
            let r: TrainingBenchmarkResult
            if let shape = Seq2SeqBenchmarkShape.reference.first(where: { $0.name == config }) {
                r = try TrainingBenchmark.run(shape, globalBatch: batchSize ?? shape.batch, communicator: comm,
                                              workdir: workdir, warmup: warmup, seconds: seconds, extras: extras,
                                              bucketBytes: bucketBytes)
            } else if let shape = SequenceBenchmarkShape.reference.first(where: { $0.name == config }) {
                r = try TrainingBenchmark.run(shape, globalBatch: batchSize ?? shape.batch, communicator: comm,
                                              workdir: workdir, warmup: warmup, seconds: seconds, extras: extras,
                                              bucketBytes: bucketBytes, reductionGroup: reductionGroup)
            } else if let shape = BenchmarkShape.reference.first(where: { $0.name == config }) {
                r = try TrainingBenchmark.run(shape, globalBatch: batchSize ?? shape.batch, communicator: comm,
                                              workdir: workdir, warmup: warmup, seconds: seconds, extras: extras,
                                              bucketBytes: bucketBytes, reductionGroup: reductionGroup,
                                              compareGroups: compareGroups)
            } else {
                throw ValidationError("--config: unknown shape '\(config)'")
            }
            if comm.rank == 0 {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(r), as: UTF8.self))
            }
        }
    }
}
