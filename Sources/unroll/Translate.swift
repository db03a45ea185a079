// Encoder–decoder checkpoints from the command line: `unroll translate` (one output line per input
// line, greedy or beam search), `unroll eval` on a pairs set (teacher-forced loss and perplexity,
// decoded exact match and BLEU, exact over ranks) and `unroll sample --condition` (a class-
// conditional generator: the source is one token naming the class).
import ArgumentParser
import Foundation
import UnrollData
import UnrollDistributed
import UnrollTraining

/// How outputs are decoded (`eval` and `translate` of encoder–decoder checkpoints).
struct DecodingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Beam width (1: greedy, the default).")
    var beam: Int?
    @Option(parsing: .unconditional, help: "Beam search: scores are log p / ((5 + n)/6)^α, GNMT's length penalty, n the output length with <eos> (default 0: plain log p).")
    var lengthPenalty: Double?
    @Option(parsing: .unconditional, help: "Longest output in tokens (default: twice the longest training target, plus 10).")
    var maxLength: Int?

    var given: Bool { beam != nil || lengthPenalty != nil || maxLength != nil }

    /// Checks the values; returns the beam (nil for greedy).
    func validated() throws -> Int? {
        if let beam, !(1...256).contains(beam) { throw TrainingError.config("--beam must be in 1…256, got \(beam)") }
        if let a = lengthPenalty, !(a >= 0 && a <= 10) { throw TrainingError.config("--length-penalty must be in [0, 10], got \(a)") }
        if let n = maxLength, !(1...100_000).contains(n) { throw TrainingError.config("--max-length must be in 1…100000, got \(n)") }
        return beam.flatMap { $0 > 1 ? $0 : nil }
    }
}

/// Text to token ids and back at a pairs set's level, with its vocabulary (specials first).
struct PairText {
    let vocabulary: [String]
    let level: String
    private let index: [String: Int32]

    init(vocabulary: [String], level: String) {
        self.vocabulary = vocabulary
        self.level = level
        var index: [String: Int32] = [:]
        for (i, s) in vocabulary.enumerated() where index[s] == nil { index[s] = Int32(i) }
        self.index = index
    }

    /// Ids of `text`, tokenised as `prepare pairs` does; unknown symbols become <unk>.
    func encode(_ text: String) -> [Int32] {
        PairPreparation.symbols(Array(text.utf8)[...], level: TokenLevel(rawValue: level) ?? .char)
            .map { index[$0] ?? Seq2SeqTaskConfig.unk }
    }

    /// Text of `ids` (specials dropped, except <unk>, shown as such).
    func decode(_ ids: [Int32]) -> String {
        let parts = ids.compactMap { id -> String? in
            guard id >= 0, Int(id) < vocabulary.count else { return nil }
            if id == Seq2SeqTaskConfig.bos || id == Seq2SeqTaskConfig.eos { return nil }
            return vocabulary[Int(id)]
        }
        switch level {
        case "word": return parts.joined(separator: " ")
        case "byte": return String(decoding: parts.flatMap { PairText.byteValue($0).map { [$0] } ?? Array($0.utf8) }, as: UTF8.self)
        default: return parts.joined()
        }
    }

    /// The byte a byte-level vocabulary entry names (`TextPreparation.byteTokenText`: the
    /// character itself for printable ASCII, `<0xHH>` otherwise).
    static func byteValue(_ symbol: String) -> UInt8? {
        let scalars = Array(symbol.unicodeScalars)
        if scalars.count == 1, (0x20...0x7E).contains(scalars[0].value) { return UInt8(scalars[0].value) }
        guard symbol.hasPrefix("<0x"), symbol.hasSuffix(">"), symbol.count == 6 else { return nil }
        return UInt8(symbol.dropFirst(3).dropLast(), radix: 16)
    }
}

struct Translate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an encoder–decoder checkpoint on new sources: one output line per input line.",
        discussion: examples(
            "unroll translate --checkpoint runs/reverse/best.h5 --input sources.txt",
            "unroll translate --checkpoint runs/fr-en/best.h5 --input test.fr --beam 5 --length-penalty 0.6"))

    @Option(help: "Checkpoint of an encoder–decoder (trained on a pairs set).")
    var checkpoint: String
    @Option(help: "Text file: one source per line, tokenised at the checkpoint's level (unknown symbols become <unk>); '-' reads standard input.")
    var input: String
    @Option(parsing: .unconditional, help: "Sources decoded together (greedy; default 64).")
    var batchSize: Int = 64
    @OptionGroup(title: "Decoding") var decoding: DecodingOptions

    func run() throws {
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            let beam = try decoding.validated()
            guard batchSize >= 1 && batchSize <= 65536 else { throw TrainingError.config("--batch-size must be in 1…65536, got \(batchSize)") }
            let content = try Checkpoint.load(checkpoint)
            guard let pairs = content.config.seq2seq else {
                throw TrainingError.config("\(checkpoint): not an encoder–decoder; unroll translate needs a checkpoint trained on a pairs set")
            }
            let text: String
            if input == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                guard let data = FileManager.default.contents(atPath: input) else {
                    throw TrainingError.data("\(input): cannot read the file")
                }
                guard let decoded = String(data: data, encoding: .utf8) else {
                    throw TrainingError.data("\(input): not UTF-8 text")
                }
                text = decoded
            }
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
                $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
            }
            if lines.last == "" { lines.removeLast() }
            let sourceText = PairText(vocabulary: content.taskState.strings("source_vocab") ?? [], level: pairs.level)
            let targetText = PairText(vocabulary: content.taskState.strings("target_vocab") ?? [], level: pairs.level)
            let sources = lines.map { sourceText.encode($0) }
            let task = try Seq2SeqTask(checkpoint: content, batchSize: batchSize,
                                       longestSource: max(sources.map(\.count).max() ?? 1, 1))
            let nonEmpty = sources.indices.filter { !sources[$0].isEmpty }
            let outputs = task.translate(nonEmpty.map { sources[$0] }, beam: beam,
                                         lengthPenalty: decoding.lengthPenalty ?? 0, maxLength: decoding.maxLength)
            var results = [String](repeating: "", count: sources.count)
            for (k, i) in nonEmpty.enumerated() { results[i] = targetText.decode(outputs[k]) }
            for line in results { print(line) }
        }
    }
}

extension Eval {
    /// What `eval --json` prints for an encoder–decoder.
    struct PairsReport: Encodable {
        var checkpoint: String
        var data: String
        var split: String
        var ranks: Int
        var pairs: Int
        var tokens: Int
        var lossSum: Double
        var loss: Double
        var perplexity: Double
        var tokenAccuracy: Double
        var decoding: String
        var exactMatch: Double
        var bleu: Double

        enum CodingKeys: String, CodingKey {
            case checkpoint, data, split, ranks, pairs, tokens, loss, perplexity, decoding, bleu
            case lossSum = "loss_sum", tokenAccuracy = "token_accuracy", exactMatch = "exact_match"
        }
    }

    /// Evaluates an encoder–decoder checkpoint on `split` of `path` (collective, exact for any
    /// world size): teacher-forced loss and perplexity per target token, and the decoded
    /// outputs' exact match and corpus BLEU (4-gram, brevity penalty, at the data's level).
    func evaluatePairs(_ content: CheckpointContent, path: String, _ comm: any Communicator) throws {
        let beam = try decoding.validated()
        if bptt != nil || evalStreams != nil {
            throw TrainingError.config("--bptt and --eval-streams apply to language models; encoder–decoder checkpoints evaluate whole pairs")
        }
        var config = content.config
        config.data = path
        if let problem = config.problem() { throw TrainingError.config(problem) }
        if let short = MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.trainingBytes(config, worldSize: comm.size)) {
            throw TrainingError.config("evaluating \(checkpoint) \(short)")
        }
        let task = try Seq2SeqTask(config: config, communicator: comm, forTraining: false)
        try task.copyParameters(from: content)
        try task.restore(content.taskState, file: checkpoint)
        let e = try task.evaluateFully(split: split, beam: beam, lengthPenalty: decoding.lengthPenalty ?? 0,
                                       maxLength: decoding.maxLength)
        guard comm.rank == 0 else { return }
        let how = beam.map { "beam \($0)" } ?? "greedy"
        if json {
            print(try Self.jsonText(PairsReport(checkpoint: checkpoint, data: path, split: split, ranks: comm.size,
                                                pairs: e.sequences, tokens: e.count, lossSum: e.lossSum, loss: e.meanLoss,
                                                perplexity: e.perplexity, tokenAccuracy: e.tokenAccuracy, decoding: how,
                                                exactMatch: e.exactMatch, bleu: e.bleu.score)))
            return
        }
        print("\(split): loss \(String(format: "%.6f", e.meanLoss)) | perplexity \(String(format: "%.3f", e.perplexity)) "
              + "| token accuracy \(String(format: "%.4f", e.tokenAccuracy)) | \(how): exact match "
              + "\(String(format: "%.4f", e.exactMatch)) | BLEU \(String(format: "%.2f", e.bleu.score)) "
              + "| \(e.sequences) pairs, \(e.count) tokens | \(comm.size) rank(s)")
    }
}

extension Sample {
    /// Conditional generation from an encoder–decoder whose sources are one token (a class):
    /// the decoder samples a target for `--condition`.
    func sampleConditioned(_ content: CheckpointContent) throws {
        guard let pairs = content.config.seq2seq else { return }
        guard let condition else {
            throw TrainingError.config("\(checkpoint): an encoder–decoder samples for a source; give --condition LABEL (or use unroll translate)")
        }
        if !prime.isEmpty || topK != nil {
            throw TrainingError.config("--prime and --top-k apply to language models; an encoder–decoder samples from --condition")
        }
        if pairs.longestSource > 1 {
            throw TrainingError.config("--condition needs a checkpoint trained on one-token sources (classes); \(checkpoint) has sources of up to \(pairs.longestSource) tokens: use unroll translate")
        }
        let vocabulary = content.taskState.strings("source_vocab") ?? []
        guard let id = vocabulary.firstIndex(of: condition), id > 2 else {
            let known = vocabulary.dropFirst(3).prefix(20).joined(separator: ", ")
            throw TrainingError.config("--condition \(condition): not in the source vocabulary of \(checkpoint) (known: \(known)\(vocabulary.count > 23 ? ", …" : ""))")
        }
        let task = try Seq2SeqTask(checkpoint: content, batchSize: 1, longestSource: 1)
        let out = task.model.sample(source: [Int32(id)], temperature: Float(temperature), seed: seed,
                                    bos: Seq2SeqTaskConfig.bos, eos: Seq2SeqTaskConfig.eos,
                                    maxLength: min(length, pairs.maxDecodeLength))
        print(PairText(vocabulary: content.taskState.strings("target_vocab") ?? [], level: pairs.level).decode(out))
    }
}
