// Next-token prediction over one token stream (TBPTT), the first `TrainingTask`: the train split is
// cut into B global streams, this rank owns a contiguous share of them and reads one window of T
// tokens per step (the next read ahead on a background thread); the recurrent state is carried,
// detached, from window to window and zeroed at each epoch's start. Validation uses its own fixed
// layout of streams, so its result does not depend on the world size.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels

public final class LanguageModelTask: TrainingTask {
    public let config: TrainingConfig
    let communicator: any Communicator
    public let dataset: TokenDataset
    /// The dataset's vocabulary, read once (every checkpoint stores a copy).
    public let vocabulary: [String]
    public let reader: TrainStreamReader
    public let model: RecurrentLanguageModel
    /// Carried hidden state of this rank's streams, (L, B_local, H).
    public let state: RecurrentState
    private var prefetcher: WindowPrefetcher?
    private var window: TokenWindow?
    /// With `--accumulate K` > 1: the carried state, inputs and targets of one micro-batch of
    /// B_local/K streams, copied out of `state` and the window and the state copied back after.
    private var microState: RecurrentState?
    private var microInputs: [Int32] = [], microTargets: [Int32] = []

    /// Opens the data and builds the model (initialised from `config.seed`, identical on every
    /// rank). `config.model.vocabSize` must equal the dataset's.
    public init(config: TrainingConfig, communicator: any Communicator) throws {
        self.config = config
        self.communicator = communicator
        dataset = try TokenDataset(path: config.data)
        vocabulary = try dataset.vocabulary()
        guard dataset.vocabSize == config.model.vocabSize else {
            throw TrainingError.config("model vocabulary \(config.model.vocabSize) ≠ dataset \(config.data) vocabulary \(dataset.vocabSize)")
        }
        if let problem = config.reductionGroupProblem(worldSize: communicator.size) {
            throw TrainingError.config(problem)
        }
        let local = config.batchSize / max(communicator.size, 1), parts = config.accumulation
        if parts > 1 && local % parts != 0 {
            throw TrainingError.config("--accumulate \(parts) must divide each rank's \(local) streams "
                                       + "(--batch-size \(config.batchSize) over \(communicator.size) rank(s))")
        }
        reader = try TrainStreamReader(path: config.data, split: "train", globalBatch: config.batchSize,
                                       bptt: config.bptt, rank: communicator.rank, worldSize: communicator.size)
        try reader.verifyShard()
        let evalLocal = Self.evalRange(streams: config.evalStreams, rank: communicator.rank, size: communicator.size).count
        // Workspaces for one micro-batch of streams (activations scale with it), or an evaluation batch.
        let microStreams = reader.localBatch / parts
        model = RecurrentLanguageModel(config: config.model, seed: config.seed, maxSteps: config.bptt,
                                       maxBatch: max(microStreams, evalLocal, 1))
        state = RecurrentState(config: config.model, batch: reader.localBatch)
        if parts > 1 {
            microState = RecurrentState(config: config.model, batch: microStreams)
            microInputs = [Int32](repeating: 0, count: config.bptt * microStreams)
            microTargets = [Int32](repeating: 0, count: config.bptt * microStreams)
        }
        if config.effectiveReductionGroup > 0 { model.useReductionGroups(size: config.effectiveReductionGroup) }
    }

    /// Streams of the evaluation layout read by `rank`.
    static func evalRange(streams: Int, rank: Int, size: Int) -> Range<Int> {
        (rank * streams / size)..<((rank + 1) * streams / size)
    }

    public var arena: ParameterArena { model.arena }
    public var sparseTable: ParameterView? { model.arena.layout.view("embedding.weight") }
    public var stepsPerEpoch: Int { reader.windowsPerEpoch }

    public func startEpoch(_ epoch: Int, at position: Int) {
        if position == 0 { state.zero() }  // every stream starts an epoch from a zero state
        prefetcher = WindowPrefetcher(source: reader, windows: position..<reader.windowsPerEpoch)
    }

    public func prepareStep(_ position: Int) throws -> ArraySlice<Int32> {
        guard let next = try prefetcher?.next() else {
            throw TrainingError.data("\(config.data): window \(position) of the train split could not be read")
        }
        precondition(next.index == position, "prefetcher out of step")
        window = next
        return next.inputs.prefix(next.length * next.batch)
    }

    /// Micro-batch m of K runs streams [m·B_local/K, (m+1)·B_local/K) of this rank's window, from
    /// and back into their carried state; dropout masks are keyed by global stream, as unsplit.
    public func forwardBackward(step: Int, microBatch: MicroBatch, ready: @escaping (_ offset: Int) -> Void,
                                progress: @escaping () -> Void) -> (lossSum: Double, count: Int) {
        guard let window else { preconditionFailure("forwardBackward before prepareStep") }
        if microBatch.isLast { self.window = nil }
        let streams = microBatch.range(of: window.batch), T = window.length, b = streams.count
        let dropout = DropoutContext(seed: config.seed, step: UInt64(step), firstStream: reader.firstStream + streams.lowerBound,
                                     globalBatch: config.batchSize)
        guard let microState, microBatch.count > 1 else {
            return window.inputs.withUnsafeBufferPointer { inputs in
                window.targets.withUnsafeBufferPointer { targets in
                    model.forward(tokens: inputs.baseAddress!, steps: T, batch: window.batch, state: state, dropout: dropout,
                                  wholeGroups: true)
                    return model.backward(targets: targets.baseAddress!, gradScale: 1, gradientsReady: ready, progress: progress)
                }
            }
        }
        // (T, B_local) time-major → (T, b) for this micro-batch's columns.
        for t in 0..<T {
            let from = t * window.batch + streams.lowerBound
            for j in 0..<b {
                microInputs[t * b + j] = window.inputs[from + j]
                microTargets[t * b + j] = window.targets[from + j]
            }
        }
        copyState(streams, from: state, to: microState, outward: true)
        let result = microInputs.withUnsafeBufferPointer { inputs in
            microTargets.withUnsafeBufferPointer { targets in
                // With groups a micro-batch is whole groups (a subtree of the rank's; see
                // Trainer.forwardBackwardTree).
                model.forward(tokens: inputs.baseAddress!, steps: T, batch: b, state: microState, dropout: dropout,
                              wholeGroups: model.groups != nil)
                return model.backward(targets: targets.baseAddress!, gradScale: 1, gradientsReady: ready, progress: progress)
            }
        }
        copyState(streams, from: state, to: microState, outward: false)
        return result
    }

    /// Copies the carried state of `streams` (local indices) from `full` into `micro` (`outward`)
    /// or back.
    private func copyState(_ streams: Range<Int>, from full: RecurrentState, to micro: RecurrentState, outward: Bool) {
        let H = config.model.hiddenSize, n = streams.count * H, offset = streams.lowerBound * H
        for k in 0..<config.model.layers {
            let f = full.layer(k), m = micro.layer(k)
            if outward { m.h.update(from: f.h + offset, count: n) } else { (f.h + offset).update(from: m.h, count: n) }
            if let fc = f.c, let mc = m.c {
                if outward { mc.update(from: fc + offset, count: n) } else { (fc + offset).update(from: mc, count: n) }
            }
        }
    }

    public func evaluate(split: String) throws -> EvaluationResult {
        var result = try Evaluator.evaluate(model: model, path: config.data, split: split, streams: config.evalStreams,
                                            bptt: config.bptt, communicator: communicator)
        // As in the progress line, with one more decimal for bits per character.
        result.metrics = lossFigures(meanLoss: result.meanLoss).map { $0.name == "bpc" ? Metric("bpc", $0.value, digits: 4) : $0 }
        return result
    }

    // MARK: reporting

    public var setupDescription: String {
        "\(communicator.size) rank(s) × \(reader.localBatch) streams, \(stepsPerEpoch) windows per epoch"
    }

    public var targetUnit: String { "tok" }

    /// Perplexity, and bits per character for char or byte data.
    public func lossFigures(meanLoss: Double) -> [Metric] {
        var figures = [Metric("ppl", exp(meanLoss), digits: 2)]
        if dataset.level != .word { figures.append(Metric("bpc", meanLoss / log(2), digits: 3)) }
        return figures
    }

    // MARK: checkpoint

    /// The carried state of every GLOBAL stream (gathered from all ranks, so a run can resume at
    /// another world size), every stream's cursor, and the vocabulary.
    public func checkpointState(progress: TrainingProgress) throws -> TaskState {
        let L = config.model.layers, B = config.batchSize, H = config.model.hiddenSize
        let local = state.batch, first = reader.firstStream
        // Gather (L, B_global, H) by summing zero-filled buffers where each rank filled its streams.
        var h = [Float](repeating: 0, count: L * B * H)
        var c = [Float](repeating: 0, count: config.model.cell.hasCellState ? L * B * H : 0)
        for k in 0..<L {
            let layer = state.layer(k)
            for b in 0..<local {
                for j in 0..<H {
                    h[(k * B + first + b) * H + j] = layer.h[b * H + j]
                    if let lc = layer.c { c[(k * B + first + b) * H + j] = lc[b * H + j] }
                }
            }
        }
        try h.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        if !c.isEmpty { try c.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) } }
        var saved = TaskState()
        // Every stream's next window (all streams advance together in TBPTT).
        saved.append("state/stream_cursor", int64s: [Int64](repeating: Int64(progress.window), count: B))
        for k in 0..<L {
            let rows = (k * B * H)..<((k + 1) * B * H)
            saved.append("hidden/l\(k)/h", floats: Array(h[rows]), shape: [B, H])
            if !c.isEmpty { saved.append("hidden/l\(k)/c", floats: Array(c[rows]), shape: [B, H]) }
        }
        saved.append("vocab", strings: vocabulary)
        return saved
    }

    public static func parameterLayout(_ config: TrainingConfig) -> ParameterLayout {
        .languageModel(config.model)
    }

    public static func checkpointSchema(_ config: TrainingConfig) -> TaskStateSchema {
        let L = config.model.layers, B = config.batchSize, H = config.model.hiddenSize, V = config.model.vocabSize
        var schema = TaskStateSchema()
        schema.add("state/stream_cursor", .int64s, shape: [B])
        for k in 0..<L {
            schema.add("hidden/l\(k)/h", .floats, shape: [B, H])
            if config.model.cell.hasCellState { schema.add("hidden/l\(k)/c", .floats, shape: [B, H]) }
        }
        schema.add("vocab", .strings)
        schema.check = { state, progress in
            let cursor = state.int64s("state/stream_cursor") ?? []
            if let bad = cursor.firstIndex(where: { $0 != Int64(progress.window) }) {
                return "/state/stream_cursor[\(bad)]: expected \(progress.window) (every stream's next window), found \(cursor[bad])"
            }
            let vocab = state.strings("vocab") ?? []
            if vocab.count != V {
                return "/vocab: expected \(V) entries (vocabSize in attribute config), found \(vocab.count)"
            }
            return nil
        }
        return schema
    }

    /// Puts this rank's streams' part of the saved global state into `state`.
    public func restore(_ saved: TaskState, file: String) throws {
        try checkSameData(saved, label: file)
        let B = config.batchSize, H = config.model.hiddenSize
        let first = reader.firstStream, local = state.batch
        for k in 0..<config.model.layers {
            let layer = state.layer(k)
            guard let h = saved.floats("hidden/l\(k)/h"), h.count == B * H else {
                throw TrainingError.checkpoint("\(file): /hidden/l\(k)/h: missing or of another shape (expected [\(B), \(H)])")
            }
            let c = saved.floats("hidden/l\(k)/c")
            for b in 0..<local {
                let src = (first + b) * H
                (layer.h + b * H).update(from: Array(h[src..<(src + H)]), count: H)
                if let c, let lc = layer.c { (lc + b * H).update(from: Array(c[src..<(src + H)]), count: H) }
            }
        }
    }

    /// The checkpoint's vocabulary must be the dataset's, entry for entry; the message names the
    /// first entry that differs.
    public func checkSameData(_ saved: TaskState, label: String) throws {
        try saved.requireSameStrings("vocab", as: vocabulary, label: label, data: config.data)
    }
}
