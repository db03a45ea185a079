// How options given on the command line (or in --config) combine with a configuration: a new run
// applies them to the defaults; a resumed run starts from its checkpoint's configuration, where
// options that do not change the math apply silently, the learning rate, the schedule's parameters
// and the clipping threshold apply with a notice that is recorded in the checkpoint, and any other
// option that would change the configuration is refused in one line naming the flag, the
// checkpoint's value and the given one.
import UnrollModels

/// One option as given by the user, able to apply itself to a configuration.
public struct GivenOption {
    /// What a resumed run may do with the option.
    public enum Kind: Sendable {
        /// Bookkeeping that does not change the run's math (steps, cadences, files).
        case free
        /// Changes the math but may be overridden when resuming (learning rate, schedule, clip).
        case overridable
        /// Defines the run (shapes, cell, optimizer, data, seed, …): a resumed run keeps it.
        case fixed
    }

    public let flag: String
    public let kind: Kind
    /// The given value as the user would write it.
    public let given: String
    /// Sets the option in a configuration.
    public let apply: (inout TrainingConfig) -> Void
    /// The option's value in a configuration, written like `given`.
    public let current: (TrainingConfig) -> String

    public init(_ flag: String, _ kind: Kind, given: String, apply: @escaping (inout TrainingConfig) -> Void,
                current: @escaping (TrainingConfig) -> String) {
        self.flag = flag
        self.kind = kind
        self.given = given
        self.apply = apply
        self.current = current
    }
}

/// A change of the configuration made when resuming, kept in the run's progress (and so in every
/// later checkpoint).
public struct ConfigOverride: Codable, Equatable, Sendable {
    /// The step at which the override took effect.
    public var step: Int
    public var flag: String
    public var from: String
    public var to: String

    public init(step: Int, flag: String, from: String, to: String) {
        self.step = step
        self.flag = flag
        self.from = from
        self.to = to
    }
}

public enum ConfigMerge {
    /// A new run: every given option applied, in order, to `defaults`.
    public static func fresh(_ defaults: TrainingConfig, _ given: [GivenOption]) -> TrainingConfig {
        var config = defaults
        for option in given { option.apply(&config) }
        return config
    }

    /// A resumed run: `checkpoint`'s configuration with the given options that are allowed.
    /// - Returns: the configuration and the overrides of `overridable` options that changed a value.
    /// - Throws: `TrainingError.config` for the first `fixed` option that would change the
    ///   configuration: `--FLAG: the checkpoint FILE has X, given Y; …`.
    public static func resume(_ checkpoint: TrainingConfig, file: String, step: Int,
                              _ given: [GivenOption]) throws -> (TrainingConfig, [ConfigOverride]) {
        var config = checkpoint
        var overrides: [ConfigOverride] = []
        for option in given {
            var candidate = config
            option.apply(&candidate)
            guard candidate != config else { continue }
            switch option.kind {
            case .free:
                config = candidate
            case .overridable:
                overrides.append(ConfigOverride(step: step, flag: option.flag, from: option.current(config),
                                                to: option.current(candidate)))
                config = candidate
            case .fixed:
                throw TrainingError.config("\(option.flag): the checkpoint \(file) has \(option.current(config)), "
                    + "given \(option.given); a resumed run keeps its configuration (leave the option out, "
                    + "or start a new run from these weights with --init-from)")
            }
        }
        return (config, overrides)
    }

    /// The model options that must equal the checkpoint's for `--init-from` (shapes).
    public static func checkShapes(_ model: ModelConfig, against checkpoint: ModelConfig, file: String) throws {
        let pairs: [(String, String, String)] = [
            ("--cell", model.cell.rawValue, checkpoint.cell.rawValue),
            ("--layers", "\(model.layers)", "\(checkpoint.layers)"),
            ("--hidden", "\(model.hiddenSize)", "\(checkpoint.hiddenSize)"),
            ("--embedding", "\(model.embeddingSize)", "\(checkpoint.embeddingSize)"),
            ("vocabulary size (the dataset's)", "\(model.vocabSize)", "\(checkpoint.vocabSize)"),
        ]
        if let (flag, run, saved) = pairs.first(where: { $0.1 != $0.2 }) {
            throw TrainingError.config("--init-from \(file): \(flag): the checkpoint has \(saved), the run has \(run); "
                                       + "shapes must match")
        }
    }
}
