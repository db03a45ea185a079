// `unroll prepare sequences`: builds a sequence set (layout `sequences` v2) from
// - a directory with one UTF-8 text file per class (file name without extension = class name, one
//   sequence per line), tokenized at char/byte/word level with a vocabulary from the train split; or
// - a NumPy .npz with `x` (N, T, F) features, optional `lengths` (N) and `y` targets (classes,
//   values, per sequence or per step).
// Splits come from `--split` (a stratified, per-seed deterministic shuffle for directories, a plain
// shuffle for .npz) or from separate valid/test inputs. Feature statistics are computed on train.
import Foundation

/// How the input is divided into train/valid/test.
public enum SequenceSplitting: Sendable {
    /// Fractions TRAIN,VALID,TEST (sum 1) of a deterministic shuffle with `seed`.
    case fractions([Double], seed: UInt64)
    /// Separate valid and test inputs of the same kind as the training input.
    case inputs(valid: String, test: String)
}

/// Whether .npz targets are per sequence or per step.
public enum SequenceTargetLayout: String, Sendable, CaseIterable {
    /// `y` (N) or (N, d) float → per sequence; (N, T, d) → per step; (N, T) integers → per step
    /// when T is x's step count, else d labels per sequence.
    case auto
    /// `y` (N) or (N, d): one target row per sequence.
    case sequence
    /// `y` (N, T) or (N, T, d): one target row per input step.
    case step
}

/// Options of `unroll prepare sequences`.
public struct SequencePrepareOptions: Sendable {
    /// Token level for a directory of text files (required there, refused for .npz).
    public var level: TokenLevel?
    /// Limit on the vocabulary size, the unknown token included (char/word levels).
    public var maxVocab: Int?
    /// Text of the unknown token (char/word levels; always in the vocabulary there).
    public var unk: String
    /// How .npz targets are read.
    public var targets: SequenceTargetLayout
    /// Value of the `task` attribute; nil = the input's name without extension.
    public var task: String?

    public init(level: TokenLevel? = nil, maxVocab: Int? = nil, unk: String = "<unk>",
                targets: SequenceTargetLayout = .auto, task: String? = nil) {
        self.level = level
        self.maxVocab = maxVocab
        self.unk = unk
        self.targets = targets
        self.task = task
    }
}

/// What `SequencePreparation.prepare` wrote, for the summary printed by the CLI.
public struct SequencePrepareSummary: Sendable, CustomStringConvertible {
    public var output: String
    public var inputKind: SequenceInputKind
    public var inputDim: Int
    public var level: TokenLevel?
    public var vocabSize: Int
    public var targetKind: String
    public var targetDim: Int
    public var perStep: Bool
    public var classNames: [String]
    /// Sequences, steps and tokens mapped to the unknown token, per split.
    public var sequences: [String: Int]
    public var steps: [String: Int]
    public var unknown: [String: Int]
    /// Lines without a token, skipped (directories).
    public var skippedLines: Int

    public var description: String {
        let inputs = inputKind == .tokens
            ? "tokens, level \(level?.rawValue ?? "?"), vocab size \(vocabSize)"
            : "features, input_dim \(inputDim), normalization statistics from train"
        var targets = "\(perStep ? "per-step" : "per-sequence") \(targetKind) targets × \(targetDim)"
        if targetKind == "class" {
            let shown = classNames.prefix(10).map(quoted).joined(separator: ", ")
            targets += ", \(classNames.count) classes: \(shown)\(classNames.count > 10 ? ", …" : "")"
        }
        var lines = ["wrote \(output): \(inputs); \(targets)"]
        for name in DatasetFormat.splits {
            let unk = unknown[name] ?? 0
            lines.append("  \(name): \(sequences[name] ?? 0) sequences, \(steps[name] ?? 0) steps"
                         + (unk > 0 ? " (\(unk) tokens mapped to unknown)" : ""))
        }
        if skippedLines > 0 { lines.append("  \(skippedLines) empty lines skipped") }
        return lines.joined(separator: "\n")
    }
}

/// Builds sequence sets from directories of text files or NumPy archives.
public enum SequencePreparation {
    /// Reads `input` (a directory of class files, or an .npz), splits it, writes `output` atomically.
    /// - Parameter progress: told of every step (read and tokenize each input, split, write).
    /// - Throws: `DataError` (one line naming the file and field, or the option) for bad input;
    ///   nothing is written then.
    public static func prepare(input: String, splitting: SequenceSplitting, options: SequencePrepareOptions,
                               output: String, failureHook: AtomicFile.FailureHook? = nil,
                               progress: PrepareProgress? = nil) throws -> SequencePrepareSummary {
        if case let .fractions(fractions, _) = splitting { try TextPreparation.checkFractions(fractions) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
            throw DataError.posix(input, "open input", errno: ENOENT)
        }
        let task = options.task ?? ((input as NSString).lastPathComponent as NSString).deletingPathExtension
        var (content, summary): (SequenceSetContent, SequencePrepareSummary)
        if isDirectory.boolValue {
            guard let level = options.level else {
                throw DataError.argument(name: "--level", expected: "char, byte or word for a directory of text files",
                                         found: "none")
            }
            if options.targets != .auto {
                throw DataError.argument(name: "--targets", expected: "not set for a directory (one class per line)",
                                         found: options.targets.rawValue)
            }
            try TextPreparation.checkOptions(TextPrepareOptions(level: level, maxVocab: options.maxVocab, unk: options.unk))
            (content, summary) = try TextClassFiles.build(input, splitting: splitting, level: level, options: options,
                                                          progress: progress)
        } else if input.lowercased().hasSuffix(".npz") {
            if let level = options.level {
                throw DataError.argument(name: "--level", expected: "not set for .npz features", found: level.rawValue)
            }
            if let m = options.maxVocab {
                throw DataError.argument(name: "--max-vocab", expected: "not set for .npz features", found: "\(m)")
            }
            progress.expect(1)
            (content, summary) = try NumPySequences.build(input, splitting: splitting, options: options)
            progress.step("read \((input as NSString).lastPathComponent)")
        } else {
            throw DataError.argument(name: "--input", expected: "a directory of class text files or a NumPy .npz",
                                     found: quoted(input))
        }
        content.task = task
        content.extraAttributes["source"] = .string((input as NSString).lastPathComponent)
        if case let .fractions(fractions, seed) = splitting {
            content.extraAttributes["split_fractions"] = .string(fractions.map { "\($0)" }.joined(separator: ","))
            content.extraAttributes["seed"] = .string(String(seed))
        }
        progress.expect(1)
        try SequenceSetWriter.write(content, to: output, failureHook: failureHook)
        progress.step("write \((output as NSString).lastPathComponent)")
        summary.output = output
        return summary
    }

    /// Cuts `n` items at ⌊f_train·n⌋ and ⌊(f_train+f_valid)·n⌋ (as `prepare text` cuts its stream).
    static func cutPoints(_ n: Int, _ fractions: [Double]) -> (Int, Int) {
        let a = Int((fractions[0] * Double(n)).rounded(.down))
        let b = max(a, min(n, Int(((fractions[0] + fractions[1]) * Double(n)).rounded(.down))))
        return (a, b)
    }

    /// Fisher–Yates shuffle of `items` driven by `rng`.
    static func shuffle<T>(_ items: inout [T], _ rng: inout Xoshiro256) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(i, rng.below(i + 1))
        }
    }

    /// The generator for shuffling with `seed`.
    static func generator(_ seed: UInt64) -> Xoshiro256 {
        var mixer = SplitMix64(seed: seed)
        return Xoshiro256(seed: mixer.next())
    }

    /// Throws unless every split has a sequence.
    static func requireNonEmpty(_ counts: [Int], input: String, hint: String) throws {
        for (name, n) in zip(DatasetFormat.splits, counts) where n == 0 {
            throw DataError.invalid(file: input, field: "\(name) split", expected: "at least 1 sequence",
                                    found: "0 sequences (\(hint))")
        }
    }
}

// MARK: - Directory of class files

/// One text file per class, one sequence per line.
enum TextClassFiles {
    /// One non-empty line: its provisional token ids and its class.
    struct Line {
        var tokens: [Int32]
        var label: Int32
    }

    static func build(_ input: String, splitting: SequenceSplitting, level: TokenLevel,
                      options: SequencePrepareOptions,
                      progress: PrepareProgress? = nil) throws -> (SequenceSetContent, SequencePrepareSummary) {
        var interner = Interner<String>()
        var skipped = 0
        let trainFiles = try classFiles(input)
        let classNames = trainFiles.map(\.name)
        progress.expect(trainFiles.count)
        var perClass = try trainFiles.enumerated().map { c, file in
            defer { progress.step("read \(file.name)") }
            return try readLines(file.path, label: Int32(c), level: level, interner: &interner, skipped: &skipped)
        }
        var splitLines: [[Line]]
        switch splitting {
        case let .fractions(fractions, seed):
            // Stratified: every class is shuffled and cut by the fractions on its own, then each
            // split's lines are shuffled together (all with one generator, in class order).
            var rng = SequencePreparation.generator(seed)
            splitLines = [[], [], []]
            for c in perClass.indices {
                SequencePreparation.shuffle(&perClass[c], &rng)
                let (a, b) = SequencePreparation.cutPoints(perClass[c].count, fractions)
                splitLines[0] += perClass[c][0..<a]
                splitLines[1] += perClass[c][a..<b]
                splitLines[2] += perClass[c][b...]
            }
            for s in 0..<3 { SequencePreparation.shuffle(&splitLines[s], &rng) }
        case let .inputs(valid, test):
            splitLines = [perClass.flatMap { $0 }]
            let index = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, Int32($0)) })
            for dir in [valid, test] {
                var lines: [Line] = []
                for file in try classFiles(dir) {
                    guard let label = index[file.name] else {
                        throw DataError.invalid(file: file.path, field: "class",
                                                expected: "a class of the training directory (\(classNames.map(quoted).joined(separator: ", ")))",
                                                found: quoted(file.name))
                    }
                    lines += try readLines(file.path, label: label, level: level, interner: &interner, skipped: &skipped)
                }
                splitLines.append(lines)
            }
        }
        try SequencePreparation.requireNonEmpty(splitLines.map(\.count), input: input,
                                                hint: "give more lines per class or other --split fractions")

        // Vocabulary from train: descending frequency, ties by first occurrence in train.
        let unitTexts = level == .byte ? (0..<256).map(TextPreparation.byteTokenText) : interner.keys
        var counts = [Int](repeating: 0, count: unitTexts.count)
        var firstSeen = [Int](repeating: Int.max, count: unitTexts.count)
        var position = 0
        for line in splitLines[0] {
            for t in line.tokens {
                counts[Int(t)] += 1
                if firstSeen[Int(t)] == Int.max { firstSeen[Int(t)] = position }
                position += 1
            }
        }
        var vocabulary: [Int]  // provisional ids in final order; -1 marks the added unknown token
        if level == .byte {
            vocabulary = Array(0..<256)
        } else {
            let ordered = (0..<unitTexts.count).filter { counts[$0] > 0 }
                .sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : firstSeen[$0] < firstSeen[$1] }
            let unkAt = ordered.firstIndex { unitTexts[$0] == options.unk }
            let limit = options.maxVocab ?? Int.max
            if let unkAt, unkAt < limit {
                vocabulary = Array(ordered.prefix(limit))
            } else {
                vocabulary = Array(ordered.filter { unitTexts[$0] != options.unk }.prefix(limit - 1)) + [-1]
            }
        }
        var finalID = [Int32](repeating: -1, count: unitTexts.count)
        for (id, p) in vocabulary.enumerated() where p >= 0 { finalID[p] = Int32(id) }
        let vocabTexts = vocabulary.map { $0 >= 0 ? unitTexts[$0] : options.unk }
        let unkID = level == .byte ? Int32(-1) : Int32(vocabTexts.firstIndex(of: options.unk)!)

        var splits: [String: SequenceSplitContent] = [:]
        var unknown: [String: Int] = [:]
        for (s, name) in DatasetFormat.splits.enumerated() {
            var ids: [Int32] = []
            var offsets: [Int64] = [0]
            var missing = 0
            for line in splitLines[s] {
                for t in line.tokens {
                    let id = finalID[Int(t)]
                    if id < 0 { missing += 1 }
                    ids.append(id < 0 ? unkID : id)
                }
                offsets.append(Int64(ids.count))
            }
            splits[name] = SequenceSplitContent(inputs: .tokens(ids), offsets: offsets,
                                                targets: .classes(splitLines[s].map(\.label)))
            unknown[name] = missing
        }
        let content = SequenceSetContent(task: "", inputDim: 1, targetDim: 1, numClasses: classNames.count,
                                         splits: splits, classNames: classNames, vocabulary: vocabTexts, level: level,
                                         unk: level == .byte ? nil : options.unk)
        let summary = SequencePrepareSummary(
            output: "", inputKind: .tokens, inputDim: 1, level: level, vocabSize: vocabTexts.count, targetKind: "class",
            targetDim: 1, perStep: false, classNames: classNames, sequences: splits.mapValues { $0.offsets.count - 1 },
            steps: splits.mapValues { Int($0.offsets.last!) }, unknown: unknown, skippedLines: skipped)
        return (content, summary)
    }

    /// The class files of `dir`: regular files not starting with ".", sorted by class name (byte
    /// order); class name = file name without its extension. Two files with one name are refused.
    static func classFiles(_ dir: String) throws -> [(name: String, path: String)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError.invalid(file: dir, field: "directory", expected: "a directory of class text files",
                                    found: "not a directory")
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: dir)
        } catch {
            throw DataError.posix(dir, "list directory")
        }
        var files: [(name: String, path: String)] = []
        var byName: [String: String] = [:]
        for entry in entries.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        where !entry.hasPrefix(".") {
            let path = (dir as NSString).appendingPathComponent(entry)
            var info = stat()
            guard stat(path, &info) == 0 else { throw DataError.posix(path, "stat input") }
            guard (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let name = (entry as NSString).deletingPathExtension
            if let other = byName[name] {
                throw DataError.invalid(file: path, field: "class name", expected: "one file per class",
                                        found: "\(quoted(name)) also from \((other as NSString).lastPathComponent)")
            }
            byName[name] = path
            files.append((name, path))
        }
        files.sort { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        guard !files.isEmpty else {
            throw DataError.invalid(file: dir, field: "directory", expected: "one text file per class", found: "no files")
        }
        return files
    }

    /// The non-empty lines of `path` ("\n"-separated, a trailing "\r" removed) as provisional
    /// token ids (byte level: the byte values).
    static func readLines(_ path: String, label: Int32, level: TokenLevel, interner: inout Interner<String>,
                          skipped: inout Int) throws -> [Line] {
        let bytes = try TextPreparation.readFile(path)
        if level != .byte {
            guard String(validating: bytes, as: UTF8.self) != nil else {
                throw DataError.invalid(file: path, field: "text", expected: "UTF-8 (or use --level byte)",
                                        found: "invalid UTF-8")
            }
        }
        var lines: [Line] = []
        var lineNumber = 0
        var pieces = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if bytes.last == 0x0A || bytes.isEmpty { pieces.removeLast() }  // after a final "\n": not a line
        for raw in pieces {
            lineNumber += 1
            let line = raw.last == 0x0D ? raw.dropLast() : raw
            var tokens: [Int32]
            switch level {
            case .byte:
                tokens = line.map { Int32($0) }
            case .char, .word:
                if line.contains(0) {
                    throw DataError.invalid(file: path, field: "line \(lineNumber)",
                                            expected: "text without NUL (or use --level byte)", found: "a NUL byte")
                }
                let text = String(decoding: line, as: UTF8.self)
                if level == .char {
                    tokens = text.unicodeScalars.map { interner.id(String(Character($0))) }
                } else {
                    tokens = text.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace })
                        .map { interner.id(String(String.UnicodeScalarView($0))) }
                }
            }
            if tokens.isEmpty {
                skipped += 1
                continue
            }
            lines.append(Line(tokens: tokens, label: label))
        }
        guard !lines.isEmpty else {
            throw DataError.invalid(file: path, field: "lines", expected: "at least one non-empty line (one sequence per line)",
                                    found: bytes.isEmpty ? "an empty class file" : "only empty lines")
        }
        return lines
    }
}

// MARK: - NumPy archives

/// `x` (N, T, F) or (N, T) features, optional `lengths` (N), `y` targets.
enum NumPySequences {
    /// One archive's sequences: rows (steps, F), offsets, and target rows (N or steps, d).
    struct Part {
        var rows: [Float]
        var offsets: [Int64]
        var classIDs: [Int64]?
        var values: [Float]?
        var featureDim: Int
        var targetDim: Int
        var perStep: Bool
        var path: String
    }

    static func build(_ input: String, splitting: SequenceSplitting,
                      options: SequencePrepareOptions) throws -> (SequenceSetContent, SequencePrepareSummary) {
        var parts: [Part]
        switch splitting {
        case let .fractions(fractions, seed):
            let whole = try read(input, layout: options.targets)
            let n = whole.offsets.count - 1
            var order = Array(0..<n)
            var rng = SequencePreparation.generator(seed)
            SequencePreparation.shuffle(&order, &rng)
            let (a, b) = SequencePreparation.cutPoints(n, fractions)
            parts = [order[0..<a], order[a..<b], order[b...]].map { select(whole, Array($0)) }
        case let .inputs(valid, test):
            parts = try [input, valid, test].map { try read($0, layout: options.targets) }
        }
        try SequencePreparation.requireNonEmpty(parts.map { $0.offsets.count - 1 }, input: input,
                                                hint: "give more sequences or other --split fractions")
        let first = parts[0]
        for part in parts.dropFirst() {
            guard part.featureDim == first.featureDim, part.targetDim == first.targetDim, part.perStep == first.perStep,
                  (part.classIDs == nil) == (first.classIDs == nil) else {
                throw DataError.invalid(file: part.path, field: "x/y",
                                        expected: "features × \(first.featureDim), \(first.classIDs == nil ? "value" : "class") targets × \(first.targetDim) like \(first.path)",
                                        found: "features × \(part.featureDim), \(part.classIDs == nil ? "value" : "class") targets × \(part.targetDim)")
            }
        }
        let numClasses = first.classIDs == nil ? 0 : Int(parts.map { $0.classIDs!.max() ?? 0 }.max()!) + 1
        var splits: [String: SequenceSplitContent] = [:]
        for (name, part) in zip(DatasetFormat.splits, parts) {
            let targets: SequenceTargets = part.classIDs.map { .classes($0.map { Int32($0) }) } ?? .values(part.values!)
            splits[name] = SequenceSplitContent(inputs: .features(part.rows), offsets: part.offsets, targets: targets)
        }
        let stats = FeatureNormalization.statistics(of: parts[0].rows, dim: first.featureDim)
        let classNames = (0..<numClasses).map(String.init)
        let content = SequenceSetContent(task: "", inputDim: first.featureDim, targetDim: first.targetDim,
                                         numClasses: numClasses, splits: splits, classNames: classNames,
                                         perStep: first.perStep, normalization: stats)
        let summary = SequencePrepareSummary(
            output: "", inputKind: .features, inputDim: first.featureDim, level: nil, vocabSize: 0,
            targetKind: first.classIDs == nil ? "value" : "class", targetDim: first.targetDim, perStep: first.perStep,
            classNames: classNames, sequences: splits.mapValues { $0.offsets.count - 1 },
            steps: splits.mapValues { Int($0.offsets.last!) }, unknown: [:], skippedLines: 0)
        return (content, summary)
    }

    /// The sequences `indices` of `part`, in that order.
    static func select(_ part: Part, _ indices: [Int]) -> Part {
        var out = Part(rows: [], offsets: [0], classIDs: part.classIDs.map { _ in [] }, values: part.values.map { _ in [] },
                       featureDim: part.featureDim, targetDim: part.targetDim, perStep: part.perStep, path: part.path)
        let f = part.featureDim, d = part.targetDim
        for i in indices {
            let lo = Int(part.offsets[i]), hi = Int(part.offsets[i + 1])
            out.rows += part.rows[(lo * f)..<(hi * f)]
            out.offsets.append(out.offsets.last! + Int64(hi - lo))
            let targetRange = part.perStep ? (lo * d)..<(hi * d) : (i * d)..<((i + 1) * d)
            if let ids = part.classIDs { out.classIDs! += ids[targetRange] }
            if let values = part.values { out.values! += values[targetRange] }
        }
        return out
    }

    /// Largest number of classes an .npz may imply (its names are stored).
    static let maxClasses = 1 << 20

    /// Reads and checks one archive.
    static func read(_ path: String, layout: SequenceTargetLayout) throws -> Part {
        let arrays = try NumPyReader.readArchive(path, names: ["x", "y", "lengths"])
        func bad(_ field: String, _ expected: String, _ found: String) -> DataError {
            DataError.invalid(file: path, field: field, expected: expected, found: found)
        }
        guard let x = arrays["x"] else { throw bad("x", "an array x (N, T, F) of features", "missing") }
        guard let y = arrays["y"] else { throw bad("y", "an array y of targets", "missing") }
        guard case let .floats(xs) = x.elements, x.shape.count == 2 || x.shape.count == 3 else {
            throw bad("x", "float32 or float64 features (N, T, F) or (N, T)", "'\(x.dtype)' shape \(x.shape)")
        }
        let n = x.shape[0], t = x.shape[1], f = x.shape.count == 3 ? x.shape[2] : 1
        guard n >= 1, t >= 1, f >= 1 else { throw bad("x", "N, T, F ≥ 1", "shape \(x.shape)") }
        var lengths = [Int](repeating: t, count: n)
        if let l = arrays["lengths"] {
            guard case let .integers(ls) = l.elements, l.shape == [n] else {
                throw bad("lengths", "integers (\(n)) (N of x)", "'\(l.dtype)' shape \(l.shape)")
            }
            if let i = ls.firstIndex(where: { $0 < 1 || $0 > Int64(t) }) {
                throw bad("lengths[\(i)]", "1...\(t) (T of x; no empty sequence)", "\(ls[i])")
            }
            lengths = ls.map { Int($0) }
        }
        // Targets: which layout.
        let perStep: Bool
        switch layout {
        case .sequence: perStep = false
        case .step: perStep = true
        case .auto:
            perStep = y.shape.count == 3 || (y.shape.count == 2 && !y.isFloat && y.shape[1] == t)
        }
        let d: Int
        if perStep {
            guard (y.shape.count == 2 || y.shape.count == 3), y.shape[0] == n, y.shape[1] == t else {
                throw bad("y", "per-step targets (\(n), \(t)[, d]) matching x (N, T)", "shape \(y.shape)")
            }
            d = y.shape.count == 3 ? y.shape[2] : 1
        } else {
            guard (y.shape.count == 1 || y.shape.count == 2), y.shape[0] == n else {
                throw bad("y", "targets (\(n)) or (\(n), d) matching x (N)", "shape \(y.shape)")
            }
            d = y.shape.count == 2 ? y.shape[1] : 1
        }
        guard d >= 1 else { throw bad("y", "d ≥ 1", "shape \(y.shape)") }

        var part = Part(rows: [], offsets: [0], classIDs: y.isFloat ? nil : [], values: y.isFloat ? [] : nil,
                        featureDim: f, targetDim: d, perStep: perStep, path: path)
        part.rows.reserveCapacity(lengths.reduce(0, +) * f)
        for i in 0..<n {
            let start = i * t * f
            let row = xs[start..<(start + lengths[i] * f)]
            if let bad = row.firstIndex(where: { !$0.isFinite }) {
                let k = bad - start
                let index = x.shape.count == 3 ? "x[\(i), \(k / f), \(k % f)]" : "x[\(i), \(k)]"
                throw DataError.invalid(file: path, field: index, expected: "a finite value (as float32)", found: "\(xs[bad])")
            }
            part.rows += row
            part.offsets.append(part.offsets.last! + Int64(lengths[i]))
            let range = perStep ? (i * t * d)..<((i * t + lengths[i]) * d) : (i * d)..<((i + 1) * d)
            switch y.elements {
            case let .integers(ids):
                if let bad = ids[range].firstIndex(where: { $0 < 0 || $0 >= Int64(maxClasses) }) {
                    throw DataError.invalid(file: path, field: "y\(elementIndex(bad, y.shape))",
                                            expected: "a class id in 0..<\(maxClasses) (labels out of range)",
                                            found: "\(ids[bad])")
                }
                part.classIDs! += ids[range]
            case let .floats(values):
                if let bad = values[range].firstIndex(where: { !$0.isFinite }) {
                    throw DataError.invalid(file: path, field: "y\(elementIndex(bad, y.shape))",
                                            expected: "a finite value (as float32)", found: "\(values[bad])")
                }
                part.values! += values[range]
            }
        }
        return part
    }

    /// `[i, j, k]` for flat index `flat` of an array of `shape`.
    static func elementIndex(_ flat: Int, _ shape: [Int]) -> String {
        var rest = flat
        var index: [Int] = []
        for size in shape.reversed() {
            index.append(rest % max(size, 1))
            rest /= max(size, 1)
        }
        return "[" + index.reversed().map(String.init).joined(separator: ", ") + "]"
    }
}
