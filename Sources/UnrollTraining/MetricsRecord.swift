// The lines of the `--metrics` JSON-lines file, as Codable values: one `train` record per step and
// one `valid` record per validation (whose task-specific figures, accuracy or perplexity, become
// keys of their own). Encoded by `JSONLines` with sorted keys, so every string is escaped and a
// file is byte-identical across runs; non-finite numbers are written as null.
import Foundation

/// A number that is written as JSON null when it is NaN or infinite (JSON has no such numbers).
public struct FiniteOrNull: Codable, Equatable, Sendable {
    public var value: Double

    public init(_ value: Double) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        value = c.decodeNil() ? .nan : try c.decode(Double.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if value.isFinite { try c.encode(value) } else { try c.encodeNil() }
    }
}

/// One training step (`"kind": "train"`).
public struct TrainRecord: Codable, Equatable, Sendable {
    public var kind = "train"
    public var step: Int
    public var epoch: Int
    public var loss: FiniteOrNull
    public var gradNorm: FiniteOrNull
    public var clipped: Bool
    public var skipped: Bool
    public var lr: FiniteOrNull
    public var tokens: Int
    public var stepSeconds: FiniteOrNull
    public var computeSeconds: FiniteOrNull
    public var communicationSeconds: FiniteOrNull
    public var ioSeconds: FiniteOrNull

    public init(step: Int, epoch: Int, loss: FiniteOrNull, gradNorm: FiniteOrNull, clipped: Bool, skipped: Bool,
                lr: FiniteOrNull, tokens: Int, stepSeconds: FiniteOrNull, computeSeconds: FiniteOrNull,
                communicationSeconds: FiniteOrNull, ioSeconds: FiniteOrNull) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.gradNorm = gradNorm
        self.clipped = clipped
        self.skipped = skipped
        self.lr = lr
        self.tokens = tokens
        self.stepSeconds = stepSeconds
        self.computeSeconds = computeSeconds
        self.communicationSeconds = communicationSeconds
        self.ioSeconds = ioSeconds
    }

    enum CodingKeys: String, CodingKey {
        case kind, step, epoch, loss, clipped, skipped, lr, tokens
        case gradNorm = "grad_norm", stepSeconds = "step_s", computeSeconds = "compute_s"
        case communicationSeconds = "comm_s", ioSeconds = "io_s"
    }
}

/// One validation (`"kind": "valid"`): the loss, the task's own figures under their names, the
/// number of targets and whether it is the best so far.
public struct ValidRecord: Encodable, Equatable, Sendable {
    public var step: Int
    public var epoch: Int
    public var loss: Double
    /// The task's figures (`perplexity`, `accuracy`, …) in the order the task reports them.
    public var figures: [(name: String, value: Double)]
    public var tokens: Int
    public var best: Bool

    public init(step: Int, epoch: Int, loss: Double, figures: [(name: String, value: Double)], tokens: Int, best: Bool) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.figures = figures
        self.tokens = tokens
        self.best = best
    }

    private struct Key: CodingKey {
        var stringValue: String
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.init(stringValue) }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode("valid", forKey: Key("kind"))
        try c.encode(step, forKey: Key("step"))
        try c.encode(epoch, forKey: Key("epoch"))
        try c.encode(FiniteOrNull(loss), forKey: Key("loss"))
        for f in figures where !["kind", "step", "epoch", "loss", "tokens", "best"].contains(f.name) {
            try c.encode(FiniteOrNull(f.value), forKey: Key(f.name))
        }
        try c.encode(tokens, forKey: Key("tokens"))
        try c.encode(best, forKey: Key("best"))
    }

    public static func == (a: ValidRecord, b: ValidRecord) -> Bool {
        a.step == b.step && a.epoch == b.epoch && a.loss.bitPattern == b.loss.bitPattern && a.tokens == b.tokens
            && a.best == b.best && a.figures.map(\.name) == b.figures.map(\.name)
            && a.figures.map(\.value.bitPattern) == b.figures.map(\.value.bitPattern)
    }
}

/// JSON text of Codable values for files and standard output: one line, sorted keys, `/` left
/// unescaped, every string escaped as JSON requires.
public enum JSONLines {
    /// `value` as one line of JSON, without the newline.
    /// - Throws: `EncodingError` when a value cannot be encoded (a non-finite `Double` not wrapped
    ///   in `FiniteOrNull`).
    public static func line<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
