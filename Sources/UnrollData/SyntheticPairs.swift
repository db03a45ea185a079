// Synthetic sequence-to-sequence tasks (layout `pairs`, character level), deterministic per seed:
// - `reverse`: a random digit string (length 5–20 by default) → the same string reversed.
// - `execute`: Zaremba & Sutskever (2014), "Learning to Execute": a small Python program → what it
//   prints. Programs compose additions/subtractions, multiplications by small numbers, variable
//   assignments, if-statements and for-loops over small ranges (`--nesting` operations at most) on
//   numbers of `--length` digits, and end with `print(...)`; they are valid Python 3, evaluated
//   exactly here with overflow-checked Int arithmetic (a program that would overflow is redrawn).
import Foundation

extension SyntheticPreparation {
    /// Largest `--length` for `execute` (numbers stay far from Int overflow at a few operations).
    static let executeDigits = 1...9
    /// Range of `--nesting` for `execute`.
    static let executeNesting = 1...10

    /// Generates `reverse` or `execute` pairs and writes the pair file.
    static func preparePairs(_ options: SyntheticOptions, sizes: [Int], output: String,
                             failureHook: AtomicFile.FailureHook?, progress: PrepareProgress?) throws -> PairPrepareSummary {
        var extra: [String: AttributeValue] = ["generator": .string(options.task.rawValue),
                                               "seed": .string(String(options.seed))]
        let generate: (inout Xoshiro256) -> (source: String, target: String)
        let longest: Int
        if options.task == .reverse {
            if options.length != nil || options.nesting != nil {
                throw DataError.argument(name: "--length/--nesting", expected: "not set for reverse (use --min-length/--max-length)",
                                         found: "a value")
            }
            let lengths = try lengthRange(options)
            extra["min_length"] = .int(lengths.lowerBound)
            extra["max_length"] = .int(lengths.upperBound)
            generate = { reversePair(lengths: lengths, rng: &$0) }
            longest = lengths.upperBound
        } else {
            if options.minLength != nil || options.maxLength != nil {
                throw DataError.argument(name: "--min-length/--max-length", expected: "not set for execute (use --length/--nesting)",
                                         found: "a length")
            }
            let digits = options.length ?? SyntheticOptions.defaultDigits
            let nesting = options.nesting ?? SyntheticOptions.defaultNesting
            guard executeDigits.contains(digits) else {
                throw DataError.argument(name: "--length", expected: "\(executeDigits.lowerBound)...\(executeDigits.upperBound) digits per number",
                                         found: "\(digits)")
            }
            guard executeNesting.contains(nesting) else {
                throw DataError.argument(name: "--nesting", expected: "\(executeNesting.lowerBound)...\(executeNesting.upperBound) operations",
                                         found: "\(nesting)")
            }
            extra["length"] = .int(digits)
            extra["nesting"] = .int(nesting)
            generate = { executeProgram(digits: digits, nesting: nesting, rng: &$0) }
            longest = nesting * (40 + 2 * digits)
        }
        // Pairs and their symbol ids held while generating: about 48 bytes per character.
        let total = sizes.reduce(0.0) { $0 + Double($1) }
        if let short = SystemMemory.shortfall(bytes: total * (Double(longest) * 2 * 48 + 64)) {
            throw DataError.argument(name: "--size", expected: "a dataset that fits in memory",
                                     found: "\(sizes.map(String.init).joined(separator: ",")) (\(short))")
        }
        progress.expect(3 + 2)
        var corpus = PairCorpus()
        for s in 0..<3 {
            var rng = splitGenerator(seed: options.seed, split: s)
            var pairs: [PairCorpus.Pair] = []
            pairs.reserveCapacity(sizes[s])
            for _ in 0..<sizes[s] {
                let (source, target) = generate(&rng)
                pairs.append(corpus.pair(source: source.unicodeScalars.map { String(Character($0)) },
                                         target: target.unicodeScalars.map { String(Character($0)) }))
            }
            corpus.splits.append(pairs)
            progress.step("generate \(DatasetFormat.splits[s])")
        }
        var (content, summary) = PairPreparation.content(corpus, level: .char, task: options.task.rawValue)
        progress.step("vocabularies")
        content.extraAttributes = extra
        try PairSetWriter.write(content, to: output, failureHook: failureHook)
        progress.step("write \((output as NSString).lastPathComponent)")
        summary.output = output
        return summary
    }

    /// A `reverse` pair: digits of a length drawn from `lengths`, and the same digits reversed.
    static func reversePair(lengths: ClosedRange<Int>, rng: inout Xoshiro256) -> (source: String, target: String) {
        let digits = (0..<rng.int(in: lengths)).map { _ in Character(String(rng.below(10))) }
        return (String(digits), String(digits.reversed()))
    }

    /// An `execute` pair: a program of 1...`nesting` composed operations (uniformly, as the paper's
    /// mixed curriculum) on numbers of up to `digits` digits, and its printed output. Lines are
    /// joined by "\n", blocks indented by two spaces.
    static func executeProgram(digits: Int, nesting: Int, rng: inout Xoshiro256) -> (source: String, target: String) {
        while true {
            var program = ExecuteProgram(digits: digits)
            let depth = rng.int(in: 1...nesting)
            if case let (text, value)? = program.expression(depth: depth, rng: &rng) {
                let source = (program.lines + ["print(\(text))"]).joined(separator: "\n")
                return (source, String(value))
            }
            // Overflowed Int (only possible with many digits and multiplications): draw again.
        }
    }
}

/// One `execute` program under construction: statements so far and the variables still free.
struct ExecuteProgram {
    let digits: Int
    /// Statements before the final print, one per line.
    var lines: [String] = []
    /// Names not yet used (`x` is the loop variable).
    var names = Array("abcdefghijklmnopqrstuvwyz").map(String.init)

    init(digits: Int) { self.digits = digits }

    /// A number of up to `digits` digits, uniform in 1 ..< 10^digits (as in the paper).
    func number(_ rng: inout Xoshiro256) -> Int {
        var limit = 1
        for _ in 0..<digits { limit *= 10 }
        return rng.int(in: 1...(limit - 1))
    }

    /// A small factor or loop count: 2...4·digits (the paper's "small" operands).
    func small(_ rng: inout Xoshiro256) -> Int { rng.int(in: 2...max(2, 4 * digits)) }

    mutating func fresh(_ rng: inout Xoshiro256) -> String { names.remove(at: rng.below(names.count)) }

    /// An expression of `depth` composed operations: its text and exact value, adding any
    /// statements it needs to `lines`; nil if a value overflows Int.
    mutating func expression(depth: Int, rng: inout Xoshiro256) -> (String, Int)? {
        if depth == 0 {
            let n = number(&rng)
            return (String(n), n)
        }
        guard case let (inner, value)? = expression(depth: depth - 1, rng: &rng) else { return nil }
        switch rng.below(6) {
        case 0:  // addition or subtraction with a number, either side
            let n = number(&rng), plus = rng.bit(), numberFirst = rng.bit()
            let op = plus ? "+" : "-"
            let result = numberFirst ? (plus ? Self.add(n, value) : Self.subtract(n, value))
                                     : (plus ? Self.add(value, n) : Self.subtract(value, n))
            return result.map { (numberFirst ? "(\(n)\(op)\(inner))" : "(\(inner)\(op)\(n))", $0) }
        case 1:  // multiplication by a small number
            let k = small(&rng)
            return Self.multiply(value, k).map { ("(\(inner)*\(k))", $0) }
        case 2:  // assignment
            let v = fresh(&rng)
            lines.append("\(v)=\(inner)")
            return (v, value)
        case 3:  // if-statement updating a variable
            let v = fresh(&rng), c = number(&rng), n = number(&rng)
            let less = rng.bit(), plus = rng.bit()
            lines.append("\(v)=\(inner)")
            lines.append("if \(v)\(less ? "<" : ">")\(c):")
            lines.append("  \(v)\(plus ? "+=" : "-=")\(n)")
            guard less ? value < c : value > c else { return (v, value) }
            return (plus ? Self.add(value, n) : Self.subtract(value, n)).map { (v, $0) }
        case 4:  // for-loop over a small range
            let v = fresh(&rng), k = small(&rng), n = number(&rng), plus = rng.bit()
            lines.append("\(v)=\(inner)")
            lines.append("for x in range(\(k)):")
            lines.append("  \(v)\(plus ? "+=" : "-=")\(n)")
            guard let step = Self.multiply(k, n) else { return nil }
            return (plus ? Self.add(value, step) : Self.subtract(value, step)).map { (v, $0) }
        default:  // conditional expression
            let a = number(&rng), b = number(&rng), other = number(&rng), innerFirst = rng.bit()
            let holds = a < b
            let text = innerFirst ? "(\(inner) if \(a)<\(b) else \(other))" : "(\(other) if \(a)<\(b) else \(inner))"
            return (text, holds == innerFirst ? value : other)
        }
    }

    static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }

    static func subtract(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.subtractingReportingOverflow(b)
        return o ? nil : r
    }

    static func multiply(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }
}
