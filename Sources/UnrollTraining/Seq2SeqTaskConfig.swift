// The configuration of an encoder–decoder task (dataset layout `pairs`, Deep Learning §10.4): the
// user's choices (encoder direction, bridge, attention, input feeding, scheduled sampling) and what
// the dataset fixes (vocabularies, level, longest sides), recorded at the start of a run so that a
// checkpoint describes its model completely.
import Foundation
import UnrollModels

/// How the probability ε of feeding the decoder the true previous token decays with the step
/// (Bengio et al. 2015, "Scheduled sampling for sequence prediction with recurrent neural
/// networks", §2.4). With probability 1 − ε the decoder reads its own previous prediction instead.
public enum SamplingSchedule: Codable, Equatable, Sendable {
    /// ε = max(0, 1 − step / steps): teacher forcing fades out linearly over `steps` steps.
    case linear(steps: Double)
    /// ε = k^step, 0 < k < 1.
    case exponential(k: Double)
    /// ε = k / (k + exp(step / k)), k ≥ 1.
    case inverseSigmoid(k: Double)

    /// The command-line names, in `--scheduled-sampling KIND[:K]`.
    public static let names = ["linear", "exponential", "inverse-sigmoid"]

    /// ε at global step `step` (0-based).
    public func teacherProbability(step: Int) -> Double {
        let i = Double(step)
        switch self {
        case .linear(let steps): return max(0, 1 - i / steps)
        case .exponential(let k): return pow(k, i)
        case .inverseSigmoid(let k): return k / (k + exp(i / k))
        }
    }

    /// Parses `KIND[:K]`; K defaults to 10000 steps (linear), 0.9999 (exponential), 1000 (inverse-sigmoid).
    public static func parse(_ text: String) -> SamplingSchedule? {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let kind = parts.first else { return nil }
        let k = parts.count > 1 ? Double(parts[1]) : nil
        if parts.count > 1 && k == nil { return nil }
        switch kind {
        case "linear": return .linear(steps: k ?? 10_000)
        case "exponential": return .exponential(k: k ?? 0.9999)
        case "inverse-sigmoid": return .inverseSigmoid(k: k ?? 1000)
        default: return nil
        }
    }

    /// `KIND:K` as `parse` reads it.
    public var text: String {
        switch self {
        case .linear(let steps): return "linear:\(steps)"
        case .exponential(let k): return "exponential:\(k)"
        case .inverseSigmoid(let k): return "inverse-sigmoid:\(k)"
        }
    }

    /// Why the parameter is out of range, or nil.
    public var problem: String? {
        switch self {
        case .linear(let steps) where !(steps > 0 && steps.isFinite):
            return "--scheduled-sampling linear:N needs N > 0 steps, got \(steps)"
        case .exponential(let k) where !(k > 0 && k < 1):
            return "--scheduled-sampling exponential:K needs 0 < K < 1, got \(k)"
        case .inverseSigmoid(let k) where !(k >= 1 && k.isFinite):
            return "--scheduled-sampling inverse-sigmoid:K needs K ≥ 1, got \(k)"
        default: return nil
        }
    }
}

/// An encoder–decoder task's part of `TrainingConfig` (nil there for other tasks).
public struct Seq2SeqTaskConfig: Codable, Equatable, Sendable {
    /// The encoder also reads the source backwards (Deep Learning §10.3).
    public var bidirectional = false
    /// How the decoder's initial state comes from the encoder's final states.
    public var bridge = TrainingConfig.Defaults.bridge
    /// Attention over the encoder states (Luong et al. 2015; Bahdanau et al. 2015).
    public var attention = TrainingConfig.Defaults.attention
    /// Luong's input feeding: the previous attentional state joins the decoder's input.
    public var inputFeeding = TrainingConfig.Defaults.inputFeeding
    /// Scheduled sampling; nil: teacher forcing throughout.
    public var scheduledSampling: SamplingSchedule?

    // Fixed by the dataset:
    public var sourceVocabSize: Int
    public var targetVocabSize: Int
    /// Token level of both sides (`char`, `byte`, `word`).
    public var level: String
    /// Longest source and target (tokens, without <bos>/<eos>) over every split.
    public var longestSource: Int
    public var longestTarget: Int

    public init(sourceVocabSize: Int, targetVocabSize: Int, level: String, longestSource: Int, longestTarget: Int) {
        self.sourceVocabSize = sourceVocabSize
        self.targetVocabSize = targetVocabSize
        self.level = level
        self.longestSource = longestSource
        self.longestTarget = longestTarget
    }

    /// Ids every `pairs` vocabulary starts with.
    public static let unk: Int32 = 0, bos: Int32 = 1, eos: Int32 = 2

    /// The model: cell, sizes and initialisation of `model` with this task's vocabularies and choices.
    public func modelConfig(_ model: ModelConfig) -> Seq2SeqModelConfig {
        Seq2SeqModelConfig(cell: model.cell, sourceVocabSize: sourceVocabSize, targetVocabSize: targetVocabSize,
                           embeddingSize: model.embeddingSize, hiddenSize: model.hiddenSize, layers: model.layers,
                           bidirectional: bidirectional, bridge: bridge, attention: attention,
                           inputFeeding: inputFeeding, initScheme: model.initScheme,
                           forgetGateBias: model.forgetGateBias)
    }

    /// Decoding stops here if the model never emits <eos>: twice the longest target, plus 10.
    public var maxDecodeLength: Int { 2 * longestTarget + 10 }

    /// Checks the task against the rest of the run; a one-line problem naming the option, or nil.
    public func problem(model: ModelConfig, lossNormalization: LossNormalization) -> String? {
        if let p = modelConfig(model).problem() { return p }
        if model.cell == .jordan {
            return "--cell jordan applies to sequence tasks with per-step targets; an encoder–decoder uses rnn, rnn-relu, lstm or gru"
        }
        if model.cell == .esn {
            return "--cell esn applies to sequence tasks (layout sequences); an encoder–decoder uses rnn, rnn-relu, lstm or gru"
        }
        if model.cell == .leaky {
            return "--cell leaky applies to language models and sequence tasks; an encoder–decoder uses rnn, rnn-relu, lstm or gru"
        }
        if model.cell == .clockwork {
            return "--cell clockwork applies to sequence tasks; an encoder–decoder uses rnn, rnn-relu, lstm or gru"
        }
        if model.skipSteps != nil { return "--skip-steps applies to sequence tasks; an encoder–decoder runs without skip connections" }
        if model.dropout > 0 {
            return "--dropout applies to language models and sequence tasks; encoder–decoder models train without it"
        }
        if lossNormalization != .token {
            return "--loss-normalization \(lossNormalization.rawValue) applies to language models; encoder–decoder tasks divide by the global count of target tokens"
        }
        return scheduledSampling?.problem
    }
}
