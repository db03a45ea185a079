// Exact distributed evaluation: the split is laid out as a fixed number of streams that does not
// depend on the world size (every target predicted exactly once, no padding duplicates); each rank
// runs its streams; every stream's Σ NLL (Double) and token count are gathered (each rank fills
// its streams, zeros elsewhere, summed over ranks — exact) and added in stream order, so the result
// is the same bits at every world size.
import UnrollData
import UnrollDistributed
import UnrollModels
#if canImport(Glibc)
import Glibc
#endif

/// A figure reported beside a loss (perplexity, accuracy, …), in display order.
public struct Metric: Sendable, Equatable {
    /// Short name, also the JSON key (`ppl`, `accuracy`, `macro_f1`).
    public var name: String
    public var value: Double
    /// Decimals shown in log lines.
    public var digits: Int

    public init(_ name: String, _ value: Double, digits: Int = 4) {
        self.name = name
        self.value = value
        self.digits = digits
    }
}

/// Result of evaluating a split.
public struct EvaluationResult: Sendable, Equatable {
    /// Σ loss over every target of the split (−log p(target) for tokens and classes).
    public var nllSum: Double
    /// Targets counted: tokens, sequences or valid steps.
    public var tokens: Int
    /// The task's figures for this result (ppl and bpc for a language model; accuracy …).
    public var metrics: [Metric] = []

    public init(nllSum: Double, tokens: Int, metrics: [Metric] = []) {
        self.nllSum = nllSum
        self.tokens = tokens
        self.metrics = metrics
    }

    public var meanLoss: Double { nllSum / Double(max(tokens, 1)) }
    public var perplexity: Double { exp(meanLoss) }
    /// Bits per token (per character for char/byte data).
    public var bitsPerToken: Double { meanLoss / log(2) }
}

public enum Evaluator {
    /// Evaluates `model` on `split` of `path` laid out as `streams` streams with windows of `bptt`
    /// (collective: every rank must call it). The model's workspace must hold `bptt` steps and this
    /// rank's share of the streams. `progress`, if given, is called after each window with the
    /// windows done and the total (this rank's; every rank has the same count).
    public static func evaluate(model: RecurrentLanguageModel, path: String, split: String, streams: Int, bptt: Int,
                                communicator: any Communicator,
                                progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> EvaluationResult {
        let local = LanguageModelTask.evalRange(streams: streams, rank: communicator.rank, size: communicator.size)
        // (2, streams): per-stream NLL sums, then per-stream token counts.
        var sums = [Double](repeating: 0, count: 2 * streams)
        var failure: (any Error)?
        do {
            let reader = try EvalStreamReader(path: path, split: split, streams: streams, bptt: bptt, localStreams: local)
            if !local.isEmpty {
                let state = RecurrentState(config: model.config, batch: local.count)
                var inputs: [Int32] = [], targets: [Int32] = []
                for w in 0..<reader.windowCount {
                    let len = try reader.readWindow(w, inputs: &inputs, targets: &targets)
                    model.forward(tokens: inputs, steps: len, batch: local.count, state: state, dropout: nil)
                    sums.withUnsafeMutableBufferPointer { p in
                        model.lossPerStream(targets: targets, perStream: p.baseAddress! + local.lowerBound,
                                            counts: p.baseAddress! + streams + local.lowerBound)
                    }
                    progress?(w + 1, reader.windowCount)
                }
            }
        } catch {
            failure = error
        }
        // Agree before the reduction so one rank's bad file ends the evaluation on every rank.
        guard try communicator.allAgree(failure == nil) else {
            throw failure ?? TrainingError.data("evaluation of \(path) split \(split) failed on another rank")
        }
        try sums.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        let nll = sums[0..<streams].reduce(0, +), count = sums[streams...].reduce(0, +)
        return EvaluationResult(nllSum: nll, tokens: Int(count))
    }
}
