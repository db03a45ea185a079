// `unroll prepare text|synthetic|sequences|pairs`: builds dataset files (HDF5, format unroll.dataset)
// from text files, a synthetic task, class text files / NumPy arrays, or tab-separated pairs. Options
// are parsed and checked here; the work is in UnrollData.
import ArgumentParser
import UnrollData
import UnrollDistributed

extension TokenLevel: ExpressibleByArgument {}
extension SyntheticTask: ExpressibleByArgument {}
extension SequenceTargetLayout: ExpressibleByArgument {}

/// `unroll prepare`: groups the dataset builders.
struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a dataset file from text, a synthetic task, or labelled sequences.",
        discussion: examples(
            "unroll prepare text --input corpus.txt --split 0.9,0.05,0.05 \\\n      --output corpus.h5",
            "unroll prepare synthetic --task parity --output parity.h5",
            "unroll prepare sequences --input reviews/ --split 0.8,0.1,0.1 \\\n      --output reviews.h5",
            "unroll prepare pairs --input pairs.tsv --level word --split 0.9,0.05,0.05 \\\n      --output pairs.h5"),
        subcommands: [PrepareText.self, PrepareSynthetic.self, PrepareSequences.self, PreparePairs.self])
}

/// `unroll prepare text`.
struct PrepareText: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text",
        abstract: "Tokenize text files into train/valid/test token streams.",
        discussion: """
            Either give --valid and --test (then --input is the training text), or --split to cut \
            the token stream of --input. The vocabulary comes from the training split only, ordered \
            by descending frequency, ties by first occurrence.
            """ + examples(
                "unroll prepare text --input train.txt --valid valid.txt --test test.txt \\\n      --level word --output ptb.h5",
                "unroll prepare text --input shakespeare.txt --split 0.9,0.05,0.05 \\\n      --output shakespeare.h5",
                "unroll prepare text --input enwik8 --split 0.9,0.05,0.05 --level byte \\\n      --output enwik8.h5"))

    @Option(help: "Training text (or the whole text with --split).")
    var input: String

    @Option(help: "Validation text.")
    var valid: String?

    @Option(help: "Test text.")
    var test: String?

    @Option(help: "Fractions TRAIN,VALID,TEST of --input's tokens, e.g. 0.9,0.05,0.05.")
    var split: String?

    @Option(help: "Token level: char (Unicode scalars), byte (V = 256) or word (whitespace, <eos> per line).")
    var level: TokenLevel

    @Option(help: "Keep at most N vocabulary entries, including the unknown token, which is then always present (default: no limit).")
    var maxVocab: Int?

    @Option(help: "Unknown token.")
    var unk: String = "<unk>"

    @Option(help: "End-of-line token (word level).")
    var eos: String = "<eos>"

    @Option(help: "Output HDF5 file (written atomically).")
    var output: String

    @Flag(help: "No progress on standard error.")
    var quiet = false

    func validate() throws {
        switch (valid, test, split) {
        case (.some, .some, nil), (nil, nil, .some): break
        default:
            throw ValidationError("give both --valid and --test, or --split (not both)")
        }
        _ = try fractions()
    }

    /// The parsed --split value, if given.
    private func fractions() throws -> [Double]? {
        try parseFractions(split)
    }

    func run() throws {
        let source: TextInput
        if let fractions = try fractions() {
            source = .split(input: input, fractions: fractions)
        } else {
            source = .files(train: input, valid: valid!, test: test!)
        }
        let options = TextPrepareOptions(level: level, maxVocab: maxVocab, unk: unk, eos: eos)
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            print(try TextPreparation.prepare(source, options: options, output: output,
                                              progress: prepareProgress("prepare text", quiet: quiet)))
        }
    }
}

/// `unroll prepare synthetic`.
struct PrepareSynthetic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synthetic",
        abstract: "Generate a synthetic dataset (deterministic per seed).",
        discussion: """
            arith: character corpus of small programs and their results (token streams). \
            parity: bit sequences → parity class (sequence classification). adding: (value, marker) \
            pairs → sum of the two marked values (Le et al. 2015; predicting 1 scores MSE 0.167). \
            copy: copy memory (Arjovsky et al. 2016): 10 symbols from 1..8, T−1 blanks, a delimiter, \
            10 blanks; a class per step, blank except the last 10 steps, which repeat the symbols \
            (memoryless baseline 10 ln 8/(T+20) nats per step). parity, adding and copy are sequence \
            sets. reverse: digit string → the string reversed; execute: a small Python program → what \
            it prints (Learning to Execute); both are source → target pairs. --length is the bit count \
            (parity), the sequence length (adding, reverse), the delay T (copy) or the digits per \
            number (execute). expr-trees: binary expression trees over the digits with + − × (mod \
            10) → the value mod 10 at the root and at every node (layout trees); --length is the \
            greatest depth (each tree draws its depth from 1...N, or --min-length...--max-length).
            """ + examples(
                "unroll prepare synthetic --task arith --seed 1 --output arith.h5",
                "unroll prepare synthetic --task parity --size 10000,1000,1000 \\\n      --min-length 5 --max-length 40 --output parity.h5",
                "unroll prepare synthetic --task adding --length 100 --output adding.h5",
                "unroll prepare synthetic --task copy --length 50 --output copy.h5",
                "unroll prepare synthetic --task execute --length 3 --nesting 2 --seed 1 \\\n      --output execute.h5",
                "unroll prepare synthetic --task expr-trees --length 4 --seed 1 --output trees.h5"))

    @Option(help: "Task: arith, parity, adding, copy, reverse, execute or expr-trees.")
    var task: SyntheticTask

    @Option(help: "Random seed.")
    var seed: UInt64

    @Option(help: "Sizes TRAIN,VALID,TEST: characters for arith (default 1000000,100000,100000), pairs for reverse/execute (default 20000,1000,1000), sequences otherwise (default 10000,1000,1000).")
    var size: String?

    @Option(help: "parity: bits (default 20); adding: steps (default 50); reverse: digits (default 5–20); copy: delay T (default 100, sequences of T+20 steps) — the same as --min-length N --max-length N; execute: digits per number, 1...9 (default \(SyntheticOptions.defaultDigits)); expr-trees: greatest tree depth, 1...12 (depths 1...N; default 1...4).")
    var length: Int?

    @Option(help: "Shortest sequence (or delay, copy) of a range (defaults as --length).")
    var minLength: Int?

    @Option(help: "Longest sequence (or delay, copy) of a range (default: the task's default, or --min-length).")
    var maxLength: Int?

    @Option(help: "execute: most operations composed in one program, 1...10; each program draws 1...N (default \(SyntheticOptions.defaultNesting)).")
    var nesting: Int?

    @Option(help: "Output HDF5 file (written atomically).")
    var output: String

    @Flag(help: "No progress on standard error.")
    var quiet = false

    func validate() throws {
        _ = try sizes()
        if length != nil && (minLength != nil || maxLength != nil) {
            throw ValidationError("--length excludes --min-length and --max-length (it sets both)")
        }
    }

    /// The parsed --size value, if given.
    private func sizes() throws -> [Int]? {
        guard let size else { return nil }
        let fields = size.split(separator: ",", omittingEmptySubsequences: false)
        let parts = fields.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard fields.count == 3, parts.count == 3 else {
            throw ValidationError("--size: expected three integers TRAIN,VALID,TEST, found \(size)")
        }
        return parts
    }

    func run() throws {
        let sizes = try sizes()
        let digits = task == .execute ? length : nil, fixed = task == .execute || task == .exprTrees ? nil : length
        // expr-trees: --length D is the greatest depth (depths 1...D).
        let deepest = task == .exprTrees ? length : nil
        let options = SyntheticOptions(task: task, seed: seed, sizes: sizes, minLength: fixed ?? (deepest != nil ? 1 : minLength),
                                       maxLength: fixed ?? deepest ?? maxLength, length: digits, nesting: nesting)
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            print(try SyntheticPreparation.prepare(options, output: output,
                                                   progress: prepareProgress("prepare synthetic", quiet: quiet)))
        }
    }
}

/// A progress hook that draws `label`'s steps on standard error (nothing with `quiet`).
func prepareProgress(_ label: String, quiet: Bool) -> PrepareProgress? {
    guard !quiet else { return nil }
    let display = ProgressDisplay(label, unit: "steps")
    return PrepareProgress { done, total, stage in display.update(done, of: total, note: stage) }
}

/// The fractions of a `--split` value, or nil when not given.
func parseFractions(_ split: String?) throws -> [Double]? {
    guard let split else { return nil }
    let fields = split.split(separator: ",", omittingEmptySubsequences: false)
    let parts = fields.compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
    guard fields.count == 3, parts.count == 3 else {
        throw ValidationError("--split: expected three fractions like 0.9,0.05,0.05, found \(split)")
    }
    return parts
}

/// `unroll prepare sequences`.
struct PrepareSequences: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sequences",
        abstract: "Build a sequence set from class text files or a NumPy .npz.",
        discussion: """
            A directory holds one UTF-8 text file per class (file name without extension = class \
            name), one sequence per line; lines are tokenized at --level and the vocabulary comes \
            from the train split (unknown tokens become --unk). An .npz holds x (N, T, F) float \
            features, optional lengths (N) and y: (N) integers → classes, (N, d) floats → values, \
            (N, T[, d]) → one target per step. --split shuffles deterministically per --seed \
            (stratified per class for directories); --valid and --test give separate inputs instead.
            """ + examples(
                "unroll prepare sequences --input reviews/ --split 0.8,0.1,0.1 \\\n      --level word --output reviews.h5",
                "unroll prepare sequences --input train.npz --valid valid.npz \\\n      --test test.npz --output signals.h5",
                "unroll prepare sequences --input tags.npz --targets step \\\n      --split 0.8,0.1,0.1 --output tags.h5"))

    @Option(help: "Directory of class text files, or an .npz (the training data with --valid/--test).")
    var input: String

    @OptionGroup var splitOptions: SplitOptions

    @Option(help: "Token level for a directory: char (Unicode scalars), byte (V = 256) or word (whitespace).")
    var level: TokenLevel?

    @Option(help: "Keep at most N vocabulary entries, the unknown token included (default: no limit).")
    var maxVocab: Int?

    @Option(help: "Unknown token (char/word levels; always in the vocabulary).")
    var unk: String = "<unk>"

    @Option(help: "How .npz targets y are read: auto, sequence (N[, d]) or step (N, T[, d]) (default auto).")
    var targets: SequenceTargetLayout = .auto

    @Option(help: "Task name stored in the file (default: the input's name without extension).")
    var task: String?

    @Option(help: "Output HDF5 file (written atomically).")
    var output: String

    @Flag(help: "No progress on standard error.")
    var quiet = false

    func run() throws {
        let splitting = try splitOptions.splitting()
        let options = SequencePrepareOptions(level: level, maxVocab: maxVocab, unk: unk, targets: targets, task: task)
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            print(try SequencePreparation.prepare(input: input, splitting: splitting, options: options, output: output,
                                                  progress: prepareProgress("prepare sequences", quiet: quiet)))
        }
    }
}

/// How `prepare sequences` and `prepare pairs` split their input: separate validation and test
/// inputs, or fractions of a seeded shuffle of --input.
struct SplitOptions: ParsableArguments {
    @Option(help: "Validation input (same kind as --input).")
    var valid: String?

    @Option(help: "Test input (same kind as --input).")
    var test: String?

    @Option(help: "Fractions TRAIN,VALID,TEST of a shuffle of --input, e.g. 0.8,0.1,0.1.")
    var split: String?

    @Option(help: "Seed of the --split shuffle (default 0).")
    var seed: UInt64 = 0

    func validate() throws {
        switch (valid, test, split) {
        case (.some, .some, nil), (nil, nil, .some): break
        default:
            throw ValidationError("give both --valid and --test, or --split (not both)")
        }
        _ = try parseFractions(split)
    }

    /// The choice made (after `validate`).
    func splitting() throws -> SequenceSplitting {
        if let fractions = try parseFractions(split) { return .fractions(fractions, seed: seed) }
        guard let valid, let test else { throw ValidationError("give both --valid and --test, or --split (not both)") }
        return .inputs(valid: valid, test: test)
    }
}

/// `unroll prepare pairs`.
struct PreparePairs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairs",
        abstract: "Build source → target pairs (sequence to sequence) from tab-separated text.",
        discussion: """
            One pair per line: source TAB target (further columns are ignored, empty lines skipped). \
            Both sides are tokenized at --level; the source and target vocabularies come from the \
            train split only and start with <unk>, <bos>, <eos> (ids 0, 1, 2). --split shuffles \
            the pairs deterministically per --seed; --valid and --test give separate files instead. \
            Pairs with a side longer than --max-length tokens are dropped and counted.
            """ + examples(
                "unroll prepare pairs --input en-fr.tsv --level word --split 0.9,0.05,0.05 \\\n      --max-length 50 --output en-fr.h5",
                "unroll prepare pairs --input train.tsv --valid valid.tsv --test test.tsv \\\n      --level char --output pairs.h5"))

    @Option(help: "Tab-separated pairs (the training pairs with --valid/--test).")
    var input: String

    @OptionGroup var splitOptions: SplitOptions

    @Option(help: "Token level: char (Unicode scalars), byte or word (whitespace).")
    var level: TokenLevel

    @Option(help: "Drop pairs with a side longer than N tokens (default: no limit).")
    var maxLength: Int?

    @Option(help: "Task name stored in the file (default: the input's name without extension).")
    var task: String?

    @Option(help: "Output HDF5 file (written atomically).")
    var output: String

    @Flag(help: "No progress on standard error.")
    var quiet = false

    func run() throws {
        let splitting = try splitOptions.splitting()
        let options = PairPrepareOptions(level: level, maxLength: maxLength, task: task)
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            print(try PairPreparation.prepare(input: input, splitting: splitting, options: options, output: output,
                                              progress: prepareProgress("prepare pairs", quiet: quiet)))
        }
    }
}
