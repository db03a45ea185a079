// `unroll eval` (exact distributed evaluation of a checkpoint on a split) and `unroll sample`
// (text generation from a checkpoint), plus the error reporting shared by the commands.
import ArgumentParser
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels
import UnrollTraining

/// Runs `body`; on error prints one line (rank 0, or every rank if the error is rank-local) and
/// ends every rank with a non-zero status without leaving any rank in a collective.
func runReportingErrors(communicator: any Communicator, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ValidationError {
        throw error
    } catch let error as AgreedError {
        // Every rank is here together (the ranks agreed on the failure): rank 0 prints the one
        // line, and every rank ends normally with status 1, no MPI_Abort needed.
        if communicator.rank == 0 { FileHandle.standardError.write(Data("error: \(error)\n".utf8)) }
        throw ExitCode(1)
    } catch {
        if communicator.size > 1 {
            // Other ranks may be inside a collective: end the whole job now.
            communicator.abort("error: \(error)", code: 1)
        }
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Help for `--data` of `eval` and `sample`.
let dataHelp = ArgumentHelp(
    "Dataset file (default: the one the checkpoint was trained on; a relative path stored there is "
    + "looked for in the current directory, then in the checkpoint's directory and the directories above it).")

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint on a split: Σ NLL and token count summed exactly over the ranks.",
        discussion: examples(
            "unroll eval --checkpoint runs/a/best.h5",
            "mpirun -np 4 unroll eval --checkpoint runs/a/best.h5 --split valid --json",
            "unroll eval --checkpoint runs/a/latest.h5 --data moved/shakespeare.h5 \\\n      --eval-streams 1 --bptt 200"))

    @Option(help: "Checkpoint file.")
    var checkpoint: String
    @Option(help: dataHelp)
    var data: String?
    @Option(help: "Split: train, valid or test.")
    var split: String = "test"
    @Option(parsing: .unconditional, help: "Streams of the evaluation layout (default: the checkpoint's).")
    var evalStreams: Int?
    @Option(parsing: .unconditional, help: "Window length (default: the checkpoint's --bptt).")
    var bptt: Int?
    @Flag(help: "Print one JSON object (rank 0).")
    var json = false
    @Flag(help: "No progress on standard error.")
    var quiet = false
    @OptionGroup(title: "Encoder–decoder checkpoints") var decoding: DecodingOptions
    @OptionGroup(title: "Distributed") var watchdog: WatchdogOptions
    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func run() throws {
        let comm = try makeCommunicator()
        logging.install(rank: comm.rank, worldSize: comm.size)
        watchdog.apply(to: comm)
        try runReportingErrors(communicator: comm) {
            let content = try Checkpoint.load(checkpoint)
            let path = try data ?? CheckpointDataPath.resolve(stored: content.dataFile, checkpoint: checkpoint)
            if content.config.trees != nil {
                if decoding.given { throw TrainingError.config("--beam, --length-penalty and --max-length apply to encoder–decoder checkpoints") }
                if evalStreams != nil || bptt != nil {
                    throw TrainingError.config("--eval-streams and --bptt apply to language models and sequence tasks; \(checkpoint) holds a tree model")
                }
                try evaluateTrees(content, path: path, comm)
                return
            }
            if content.config.sequence != nil {
                try evaluateSequences(content, path: path, comm)
                return
            }
            if content.config.seq2seq != nil {
                try evaluatePairs(content, path: path, comm)
                return
            }
            if decoding.given { throw TrainingError.config("--beam, --length-penalty and --max-length apply to encoder–decoder checkpoints") }
            let dataset = try TokenDataset(path: path)
            guard try dataset.vocabulary() == content.vocabulary else {
                throw TrainingError.checkpoint("\(checkpoint): /vocab does not match the vocabulary of \(path)")
            }
            let streams = evalStreams ?? content.config.evalStreams, T = bptt ?? content.config.bptt
            var sized = content.config
            sized.evalStreams = streams
            sized.bptt = T
            sized.batchSize = 1
            sized.reductionGroup = 0  // evaluation sums per stream; the training batch's groups do not apply
            if let problem = sized.problem() { throw TrainingError.config(problem) }
            if let short = MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.trainingBytes(sized, worldSize: comm.size)) {
                throw TrainingError.config("evaluating with --eval-streams \(streams) --bptt \(T) \(short)")
            }
            let local = (comm.rank * streams / comm.size)..<((comm.rank + 1) * streams / comm.size)
            let arena = ParameterArena(layout: .languageModel(content.config.model))
            for view in arena.layout.views {
                if let v = content.parameters[view.name] { arena.parameters(view).update(from: v, count: view.count) }
            }
            let model = RecurrentLanguageModel(config: content.config.model, arena: arena, maxSteps: T,
                                               maxBatch: max(1, local.count))
            let display = ProgressDisplay("eval \(split)", unit: "windows", enabled: comm.rank == 0 && !quiet)
            let r = try Evaluator.evaluate(model: model, path: path, split: split, streams: streams, bptt: T,
                                           communicator: comm, progress: { display.update($0, of: $1) })
            guard comm.rank == 0 else { return }
            if json {
                print(try Self.jsonText(LanguageModelReport(checkpoint: checkpoint, data: path, split: split, tokens: r.tokens,
                                                            nllSum: r.nllSum, loss: r.meanLoss, perplexity: r.perplexity,
                                                            bitsPerToken: r.bitsPerToken, ranks: comm.size)))
            } else {
                let unit = dataset.level == .word ? "bits/word" : "bits/char"
                print("\(split): loss \(String(format: "%.6f", r.meanLoss)) | perplexity \(String(format: "%.3f", r.perplexity)) "
                      + "| \(String(format: "%.4f", r.bitsPerToken)) \(unit) | \(r.tokens) tokens | \(comm.size) rank(s)")
            }
        }
    }
}

extension Eval {
    /// What `eval --json` prints for a language model.
    struct LanguageModelReport: Codable {
        var checkpoint: String
        var data: String
        var split: String
        var tokens: Int
        var nllSum: Double
        var loss: Double
        var perplexity: Double
        var bitsPerToken: Double
        var ranks: Int

        enum CodingKeys: String, CodingKey {
            case checkpoint, data, split, tokens, loss, perplexity, ranks
            case nllSum = "nll_sum", bitsPerToken = "bits_per_token"
        }
    }

    /// One line of JSON: sorted keys, `/` unescaped, NaN and infinities as the strings "nan", "inf", "-inf".
    static func jsonText<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// What `eval --json` prints for a sequence task.
    struct SequenceReport: Encodable {
        var checkpoint: String
        var data: String
        var split: String
        var ranks: Int
        var count: Int
        var perStep: Bool
        var lossSum: Double
        var loss: Double
        var accuracy: Double?
        var macroF1: Double?
        var classes: [String]?
        var precision: [Double]?
        var recall: [Double]?
        /// confusion[target][predicted].
        var confusion: [[Int]]?
        var mse: Double?
        var mae: Double?
        /// Jordan models: the same split decoded free-running (own predictions fed back).
        var freeRunning: FreeRunningReport?

        enum CodingKeys: String, CodingKey {
            case checkpoint, data, split, ranks, count, loss, accuracy, classes, precision, recall, confusion, mse, mae
            case perStep = "per_step", lossSum = "loss_sum", macroF1 = "macro_f1", freeRunning = "free_running"
        }
    }

    /// A Jordan model's free-running figures.
    struct FreeRunningReport: Encodable {
        var loss: Double
        var accuracy: Double?
        var macroF1: Double?
        var mse: Double?
        var mae: Double?

        enum CodingKeys: String, CodingKey {
            case loss, accuracy, mse, mae
            case macroF1 = "macro_f1"
        }
    }

    /// Evaluates a sequence task's checkpoint on `split` of `path` (collective, exact for any
    /// world size): loss, and accuracy, macro F1, per-class precision and recall and the
    /// confusion matrix for classes, or MSE and MAE for values.
    /// `eval` of a tree model: loss and accuracy over the nodes its loss counts, and the roots' accuracy.
    func evaluateTrees(_ content: CheckpointContent, path: String, _ comm: any Communicator) throws {
        var config = content.config
        config.data = path
        if let problem = config.problem() { throw TrainingError.config(problem) }
        if let short = MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.trainingBytes(config, worldSize: comm.size)) {
            throw TrainingError.config("evaluating \(checkpoint) \(short)")
        }
        let task = try TreeTask(config: config, communicator: comm, forTraining: false)
        try task.copyParameters(from: content)
        try task.restore(content.taskState, file: checkpoint)
        let e = try task.evaluateFully(split: split)
        guard comm.rank == 0 else { return }
        if json {
            print(try Self.jsonText(TreeReport(checkpoint: checkpoint, data: path, split: split, ranks: comm.size, count: e.count,
                                               lossSum: e.lossSum, loss: e.meanLoss, accuracy: e.accuracy, roots: e.roots,
                                               rootAccuracy: e.rootAccuracy)))
            return
        }
        let unit = task.trees.loss == .root ? "trees" : "labelled nodes"
        print("\(split): loss \(String(format: "%.6f", e.meanLoss)) | accuracy \(String(format: "%.4f", e.accuracy)) "
              + "| root_accuracy \(String(format: "%.4f", e.rootAccuracy)) | \(e.count) \(unit) | \(comm.size) rank(s)")
    }

    /// What `eval --json` prints for a tree model.
    struct TreeReport: Codable {
        var checkpoint: String
        var data: String
        var split: String
        var ranks: Int
        var count: Int
        var lossSum: Double
        var loss: Double
        var accuracy: Double
        var roots: Int
        var rootAccuracy: Double

        enum CodingKeys: String, CodingKey {
            case checkpoint, data, split, ranks, count, loss, accuracy, roots
            case lossSum = "loss_sum", rootAccuracy = "root_accuracy"
        }
    }

    func evaluateSequences(_ content: CheckpointContent, path: String, _ comm: any Communicator) throws {
        var config = content.config
        config.data = path
        if let bptt { config.bptt = bptt }
        if let problem = config.problem() { throw TrainingError.config(problem) }
        if let short = MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.trainingBytes(config, worldSize: comm.size)) {
            throw TrainingError.config("evaluating \(checkpoint) \(short)")
        }
        let task = try SequenceTask(config: config, communicator: comm, forTraining: false)
        try task.copyParameters(from: content)
        try task.restore(content.taskState, file: checkpoint)
        let e = try task.evaluateFully(split: split)
        // A Jordan model is also decoded free-running: the loss above is teacher-forced.
        let free = task.model.jordan != nil ? try task.evaluateFully(split: split, freeRunning: true) : nil
        guard comm.rank == 0 else { return }
        let classes = !e.classNames.isEmpty
        var report = SequenceReport(checkpoint: checkpoint, data: path, split: split, ranks: comm.size, count: e.count,
                                    perStep: task.sequence.perStep, lossSum: e.lossSum, loss: e.meanLoss,
                                    accuracy: classes ? e.accuracy : nil, macroF1: classes ? e.macroF1 : nil,
                                    classes: classes ? e.classNames : nil, precision: classes ? e.precision : nil,
                                    recall: classes ? e.recall : nil, confusion: classes ? e.confusion : nil,
                                    mse: classes ? nil : e.meanSquaredError, mae: classes ? nil : e.meanAbsoluteError)
        if let free {
            report.freeRunning = FreeRunningReport(loss: free.meanLoss, accuracy: classes ? free.accuracy : nil,
                                                   macroF1: classes ? free.macroF1 : nil,
                                                   mse: classes ? nil : free.meanSquaredError,
                                                   mae: classes ? nil : free.meanAbsoluteError)
        }
        if json {
            print(try Self.jsonText(report))
            return
        }
        let unit = task.sequence.perStep ? "steps" : "sequences"
        var line = "\(split)\(free != nil ? " teacher-forced" : ""): loss \(String(format: "%.6f", e.meanLoss))"
        for m in e.metrics { line += " | \(m.name) \(String(format: "%.\(m.digits)f", m.value))" }
        print(line + " | \(e.count) \(unit) | \(comm.size) rank(s)")
        if let free {
            var line = "\(split) free-running: loss \(String(format: "%.6f", free.meanLoss))"
            for m in free.metrics { line += " | \(m.name) \(String(format: "%.\(m.digits)f", m.value))" }
            print(line + " | \(free.count) \(unit) | \(comm.size) rank(s)")
        }
        if classes {
            let width = max(8, e.classNames.map(\.count).max() ?? 0)
            func pad(_ s: String) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
            print("  \(pad("class")) precision recall  support")
            for (c, name) in e.classNames.enumerated() {
                print("  \(pad(name)) \(String(format: "%9.4f %6.4f %8d", e.precision[c], e.recall[c], e.confusion[c].reduce(0, +)))")
            }
        }
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a checkpoint.",
        discussion: examples(
            "unroll sample --checkpoint runs/a/best.h5 --prime \"ROMEO:\" --length 500",
            "unroll sample --checkpoint runs/a/best.h5 --temperature 0.5 --top-k 10 --seed 7"))

    @Option(help: "Checkpoint file.")
    var checkpoint: String
    @Option(help: dataHelp)
    var data: String?
    @Option(help: "Text to prime the model with.")
    var prime: String = ""
    @Option(parsing: .unconditional, help: "Tokens to generate.")
    var length: Int = 200
    @Option(parsing: .unconditional, help: "Softmax temperature (lower is more conservative).")
    var temperature: Double = 0.8
    @Option(parsing: .unconditional, help: "Sample only among the K most likely tokens.")
    var topK: Int?
    @Option(help: "Random seed.")
    var seed: UInt64 = 1
    @Option(help: "Encoder–decoder checkpoints trained on a one-token source (a class): the class to generate for (conditional generation, Deep Learning §10.2.4).")
    var condition: String?

    /// Longest sample: generation is one step per token, so this bounds the run time (minutes).
    static let maxLength = 10_000_000

    func run() throws {
        let comm = SingleProcessCommunicator()
        try runReportingErrors(communicator: comm) {
            if length < 0 || length > Self.maxLength { throw TrainingError.config("--length must be in 0…\(Self.maxLength), got \(length)") }
            if !(temperature > 0 && temperature.isFinite) {
                throw TrainingError.config("--temperature must be a finite number > 0, got \(temperature)")
            }
            let content = try Checkpoint.load(checkpoint)
            if content.config.seq2seq != nil {
                try sampleConditioned(content)
                return
            }
            if condition != nil {
                throw TrainingError.config("--condition applies to encoder–decoder checkpoints; \(checkpoint) holds a language model")
            }
            if content.config.trees != nil {
                throw TrainingError.config("\(checkpoint): a tree model does not generate text; evaluate it with unroll eval --checkpoint \(checkpoint)")
            }
            if content.config.sequence != nil {
                throw TrainingError.config("\(checkpoint): a sequence model does not generate text; use unroll predict --checkpoint \(checkpoint) --input FILE")
            }
            if let k = topK, !(1...content.config.model.vocabSize).contains(k) {
                throw TrainingError.config("--top-k must be in 1…\(content.config.model.vocabSize) (the vocabulary size), got \(k)")
            }
            let path = try data ?? CheckpointDataPath.resolve(stored: content.dataFile, checkpoint: checkpoint)
            let dataset = try TokenDataset(path: path)
            // The vocabulary comes from the checkpoint; the dataset supplies the level and the
            // unknown-word token, so it must be one with the same vocabulary.
            guard try dataset.vocabulary() == content.vocabulary else {
                throw TrainingError.checkpoint("\(checkpoint): /vocab does not match the vocabulary of \(path)")
            }
            let model = Sampler.model(from: content)
            let primeTokens = try Sampler.encode(prime, vocabulary: content.vocabulary, level: dataset.level, unk: dataset.unk)
            let out = Sampler.generate(model: model, prime: primeTokens, length: length, temperature: temperature,
                                       topK: topK, seed: seed)
            print(prime + Sampler.decode(out, vocabulary: content.vocabulary, level: dataset.level))
        }
    }
}

struct Baseline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cross-entropy of the unigram (train frequency) model on a split: the bar to beat.",
        discussion: examples("unroll baseline --data shakespeare.h5", "unroll baseline --data ptb.h5 --split test"))

    @Option(help: "Dataset file.")
    var data: String
    @Option(help: "Split: train, valid or test.")
    var split: String = "valid"

    func run() throws {
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            let loss = try UnigramBaseline.loss(path: data, split: split)
            print("unigram baseline on \(split): loss \(String(format: "%.4f", loss)) | perplexity "
                  + "\(String(format: "%.3f", exp(loss))) | \(String(format: "%.4f", loss / log(2))) bits/token")
        }
    }
}
