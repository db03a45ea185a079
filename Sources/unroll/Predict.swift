// `unroll predict`: what a trained sequence model says about new inputs — the command users run
// after training a classifier, regressor or tagger. Text files (token inputs): one sequence per
// line, tokenised like `prepare sequences` at the checkpoint's level; each line gets its top-k
// labels with probabilities (or its values; or, for a tagger, a label per token). NumPy .npz files
// (float inputs, `x` (N, T, F) with optional `lengths` (N)): one JSON object per sequence.
import ArgumentParser
import Foundation
import UnrollData
import UnrollDistributed
import UnrollModels
import UnrollTraining

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a sequence model's checkpoint on new inputs: text lines or a NumPy .npz.",
        discussion: examples(
            "unroll predict --checkpoint runs/reviews/best.h5 --input new.txt --top-k 2",
            "unroll predict --checkpoint runs/signals/best.h5 --input new.npz --json"))

    @Option(help: "Checkpoint of a sequence task.")
    var checkpoint: String
    @Option(help: "Text file (one sequence per line; token inputs) or .npz with x (N, T, F) and optional lengths (N) (float inputs).")
    var input: String
    @Option(parsing: .unconditional, help: "Labels shown per sequence, most probable first (class outputs; default 3).")
    var topK: Int = 3
    @Option(parsing: .unconditional, help: "Sequences run together (default 64).")
    var batchSize: Int = 64
    @Flag(help: "One JSON object per input line or sequence (always for .npz): {index, labels: one ranked [{label, p}] list per label or per step} or {index, values: one list per target row}.")
    var json = false

    func run() throws {
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            guard topK >= 1 else { throw TrainingError.config("--top-k must be ≥ 1, got \(topK)") }
            guard batchSize >= 1 && batchSize <= 65536 else { throw TrainingError.config("--batch-size must be in 1…65536, got \(batchSize)") }
            let content = try Checkpoint.load(checkpoint)
            if content.config.trees != nil {
                throw TrainingError.config("\(checkpoint): a tree model reads trees, not sequences; use unroll eval --checkpoint \(checkpoint)")
            }
            guard let s = content.config.sequence else {
                throw TrainingError.config("\(checkpoint): a language model; use unroll sample --checkpoint \(checkpoint)")
            }
            let (inputs, labels) = try s.tokens ? readText(content, s) : readArrays(s)
            let longest = inputs.map { item -> Int in
                switch item {
                case .tokens(let ids): ids.count
                case .features(let x): x.count / max(s.inputDim, 1)
                }
            }.max() ?? 1
            let task = try SequenceTask(checkpoint: content, batchSize: batchSize, longestInput: max(longest, 1))
            let nonEmpty = inputs.indices.filter { i in
                switch inputs[i] { case .tokens(let ids): !ids.isEmpty; case .features(let x): !x.isEmpty }
            }
            let outputs = task.predict(nonEmpty.map { inputs[$0] })
            var results = [[Float]?](repeating: nil, count: inputs.count)
            for (k, i) in nonEmpty.enumerated() { results[i] = outputs[k] }
            let asJSON = json || !s.tokens
            for (i, result) in results.enumerated() {
                print(describe(result, index: i, label: labels[i], task: task, json: asJSON))
            }
        }
    }

    /// Lines of a text file tokenised at the checkpoint's level; unknown tokens become `<unk>`
    /// (refused if the vocabulary has none). Returns the inputs and the lines (for display).
    func readText(_ content: CheckpointContent, _ s: SequenceTaskConfig) throws -> ([SequenceInputs], [String]) {
        guard let level = s.level.flatMap(TokenLevel.init(rawValue:)) else {
            throw TrainingError.checkpoint("\(checkpoint): config: a token level (char, byte or word) for token inputs, found none")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: input)) } catch {
            throw TrainingError.data("\(input): cannot read (\(error.localizedDescription))")
        }
        let vocabulary = content.vocabulary
        var index: [String: Int32] = [:]
        for (i, token) in vocabulary.enumerated() { index[token] = Int32(i) }
        let unk = index["<unk>"]
        var lines = [UInt8](data).split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? Array(line.dropLast()) : Array(line)
        }
        if data.last == 0x0A || data.isEmpty { lines.removeLast() }
        var inputs: [SequenceInputs] = [], shown: [String] = []
        for (n, line) in lines.enumerated() {
            var ids: [Int32] = []
            if level == .byte {
                ids = line.map { Int32($0) }
            } else {
                guard let text = String(validating: line, as: UTF8.self) else {
                    throw TrainingError.data("\(input): line \(n + 1): expected UTF-8 text, found invalid bytes")
                }
                let pieces = level == .char
                    ? text.unicodeScalars.map { String(Character($0)) }
                    : text.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace }).map { String(String.UnicodeScalarView($0)) }
                for piece in pieces {
                    guard let id = index[piece] ?? unk else {
                        throw TrainingError.data("\(input): line \(n + 1): token \(quoted(piece)) is not in the checkpoint's vocabulary, which has no <unk>")
                    }
                    ids.append(id)
                }
            }
            inputs.append(.tokens(ids))
            shown.append(String(decoding: line, as: UTF8.self))
        }
        return (inputs, shown)
    }

    /// `x` (N, T, F) float features, with `lengths` (N) if present (else every sequence has T steps).
    func readArrays(_ s: SequenceTaskConfig) throws -> ([SequenceInputs], [String]) {
        let arrays = try NumPyReader.readArchive(input, names: ["x", "lengths"])
        guard let x = arrays["x"], case .floats(let values) = x.elements, x.shape.count == 3 || (x.shape.count == 2 && s.inputDim == 1) else {
            throw TrainingError.data("\(input): x: expected float features (N, T, \(s.inputDim)), found \(arrays["x"].map { "\($0.dtype) \($0.shape)" } ?? "no array x")")
        }
        let n = x.shape[0], T = x.shape[1], F = x.shape.count == 3 ? x.shape[2] : 1
        guard F == s.inputDim else {
            throw TrainingError.data("\(input): x: expected \(s.inputDim) features per step (as the checkpoint's model), found \(F)")
        }
        var lengths = [Int](repeating: T, count: n)
        if let l = arrays["lengths"] {
            guard case .integers(let ints) = l.elements, l.shape == [n] else {
                throw TrainingError.data("\(input): lengths: expected integers (\(n)), found \(l.dtype) \(l.shape)")
            }
            if let bad = ints.firstIndex(where: { $0 < 0 || $0 > T }) {
                throw TrainingError.data("\(input): lengths[\(bad)]: expected 0…\(T), found \(ints[bad])")
            }
            lengths = ints.map { Int($0) }
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError.data("\(input): x[\(bad / (T * F))][\(bad / F % T)][\(bad % F)]: expected a finite number, found \(values[bad])")
        }
        let inputs = (0..<n).map { i in SequenceInputs.features(Array(values[(i * T * F)..<((i * T + lengths[i]) * F)])) }
        return (inputs, (0..<n).map { "\($0)" })
    }

    /// One label and its probability (`--json`).
    struct RankedLabel: Encodable {
        var label: String
        var p: Double
    }

    /// One `--json` line: `labels` holds one ranked list per target (per label of a sequence, or
    /// per step of a tagger, most probable first), `values` one list per target row.
    struct PredictionLine: Encodable {
        var index: Int
        var labels: [[RankedLabel]]?
        var values: [[Float]]?
        var error: String?
    }

    /// One output line: top-k labels (classes), values, or a label per step (tagging).
    func describe(_ output: [Float]?, index: Int, label: String, task: SequenceTask, json: Bool) -> String {
        var line = PredictionLine(index: index)
        guard let output else {
            line.error = "empty sequence"
            return json ? Self.jsonText(line) : "(empty)\t\(label)"
        }
        let s = task.sequence
        let perTarget = s.outputKind == .classes ? s.numClasses * s.targetDim : s.targetDim
        let rows = output.count / max(perTarget, 1)   // steps for a tagger, else 1
        var labels: [[RankedLabel]] = [], values: [[Float]] = []
        for t in 0..<rows {
            let row = Array(output[(t * perTarget)..<((t + 1) * perTarget)])
            if s.outputKind == .values {
                values.append(row)
                continue
            }
            for k in 0..<s.targetDim {
                let logits = row[(k * s.numClasses)..<((k + 1) * s.numClasses)]
                let top = logits.max() ?? 0
                let exps = logits.map { exp(Double($0 - top)) }
                let total = exps.reduce(0, +)
                let ranked = exps.indices.sorted { exps[$0] > exps[$1] }.prefix(s.perStep ? 1 : topK)
                labels.append(ranked.map { c in
                    RankedLabel(label: c < task.classNames.count ? task.classNames[c] : "\(c)", p: exps[c] / total)
                })
            }
        }
        if json {
            if s.outputKind == .values { line.values = values } else { line.labels = labels }
            return Self.jsonText(line)
        }
        let parts = s.outputKind == .values
            ? values.map { $0.map { String(format: "%.5g", $0) }.joined(separator: " ") }
            : labels.map { ranked in
                ranked.map { s.perStep ? $0.label : "\($0.label) \(String(format: "%.3f", $0.p))" }.joined(separator: "  ")
            }
        return parts.joined(separator: s.perStep ? " " : "  |  ") + "\t\(label)"
    }

    static func jsonText(_ line: PredictionLine) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{\"index\":\(line.index),\"error\":\"unencodable\"}"
    }
}
