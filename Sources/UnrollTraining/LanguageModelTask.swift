// Next-token prediction over one token stream (TBPTT), the first `TrainingTask`: the train split is
// cut into B global streams, this rank owns a contiguous share of them and reads one window of T
// tokens per step (the next read ahead on a background thread); the recurrent state is carried,
// detached, from window to window and zeroed at each epoch's start. Validation uses its own fixed
// layout of streams, so its result does not depend on the world size.
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
        reader = try TrainStreamReader(path: config.data, split: "train", globalBatch: config.batchSize,
                                       bptt: config.bptt, rank: communicator.rank, worldSize: communicator.size)
        try reader.verifyShard()
        let evalLocal = Self.evalRange(streams: config.evalStreams, rank: communicator.rank, size: communicator.size).count
        model = RecurrentLanguageModel(config: config.model, seed: config.seed, maxSteps: config.bptt,
                                       maxBatch: max(reader.localBatch, evalLocal, 1))
        state = RecurrentState(config: config.model, batch: reader.localBatch)
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

    public func forwardBackward(step: Int, ready: @escaping (_ offset: Int) -> Void,
                                progress: @escaping () -> Void) -> (lossSum: Double, count: Int) {
        guard let window else { preconditionFailure("forwardBackward before prepareStep") }
        self.window = nil
        return window.inputs.withUnsafeBufferPointer { inputs in
            window.targets.withUnsafeBufferPointer { targets in
                model.forward(tokens: inputs.baseAddress!, steps: window.length, batch: window.batch, state: state,
                              dropout: DropoutContext(seed: config.seed, step: UInt64(step),
                                                      firstStream: reader.firstStream, globalBatch: config.batchSize))
                return model.backward(targets: targets.baseAddress!, gradScale: 1, gradientsReady: ready, progress: progress)
            }
        }
    }

    public func evaluate(split: String) throws -> EvaluationResult {
        try Evaluator.evaluate(model: model, path: config.data, split: split, streams: config.evalStreams,
                               bptt: config.bptt, communicator: communicator)
    }
}
