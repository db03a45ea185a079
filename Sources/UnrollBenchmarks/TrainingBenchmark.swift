// Distributed training-step benchmark: the real Trainer step (data read-ahead, forward, backward,
// bucketed allreduce, clip, SGD) on a random-token dataset written for the occasion, timed on every
// rank; optionally also a plain MPI_Allreduce and Unroll's ordered allreduce of the same bytes, and a
// checkpoint save next to a raw write+fsync of the same number of bytes. launch/bench drives it.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels
import UnrollTraining
#if canImport(Glibc)
import Glibc
#endif

/// Measured figures of one benchmark run (medians over timed steps).
public struct TrainingBenchmarkResult: Codable, Sendable {
    public var config: String
    public var ranks: Int
    public var globalBatch: Int
    public var bptt: Int
    public var steps: Int
    public var tokensPerSecond: Double
    public var medianStepMs: Double
    public var computeMs: Double
    public var communicationMs: Double
    /// Median over steps of the spread of the ranks' compute times (slowest − fastest): how long
    /// the fastest rank waits for the slowest inside the "communication" time. Zero on one rank.
    public var rankSpreadMs: Double
    public var ioMs: Double
    public var gflops: Double
    public var peakRssMB: Double
    public var gradientBytes: Int
    /// Unroll's blocking ordered allreduce of the gradient buffer, and a plain MPI_Allreduce of it.
    public var orderedAllreduceMs: Double?
    public var rawAllreduceMs: Double?
    public var checkpointBytes: Int?
    public var checkpointSaveMs: Double?
    public var rawWriteMs: Double?
    /// Checkpoint every step (`--checkpoint-every 1`, median ms per step, interleaved with steps
    /// without a save): saves written in the foreground (the whole save blocks training) and in the background as `unroll train` does
    /// (training is held up by the wait for the previous write, the collectives and the copy), and
    /// the median time a background save held training up ("checkpoint stall").
    public var stepWithoutSaveMs: Double?
    public var stepWithForegroundSaveMs: Double?
    public var stepWithBackgroundSaveMs: Double?
    public var checkpointStallMs: Double?
    /// Sequence shapes (F): tokensPerSecond counts real steps only and is the median per-step
    /// rate; sequences/s is it over the mean length; the aggregate is all real steps over all timed
    /// step time; padding efficiency is real / computed (padded) steps.
    public var sequencesPerSecond: Double?
    public var aggregateTokensPerSecond: Double?
    public var paddingEfficiency: Double?
    public var meanLength: Double?
    /// Encoder–decoder shapes (G): pairs per second (median per-step rate); tokensPerSecond counts
    /// target tokens with their <eos>, paddingEfficiency is the decoder's, meanLength the mean
    /// target length with <eos>.
    public var pairsPerSecond: Double?
    /// The step's compute schedule for `launch/scaling-model` (language models A–E): the bucket
    /// size; the gradient bytes reduced in buckets (the rest, the embedding table, by touched rows);
    /// the arena offsets (bytes) backward handed over, in order, and the median compute time (ms
    /// since the step's start, communication excluded) of each; the median end of backward; the
    /// median number of embedding rows reduced per step (nil when the whole table was) and the
    /// table width (nil: no row-reduced table); the median time
    /// outside I/O, compute and communication (zeroing, clip, update).
    public var bucketBytes: Int?
    public var denseGradientBytes: Int?
    public var readyOffsetBytes: [Int]?
    public var readyMs: [Double]?
    public var backwardEndMs: Double?
    public var embeddingRows: Double?
    public var embeddingWidth: Int?
    public var updateMs: Double?
    /// Streams per reduction group the run used (0: none; language models A–E).
    public var reductionGroup: Int?
    /// `--compare-groups`: median step of the configuration above and of the same run without
    /// reduction groups, timed alternately in one process (see `timeAgainst`).
    public var groupedStepMs: Double?
    public var ungroupedStepMs: Double?
    /// Median over ABBA rounds of (grouped pair) / (ungrouped pair) − 1.
    public var groupedCost: Double?
    /// ABBA rounds behind `groupedCost` (4 steps each).
    public var comparedRounds: Int?
}

public enum TrainingBenchmark {
    /// Runs `shape` with `globalBatch` streams over `communicator`'s ranks (collective).
    public static func run(_ shape: BenchmarkShape, globalBatch: Int, communicator comm: any Communicator,
                           workdir: String, warmup: Int, seconds: Double,
                           extras: Bool, bucketBytes: Int = 4 << 20,
                           reductionGroup: Int? = nil, compareGroups: Bool = false) throws -> TrainingBenchmarkResult {
        let T = shape.bptt, V = shape.config.vocabSize
        // Rank 0 writes a random-token dataset big enough for 64 windows per stream.
        var name = Array("\(workdir)/bench-\(shape.name)-\(globalBatch)-\(getpid()).h5".utf8)
        try comm.broadcast(&name, root: 0)
        let path = String(decoding: name, as: UTF8.self)
        var failure: (any Error)?
        if comm.rank == 0 {
            do {
                try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
                var rng = SplitMix64(seed: 11)
                func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next() % UInt64(V)) } }
                let content = TokenDatasetContent(
                    level: .word, vocabulary: (0..<V).map { "w\($0)" },
                    splits: ["train": tokens(globalBatch * (64 * T + 1)), "valid": tokens(4 * T + 8),
                             "test": tokens(4 * T + 8)],
                    sources: [:], eos: nil, unk: nil, extraAttributes: [:])
                try TokenDatasetWriter.write(content, to: path)
            } catch { failure = error }
        }
        guard try comm.allAgree(failure == nil) else {
            throw failure ?? TrainingError.data("\(path): benchmark data could not be written on rank 0")
        }
        defer { if comm.rank == 0 { unlink(path) } }

        var config = TrainingConfig(data: path, model: shape.config)
        config.batchSize = globalBatch
        config.bptt = T
        config.learningRate = 0.1
        config.clip = 5
        config.steps = 1 << 30
        config.bucketBytes = bucketBytes
        // Without a size: what `unroll train` gives a new run (`auto` where the world size fits);
        // `--compare-groups` compares `auto` with none.
        config.reductionGroup = reductionGroup ?? (compareGroups ? TrainingConfig.defaultReductionGroup(batchSize: globalBatch) : nil)
        _ = config.adoptDefaultReductionGroup(worldSize: comm.size)
        let trainer = try Trainer(config: config, communicator: comm)
        for _ in 0..<warmup { _ = try trainer.step() }
        // Agree on the number of timed steps from the slowest rank's warm-up pace.
        var probe: [StepReport] = []
        for _ in 0..<3 { probe.append(try trainer.step()) }
        var pace = [probe.map(\.stepSeconds).max() ?? 1]
        try pace.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        let count = max(5, min(5000, Int(seconds / max(pace[0], 1e-6))))
        var reports: [StepReport] = []
        reports.reserveCapacity(count)
        var timelines: [[(offset: Int, seconds: Double)]] = [], backwardEnds: [Double] = [], rows: [Double] = []
        for _ in 0..<count {
            reports.append(try trainer.step())
            timelines.append(trainer.sync.readyTimeline)
            backwardEnds.append(trainer.sync.backwardEndSeconds)
            if let sparse = trainer.sync.sparseRows { rows.append(Double(sparse.rows.count)) }
        }
        let step = median(reports.map(\.stepSeconds))
        var slowest = reports.map(\.computeSeconds), fastest = reports.map { -$0.computeSeconds }
        try slowest.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        try fastest.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        let spread = median(zip(slowest, fastest).map { $0 + $1 })
        var result = TrainingBenchmarkResult(
            config: shape.name, ranks: comm.size, globalBatch: globalBatch, bptt: T, steps: count,
            tokensPerSecond: Double(globalBatch * T) / step, medianStepMs: step * 1000,
            computeMs: median(reports.map(\.computeSeconds)) * 1000,
            communicationMs: median(reports.map(\.communicationSeconds)) * 1000, rankSpreadMs: spread * 1000,
            ioMs: median(reports.map(\.ioSeconds)) * 1000,
            gflops: shape.config.trainingFlopsPerToken * Double(globalBatch * T) / step / 1e9,
            peakRssMB: 0, gradientBytes: trainer.task.arena.gradients.count * 4)
        recordSchedule(trainer, timelines: timelines, backwardEnds: backwardEnds, embeddingRows: rows,
                       reports: reports, into: &result)
        if compareGroups {
            var ungrouped = config
            ungrouped.reductionGroup = 0
            // Both fresh, built in turn: stepping the trainer timed above against a new one
            // measured the very same configuration 4–7 % slower (A and E, 20 s runs).
            let plain = try Trainer(config: ungrouped, communicator: comm)
            let grouped = try Trainer(config: config, communicator: comm)
            try timeAgainst(plain, grouped, communicator: comm, rounds: max(8, count / 2), into: &result)
        }

        if extras {
            try timeAllreduces(of: trainer, communicator: comm, into: &result)
            let ckpt = "\(path).ckpt.h5"
            var saves: [Double] = []
            for _ in 0..<3 {
                // Every save creates a new file, like the raw write below (which removes its file
                // untimed) and like training (step-N.h5). Saving over the previous file would also
                // time freeing that file's blocks, done inside rename(2) (synchronous discard on
                // a journal-less ext4 mounted with `discard`: about 20 ms for 50 MB).
                if comm.rank == 0 { unlink(ckpt) }
                let t0 = monotonicSeconds()
                try Checkpoint.save(trainer, to: ckpt, dataSHA256: "benchmark")
                saves.append(monotonicSeconds() - t0)
            }
            result.checkpointSaveMs = median(saves) * 1000
            try timeSavingEveryStep(trainer, path: ckpt, communicator: comm, into: &result)
            if comm.rank == 0 {
                let bytes = (try? FileManager.default.attributesOfItem(atPath: ckpt)[.size] as? Int) ?? 0
                result.checkpointBytes = bytes
                result.rawWriteMs = try rawWriteSeconds(bytes: bytes, path: "\(path).raw") * 1000
                unlink(ckpt)
            }
        }
        var rss = [peakResidentMiB()]
        try rss.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        result.peakRssMB = rss[0]
        result.reductionGroup = config.effectiveReductionGroup
        return result
    }

    /// Times `trainer` (the grouped configuration) against `ungrouped` step by step in one
    /// process, in the order ABBA, so that the host's drift — ±20 % from minute to minute on a
    /// shared machine, more than the difference measured — hits both alike; medians into `result`
    /// (collective; after two untimed steps of each).
    static func timeAgainst(_ ungrouped: Trainer, _ trainer: Trainer, communicator comm: any Communicator,
                            rounds: Int, into result: inout TrainingBenchmarkResult) throws {
        for _ in 0..<2 { _ = try ungrouped.step(); _ = try trainer.step() }
        var grouped: [Double] = [], plain: [Double] = [], ratios: [Double] = []
        for _ in 0..<rounds {
            let g0 = try trainer.step().stepSeconds
            let u0 = try ungrouped.step().stepSeconds, u1 = try ungrouped.step().stepSeconds
            let g1 = try trainer.step().stepSeconds
            grouped += [g0, g1]
            plain += [u0, u1]
            // A round's two pairs see the same drift; their ratio is the paired estimate.
            ratios.append((g0 + g1) / (u0 + u1))
        }
        result.groupedStepMs = median(grouped) * 1000
        result.ungroupedStepMs = median(plain) * 1000
        result.groupedCost = median(ratios) - 1
        result.comparedRounds = rounds
    }

    /// Times steps each followed by a checkpoint, saved in the foreground and in the background
    /// (`CheckpointWriter`, as `TrainingRun` does), and steps without a save, interleaved (none,
    /// foreground, background, none, …: the host's drift hits all three alike), into `result`
    /// (collective; `rounds` steps of each after one untimed round). Each save writes a new file,
    /// like training.
    static func timeSavingEveryStep(_ trainer: Trainer, path: String, communicator comm: any Communicator,
                                    into result: inout TrainingBenchmarkResult, rounds: Int = 8) throws {
        let writer = CheckpointWriter()
        var plain: [Double] = [], foreground: [Double] = [], background: [Double] = [], stalls: [Double] = []
        for i in 0..<(3 * (rounds + 1)) {
            let name = "\(path).\(i % 6)"
            if comm.rank == 0 { unlink(name) }
            let t0 = monotonicSeconds()
            _ = try trainer.step()
            let s0 = monotonicSeconds()
            switch i % 3 {
            case 0: break
            case 1: try Checkpoint.save(trainer, to: name, dataSHA256: "benchmark")
            default:
                let failure = comm.rank == 0 ? writer.wait() : nil
                guard try comm.allAgree(failure == nil) else {
                    throw failure ?? TrainingError.checkpoint("\(path): rank 0 failed to write a checkpoint")
                }
                let snapshot = try Checkpoint.snapshot(trainer, dataSHA256: "benchmark", staging: writer.takeStaging())
                if comm.rank == 0 { writer.start(snapshot, to: name) }
            }
            let t1 = monotonicSeconds()
            guard i >= 3 else { continue }
            switch i % 3 {
            case 0: plain.append(t1 - t0)
            case 1: foreground.append(t1 - t0)
            default:
                background.append(t1 - t0)
                stalls.append(t1 - s0)
            }
        }
        if comm.rank == 0 {
            if let failure = writer.wait() { throw failure }
            for i in 0..<6 { unlink("\(path).\(i)") }
        }
        result.stepWithoutSaveMs = median(plain) * 1000
        result.stepWithForegroundSaveMs = median(foreground) * 1000
        result.stepWithBackgroundSaveMs = median(background) * 1000
        result.checkpointStallMs = median(stalls) * 1000
    }

    /// Fills the schedule fields of `result` from the timed steps (medians; a timeline whose
    /// hand-over offsets differ from the first step's is left out).
    static func recordSchedule(_ trainer: Trainer, timelines: [[(offset: Int, seconds: Double)]],
                               backwardEnds: [Double], embeddingRows: [Double], reports: [StepReport],
                               into result: inout TrainingBenchmarkResult) {
        let sync = trainer.sync
        result.bucketBytes = trainer.config.bucketBytes
        result.denseGradientBytes = (trainer.task.arena.count - sync.denseOffset) * 4
        if let first = timelines.first, !first.isEmpty {
            let offsets = first.map(\.offset)
            let same = timelines.filter { $0.map(\.offset) == offsets }
            result.readyOffsetBytes = offsets.map { $0 * 4 }
            result.readyMs = offsets.indices.map { i in median(same.map { $0[i].seconds }) * 1000 }
        }
        result.backwardEndMs = median(backwardEnds) * 1000
        result.embeddingWidth = sync.embeddingWidth
        if !embeddingRows.isEmpty { result.embeddingRows = median(embeddingRows) }
        result.updateMs = median(reports.map {
            $0.stepSeconds - $0.ioSeconds - $0.computeSeconds - $0.communicationSeconds
        }) * 1000
    }

    /// Median seconds to write `bytes` bytes to a new file in 1 MiB writes and fsync it (3 runs).
    static func rawWriteSeconds(bytes: Int, path: String) throws -> Double {
        let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
        var times: [Double] = []
        for _ in 0..<3 {
            let t0 = monotonicSeconds()
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw TrainingError.data("\(path): cannot create (raw write benchmark)") }
            var left = bytes
            while left > 0 {
                let n = min(left, chunk.count)
                let written = chunk.withUnsafeBytes { write(fd, $0.baseAddress, n) }
                guard written == n else { close(fd); throw TrainingError.data("\(path): write failed") }
                left -= n
            }
            fsync(fd)
            close(fd)
            times.append(monotonicSeconds() - t0)
            unlink(path)
        }
        times.sort()
        return times[1]
    }

    /// The middle element (upper median) of a non-empty sample.
    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s[s.count / 2]
    }

    /// Times Unroll's ordered allreduce and a plain `MPI_Allreduce` of the trainer's gradient bytes
    /// (collective; medians of 5 after one untimed call) into `result`.
    static func timeAllreduces(of trainer: Trainer, communicator comm: any Communicator,
                               into result: inout TrainingBenchmarkResult) throws {
        let n = trainer.task.arena.gradients.count
        var buffer = [Float](repeating: 1, count: n)
        var times: [Double] = []
        for i in 0..<6 {
            try comm.barrier()
            let t0 = monotonicSeconds()
            try buffer.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
            if i > 0 { times.append(monotonicSeconds() - t0) }
        }
        result.orderedAllreduceMs = median(times) * 1000
        if let mpi = comm as? MPICommunicator {
            result.rawAllreduceMs = try mpi.rawAllreduceSeconds(count: n, repeats: 5) * 1000
        }
    }
}
