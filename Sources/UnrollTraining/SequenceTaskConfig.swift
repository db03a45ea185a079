// The configuration of a sequence task (classification, regression or tagging of whole sequences,
// dataset layout `sequences`): the encoder's choices the user makes (direction, pooling,
// normalisation) and what the dataset fixes (input kind and width, target kind and shape, classes),
// recorded at the start of a run so that a checkpoint describes its model completely.
import UnrollModels

/// A sequence task's part of `TrainingConfig` (nil there for a language model).
public struct SequenceTaskConfig: Codable, Equatable, Sendable {
    /// Each layer also runs time-reversed and concatenates (Deep Learning §10.3).
    public var bidirectional = false
    /// How a sequence head summarises the top layer's outputs.
    public var pool: PoolKind = .last
    /// Standardise float features with the train split's mean and std (stored in checkpoints).
    public var normalize = true

    // Fixed by the dataset:
    /// Token ids (through an embedding) or float feature vectors.
    public var tokens: Bool
    /// Features per step (float inputs; 1 for tokens).
    public var inputDim: Int
    /// Token level (`char`, `byte`, `word`) of token inputs, for `predict` to tokenise text.
    public var level: String?
    public var outputKind: SequenceOutputKind
    /// One target per step (tagging) instead of one per sequence.
    public var perStep: Bool
    /// Labels or values per target.
    public var targetDim: Int
    /// Classes of class targets (0 for values).
    public var numClasses: Int
    /// The longest sequence of the dataset (any split): the default window, so that sequences are
    /// whole unless `--bptt` asks for truncated BPTT within them.
    public var longest: Int

    public init(tokens: Bool, inputDim: Int, level: String?, outputKind: SequenceOutputKind, perStep: Bool,
                targetDim: Int, numClasses: Int, longest: Int) {
        self.tokens = tokens
        self.inputDim = inputDim
        self.level = level
        self.outputKind = outputKind
        self.perStep = perStep
        self.targetDim = targetDim
        self.numClasses = numClasses
        self.longest = longest
    }

    /// The model: the recurrent stack of `model` (cell, sizes, dropout, initialisation) with this
    /// task's input, direction, pooling and head.
    public func modelConfig(_ model: ModelConfig) -> SequenceModelConfig {
        SequenceModelConfig(cell: model.cell, vocabSize: tokens ? model.vocabSize : 0,
                            inputSize: tokens ? model.embeddingSize : inputDim, hiddenSize: model.hiddenSize,
                            layers: model.layers, bidirectional: bidirectional, dropout: model.dropout, pool: pool,
                            perStep: perStep, outputKind: outputKind, targetDim: targetDim, numClasses: numClasses,
                            initScheme: model.initScheme, forgetGateBias: model.forgetGateBias, leak: model.leak,
                            skipSteps: model.skipSteps, clockPeriods: model.clockPeriods,
                            echoState: model.echoState)
    }

    /// Checks the task against the window `bptt` (and, given `model`, its cell); returns a
    /// one-line problem naming the option.
    public func problem(bptt: Int, lossNormalization: LossNormalization, model: ModelConfig? = nil) -> String? {
        if let model, bptt < longest {
            // Windows carry one state: a skip term would need the last max(d) states, a clock the
            // time since the sequence began.
            if model.skipSteps != nil {
                return "--skip-steps needs whole sequences: --bptt \(bptt) is shorter than the longest sequence (\(longest)); leave --bptt out"
            }
            if model.cell == .clockwork {
                return "--cell clockwork needs whole sequences: --bptt \(bptt) is shorter than the longest sequence (\(longest)); leave --bptt out"
            }
        }
        if lossNormalization != .token {
            return "--loss-normalization \(lossNormalization.rawValue) applies to language models; sequence tasks divide by the global count of targets"
        }
        if bptt < longest {
            if bidirectional {
                return "--bidirectional needs whole sequences: --bptt \(bptt) is shorter than the longest sequence (\(longest)); leave --bptt out"
            }
            if !perStep && pool != .last {
                return "--pool \(pool.rawValue) needs whole sequences: --bptt \(bptt) is shorter than the longest sequence (\(longest)); use --pool last or leave --bptt out"
            }
        }
        return nil
    }
}
