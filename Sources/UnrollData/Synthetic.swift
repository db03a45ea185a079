// Synthetic datasets, deterministic per seed:
// - `arith`: a character corpus of tiny programs with their printed result, one per line, in the
//   spirit of Zaremba & Sutskever (2014) "Learning to Execute", e.g. `a=412;b=87;print(a+b)=499`.
// - `parity`: bit sequences → parity of the number of ones (Grosse's RNN example); class target,
//   class names "even" (0) and "odd" (1).
// - `adding`: Hochreiter & Schmidhuber's (1997) adding problem, as Le et al. (2015): (value,
//   marker) pairs → sum of the two marked values; real target.
// - `copy`: the copy memory task of Arjovsky, Shah & Bengio (2016): 10 symbols from {1..8}, T−1
//   blanks, a delimiter, 10 blanks (token inputs); a class per step, blank everywhere except the
//   last 10 steps, which must repeat the 10 symbols.
// - `reverse`, `execute`: source → target pairs (layout `pairs`, SyntheticPairs.swift).
// Each split draws from its own generator (seed mixed with the split index), so changing one
// split's size does not change the others.
import Foundation

/// Which synthetic dataset to make.
public enum SyntheticTask: String, CaseIterable, Sendable {
    case arith, parity, adding, copy
    /// Pairs: a digit string → the same string reversed.
    case reverse
    /// Pairs: a small Python program → what it prints (Zaremba & Sutskever 2014).
    case execute
    /// Trees: arithmetic expression trees over the digits with + − × → value mod 10.
    case exprTrees = "expr-trees"

    /// Whether the task writes layout `pairs`.
    public var isPairs: Bool { self == .reverse || self == .execute }
}

/// The copy memory task's alphabet: token/class 0 is the blank, 1…8 the symbols, 9 the delimiter
/// (an input only: the 9 classes are blank and the symbols).
public enum CopyTask {
    /// Symbols to remember at the start of every sequence (and to repeat at its end).
    public static let symbols = 10
    /// Input vocabulary: blank, 1…8, delimiter.
    public static let vocabulary = ["_", "1", "2", "3", "4", "5", "6", "7", "8", ":"]
    /// Class names of the targets: blank, 1…8.
    public static let classNames = ["_", "1", "2", "3", "4", "5", "6", "7", "8"]
    public static let blank: Int32 = 0, delimiter: Int32 = 9

    /// Steps of a sequence with delay T: 10 symbols, T − 1 blanks, the delimiter, 10 blanks.
    public static func sequenceLength(delay T: Int) -> Int { T + 2 * symbols }

    /// Cross-entropy per step of the memoryless strategy (blank until the delimiter, then uniform
    /// over the 8 symbols): 10 ln 8 / (T + 20) nats (Arjovsky et al. 2016).
    public static func baseline(delay T: Int) -> Double { Double(symbols) * log(8.0) / Double(sequenceLength(delay: T)) }
}

/// Options of `unroll prepare synthetic`.
public struct SyntheticOptions: Sendable {
    public var task: SyntheticTask
    public var seed: UInt64
    /// Train, valid, test sizes: characters for `arith`, sequences otherwise. Nil = defaults.
    public var sizes: [Int]?
    /// Sequence length range for `parity`/`adding`, delay T for `copy` (nil = task default).
    public var minLength: Int?
    public var maxLength: Int?
    /// `execute`: digits per number (nil = `defaultDigits`).
    public var length: Int?
    /// `execute`: most operations composed in one program (nil = `defaultNesting`).
    public var nesting: Int?

    public init(task: SyntheticTask, seed: UInt64, sizes: [Int]? = nil, minLength: Int? = nil, maxLength: Int? = nil,
                length: Int? = nil, nesting: Int? = nil) {
        self.task = task
        self.seed = seed
        self.sizes = sizes
        self.minLength = minLength
        self.maxLength = maxLength
        self.length = length
        self.nesting = nesting
    }

    /// Sizes used when `sizes` is nil.
    public static func defaultSizes(_ task: SyntheticTask) -> [Int] {
        switch task {
        case .arith: return [1_000_000, 100_000, 100_000]
        case .reverse, .execute: return [20_000, 1_000, 1_000]
        case .parity, .adding, .copy, .exprTrees: return [10_000, 1_000, 1_000]
        }
    }

    /// Length range used when none is given.
    public static func defaultLengths(_ task: SyntheticTask) -> ClosedRange<Int> {
        switch task {
        case .adding: 50...50
        case .copy: 100...100
        case .exprTrees: 1...4
        case .reverse: 5...20
        case .arith, .parity, .execute: 20...20
        }
    }

    /// `execute`: digits per number when `length` is nil.
    public static let defaultDigits = 3
    /// `execute`: most composed operations when `nesting` is nil.
    public static let defaultNesting = 2
}

/// What `SyntheticPreparation.prepare` wrote.
public enum SyntheticSummary: Sendable, CustomStringConvertible {
    case tokens(PrepareSummary)
    case sequences(output: String, task: String, counts: [String: Int], steps: [String: Int], lengths: ClosedRange<Int>)
    case pairs(PairPrepareSummary)
    case trees(output: String, task: String, counts: [String: Int], nodes: [String: Int], depths: ClosedRange<Int>)

    public var description: String {
        switch self {
        case let .tokens(summary): return summary.description
        case let .pairs(summary): return summary.description
        case let .trees(output, task, counts, nodes, depths):
            var lines = ["wrote \(output): \(task) trees, depths \(depths.lowerBound)...\(depths.upperBound)"]
            for name in DatasetFormat.splits {
                lines.append("  \(name): \(counts[name] ?? 0) trees, \(nodes[name] ?? 0) nodes")
            }
            return lines.joined(separator: "\n")
        case let .sequences(output, task, counts, steps, lengths):
            var lines = ["wrote \(output): \(task) sequences, lengths \(lengths.lowerBound)...\(lengths.upperBound)"]
            for name in DatasetFormat.splits {
                lines.append("  \(name): \(counts[name] ?? 0) sequences, \(steps[name] ?? 0) steps")
            }
            return lines.joined(separator: "\n")
        }
    }
}

/// Generates synthetic datasets.
public enum SyntheticPreparation {
    /// Generates the dataset described by `options` and writes it atomically to `output`.
    /// - Parameter progress: told of every step (generate each split, tokenize, write).
    public static func prepare(_ options: SyntheticOptions, output: String,
                               failureHook: AtomicFile.FailureHook? = nil,
                               progress: PrepareProgress? = nil) throws -> SyntheticSummary {
        let sizes = options.sizes ?? SyntheticOptions.defaultSizes(options.task)
        guard sizes.count == 3, sizes.allSatisfy({ $0 >= 1 }) else {
            throw DataError.argument(name: "--size", expected: "three positive sizes TRAIN,VALID,TEST",
                                     found: sizes.map(String.init).joined(separator: ","))
        }
        if !options.task.isPairs, options.length != nil || options.nesting != nil {
            throw DataError.argument(name: "--length/--nesting", expected: "not set for \(options.task.rawValue) (execute only)",
                                     found: "a value")
        }
        // Bytes held in memory while generating, estimated before anything is generated: the text
        // and its token ids (arith), or inputs, targets and offsets of the longest sequences.
        if options.task == .exprTrees {
            return try prepareTrees(options, sizes: sizes, output: output, failureHook: failureHook, progress: progress)
        }
        let total = options.task.isPairs ? 0 : sizes.reduce(0.0) { $0 + Double($1) }  // pairs: checked there
        let longest = options.task == .arith || options.task.isPairs ? 1.0 : Double(try lengthRange(options).upperBound)
        let perItem: Double
        switch options.task {
        case .arith, .reverse, .execute, .exprTrees: perItem = 16
        case .parity: perItem = longest * 4 + 16
        case .adding: perItem = longest * 2 * 4 + 16
        case .copy: perItem = (longest + Double(2 * CopyTask.symbols)) * 2 * 4 + 16
        }
        if let short = SystemMemory.shortfall(bytes: total * perItem) {
            let lengths = options.task == .arith ? "" : " of up to \(Int(longest)) steps"
            throw DataError.argument(name: options.task == .arith ? "--size" : "--size/--max-length",
                                     expected: "a dataset that fits in memory",
                                     found: "\(sizes.map(String.init).joined(separator: ","))\(lengths) (\(short))")
        }
        let common: [String: AttributeValue] = ["generator": .string(options.task.rawValue),
                                                "seed": .string(String(options.seed))]
        switch options.task {
        case .arith:
            if options.minLength != nil || options.maxLength != nil {
                throw DataError.argument(name: "--min-length/--max-length", expected: "not set for arith (use --size)",
                                         found: "a length")
            }
            progress.expect(3 + TextPreparation.buildSteps(texts: 3) + 1)
            let texts = (0..<3).map { s in
                var rng = splitGenerator(seed: options.seed, split: s)
                defer { progress.step("generate \(DatasetFormat.splits[s])") }
                return Array(arithCorpus(characters: sizes[s], rng: &rng).utf8)
            }
            let source = SourceInfo(name: "synthetic:arith", sha256: "")
            var (content, summary) = try TextPreparation.buildContent(
                texts: texts, origins: DatasetFormat.splits.map { "synthetic arith \($0)" },
                sources: [source, source, source], options: TextPrepareOptions(level: .char), progress: progress)
            content.extraAttributes = common
            try TokenDatasetWriter.write(content, to: output, failureHook: failureHook)
            progress.step("write \((output as NSString).lastPathComponent)")
            summary.output = output
            return .tokens(summary)
        case .parity, .adding:
            let lengths = try lengthRange(options)
            var splits: [String: SequenceSplitContent] = [:]
            progress.expect(3 + 1)
            for (s, name) in DatasetFormat.splits.enumerated() {
                defer { progress.step("generate \(name)") }
                var rng = splitGenerator(seed: options.seed, split: s)
                splits[name] = options.task == .parity
                    ? paritySplit(count: sizes[s], lengths: lengths, rng: &rng)
                    : addingSplit(count: sizes[s], lengths: lengths, rng: &rng)
            }
            var extra = common
            extra["min_length"] = .int(lengths.lowerBound)
            extra["max_length"] = .int(lengths.upperBound)
            let content = SequenceSetContent(task: options.task.rawValue, inputDim: options.task == .parity ? 1 : 2,
                                             targetDim: 1, numClasses: options.task == .parity ? 2 : 0,
                                             splits: splits, classNames: options.task == .parity ? ["even", "odd"] : [],
                                             extraAttributes: extra)
            try SequenceSetWriter.write(content, to: output, failureHook: failureHook)
            progress.step("write \((output as NSString).lastPathComponent)")
            return .sequences(output: output, task: options.task.rawValue,
                              counts: splits.mapValues { $0.offsets.count - 1 },
                              steps: splits.mapValues { Int($0.offsets.last ?? 0) }, lengths: lengths)
        case .exprTrees:
            preconditionFailure("expr-trees returned above")
        case .reverse, .execute:
            return .pairs(try preparePairs(options, sizes: sizes, output: output, failureHook: failureHook,
                                           progress: progress))
        case .copy:
            let delays = try lengthRange(options)
            var splits: [String: SequenceSplitContent] = [:]
            progress.expect(3 + 1)
            for (s, name) in DatasetFormat.splits.enumerated() {
                defer { progress.step("generate \(name)") }
                var rng = splitGenerator(seed: options.seed, split: s)
                splits[name] = copySplit(count: sizes[s], delays: delays, rng: &rng)
            }
            var extra = common
            extra["min_length"] = .int(delays.lowerBound)
            extra["max_length"] = .int(delays.upperBound)
            let content = SequenceSetContent(task: options.task.rawValue, inputDim: 1, targetDim: 1,
                                             numClasses: CopyTask.classNames.count, splits: splits,
                                             classNames: CopyTask.classNames, vocabulary: CopyTask.vocabulary,
                                             level: .char, perStep: true, extraAttributes: extra)
            try SequenceSetWriter.write(content, to: output, failureHook: failureHook)
            progress.step("write \((output as NSString).lastPathComponent)")
            let steps = (delays.lowerBound + 2 * CopyTask.symbols)...(delays.upperBound + 2 * CopyTask.symbols)
            return .sequences(output: output, task: "copy (delay T \(delays.lowerBound)...\(delays.upperBound); "
                                  + "memoryless baseline \(String(format: "%.4f", CopyTask.baseline(delay: delays.upperBound))) nats/step)",
                              counts: splits.mapValues { $0.offsets.count - 1 },
                              steps: splits.mapValues { Int($0.offsets.last ?? 0) }, lengths: steps)
        }
    }

    /// Generator for split index `split` (0 train, 1 valid, 2 test) of a dataset with `seed`.
    public static func splitGenerator(seed: UInt64, split: Int) -> Xoshiro256 {
        var mixer = SplitMix64(seed: seed ^ (0xD1B5_4A32_D192_ED03 &* UInt64(split + 1)))
        return Xoshiro256(seed: mixer.next())
    }

    static func lengthRange(_ options: SyntheticOptions) throws -> ClosedRange<Int> {
        let defaults = SyntheticOptions.defaultLengths(options.task)
        let lo = options.minLength ?? min(defaults.lowerBound, options.maxLength ?? defaults.lowerBound)
        let hi = options.maxLength ?? max(defaults.upperBound, lo)
        let least = options.task == .adding ? 2 : 1
        guard lo >= least, hi >= lo else {
            throw DataError.argument(name: options.task == .copy ? "--length (delay T)" : "--length/--min-length/--max-length",
                                     expected: "\(least) ≤ min ≤ max\(options.task == .adding ? " (two marked steps)" : "")",
                                     found: "\(lo)...\(hi)")
        }
        return lo...hi
    }

    // MARK: - parity and adding

    static func paritySplit(count: Int, lengths: ClosedRange<Int>, rng: inout Xoshiro256) -> SequenceSplitContent {
        var inputs: [Float] = []
        var offsets: [Int64] = [0]
        var targets: [Int32] = []
        for _ in 0..<count {
            let n = rng.int(in: lengths)
            var ones = 0
            for _ in 0..<n {
                let b = rng.bit()
                ones += b ? 1 : 0
                inputs.append(b ? 1 : 0)
            }
            offsets.append(Int64(inputs.count))
            targets.append(Int32(ones % 2))
        }
        return SequenceSplitContent(inputs: inputs, offsets: offsets, targets: .classes(targets))
    }

    static func addingSplit(count: Int, lengths: ClosedRange<Int>, rng: inout Xoshiro256) -> SequenceSplitContent {
        var inputs: [Float] = []
        var offsets: [Int64] = [0]
        var targets: [Float] = []
        for _ in 0..<count {
            let n = rng.int(in: lengths)
            let first = rng.below(n)
            var second = rng.below(n - 1)
            if second >= first { second += 1 }
            var sum: Float = 0
            for t in 0..<n {
                let value = rng.unitFloat()
                let marked = t == first || t == second
                if marked { sum += value }
                inputs.append(value)
                inputs.append(marked ? 1 : 0)
            }
            offsets.append(Int64(inputs.count / 2))
            targets.append(sum)
        }
        return SequenceSplitContent(inputs: inputs, offsets: offsets, targets: .values(targets))
    }

    /// Copy memory sequences: with delay T drawn from `delays`, inputs a_1…a_10 (uniform in 1…8),
    /// T − 1 blanks, the delimiter, 10 blanks (T + 20 tokens); targets blank for T + 10 steps, then
    /// a_1…a_10.
    static func copySplit(count: Int, delays: ClosedRange<Int>, rng: inout Xoshiro256) -> SequenceSplitContent {
        let K = CopyTask.symbols
        var inputs: [Int32] = []
        var offsets: [Int64] = [0]
        var targets: [Int32] = []
        for _ in 0..<count {
            let T = rng.int(in: delays)
            let symbols = (0..<K).map { _ in Int32(1 + rng.below(8)) }
            inputs += symbols
            inputs += [Int32](repeating: CopyTask.blank, count: T - 1)
            inputs.append(CopyTask.delimiter)
            inputs += [Int32](repeating: CopyTask.blank, count: K)
            targets += [Int32](repeating: CopyTask.blank, count: T + K)
            targets += symbols
            offsets.append(Int64(inputs.count))
        }
        return SequenceSplitContent(inputs: .tokens(inputs), offsets: offsets, targets: .classes(targets))
    }

    // MARK: - arith

    /// Lines of generated programs until at least `characters` characters (newlines included).
    public static func arithCorpus(characters: Int, rng: inout Xoshiro256) -> String {
        var text = ""
        text.reserveCapacity(characters + 64)
        while text.utf8.count < characters {
            text += arithProgram(rng: &rng)
            text += "\n"
        }
        return text
    }

    private static let variableNames = Array("abcdefghijklmnopqrstuvwyz").map(String.init)  // no `x`: loop variable

    /// One program and its result, e.g. `a=5;b=13;c=a*b;print(c-a)=60`.
    /// Grammar: statements joined by `;`: `v=E`, `v+=E`, `v-=E`, `for x in range(K):S`,
    /// `if E>E:S` / `if E<E:S` (S a single assignment), and finally `print(E)=R`.
    /// E uses integers, variables and `+ - *` with the usual precedence. R is the exact result.
    public static func arithProgram(rng: inout Xoshiro256) -> String {
        var names = variableNames
        func freshName() -> String { names.remove(at: rng.below(names.count)) }
        func number(_ digits: Int) -> Int { rng.int(in: 1...(digits == 1 ? 9 : digits == 2 ? 99 : 999)) }
        let addSub = ["+", "-"]
        func apply(_ a: Int, _ op: String, _ b: Int) -> Int {
            switch op {
            case "+": return a + b
            case "-": return a - b
            default: return a * b
            }
        }
        let a = freshName(), b = freshName()
        switch rng.below(6) {
        case 0:  // two variables, + or -
            let x = number(3), y = number(3), op = addSub[rng.below(2)]
            return "\(a)=\(x);\(b)=\(y);print(\(a)\(op)\(b))=\(apply(x, op, y))"
        case 1:  // two variables, *
            let x = number(2), y = number(1)
            return "\(a)=\(x);\(b)=\(y);print(\(a)*\(b))=\(x * y)"
        case 2:  // three variables
            let c = freshName()
            let x = number(2), y = number(rng.below(2) + 1)
            let op1 = ["+", "-", "*"][rng.below(3)], op2 = addSub[rng.below(2)]
            let cv = apply(x, op1, y)
            let useConst = rng.bit()
            let z = useConst ? number(2) : x
            let zText = useConst ? String(z) : a
            return "\(a)=\(x);\(b)=\(y);\(c)=\(a)\(op1)\(b);print(\(c)\(op2)\(zText))=\(apply(cv, op2, z))"
        case 3:  // loop adding a constant or a variable
            let x = number(2), k = rng.int(in: 2...5), step = number(1 + rng.below(2))
            let op = rng.bit() ? "+=" : "-="
            let total = op == "+=" ? x + k * step : x - k * step
            if rng.bit() {
                return "\(a)=\(x);for x in range(\(k)):\(a)\(op)\(step);print(\(a))=\(total)"
            }
            return "\(a)=\(x);\(b)=\(step);for x in range(\(k)):\(a)\(op)\(b);print(\(a))=\(total)"
        case 4:  // conditional update
            let x = number(2 + rng.below(2)), y = number(2 + rng.below(2))
            let less = rng.bit()
            let holds = less ? x < y : x > y
            let op = addSub[rng.below(2)]
            let updated = holds ? apply(x, op, y) : x
            return "\(a)=\(x);\(b)=\(y);if \(a)\(less ? "<" : ">")\(b):\(a)=\(a)\(op)\(b);print(\(a))=\(updated)"
        default:  // precedence: a op b*k
            let x = number(3), y = number(2), k = number(1), op = addSub[rng.below(2)]
            return "\(a)=\(x);\(b)=\(y);print(\(a)\(op)\(b)*\(k))=\(apply(x, op, y * k))"
        }
    }
}
