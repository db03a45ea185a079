// Tests of the synthetic pair tasks: `reverse` targets are their sources reversed, `execute` targets
// are what the programs print, recomputed by an independent interpreter written here (and by
// python3 itself when it is installed), hand-written programs, determinism per seed, options.
import Foundation
import Testing
@testable import UnrollData

@Suite struct SyntheticPairsTests {
    /// The text of every pair of `split` as (source, target) strings.
    static func texts(_ set: PairSet, _ name: String) throws -> [(String, String)] {
        let split = try set.split(name)
        return (0..<split.count).map { i in
            (split.source(i).map { set.sourceVocabulary[Int($0)] }.joined(),
             split.target(i).map { set.targetVocabulary[Int($0)] }.joined())
        }
    }

    @Test func reverseTargetsAreTheSourcesReversed() throws {
        let dir = try TempDir()
        let summary = try SyntheticPreparation.prepare(SyntheticOptions(task: .reverse, seed: 3, sizes: [500, 50, 40]),
                                                       output: dir.file("r.h5"))
        guard case let .pairs(s) = summary else {
            Issue.record("reverse must write pairs")
            return
        }
        #expect(s.pairs == ["train": 500, "valid": 50, "test": 40] && s.level == .char)
        let set = try PairSet(path: dir.file("r.h5"))
        #expect(set.task == "reverse" && set.level == .char && set.sourceVocabulary.count == 13)
        #expect(set.longestSource <= 20 && set.longestTarget <= 20)
        var lengths = Set<Int>()
        for name in DatasetFormat.splits {
            for (source, target) in try Self.texts(set, name) {
                #expect(String(source.reversed()) == target)
                #expect(source.allSatisfy { $0.isNumber })
                lengths.insert(source.count)
            }
        }
        #expect(lengths == Set(5...20))
        #expect(SyntheticOptions.defaultSizes(.reverse) == [20_000, 1_000, 1_000])
        #expect(SyntheticOptions.defaultSizes(.execute) == [20_000, 1_000, 1_000])
    }

    @Test(arguments: [SyntheticTask.reverse, .execute])
    func sameSeedGivesSameBytesAndOtherSeedsDiffer(task: SyntheticTask) throws {
        let dir = try TempDir()
        let make = { (seed: UInt64, name: String) throws -> Data in
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: task, seed: seed, sizes: [200, 20, 20]),
                                                 output: dir.file(name))
            return try Data(contentsOf: URL(fileURLWithPath: dir.file(name)))
        }
        let a = try make(11, "a.h5"), b = try make(11, "b.h5"), c = try make(12, "c.h5")
        #expect(a == b && a != c)
    }

    @Test(arguments: [(3, 2), (2, 1), (4, 3), (9, 6)])
    func executeTargetsAreWhatTheProgramsPrint(digits: Int, nesting: Int) throws {
        let dir = try TempDir()
        _ = try SyntheticPreparation.prepare(
            SyntheticOptions(task: .execute, seed: 7, sizes: [300, 20, 20], length: digits, nesting: nesting),
            output: dir.file("e.h5"))
        let set = try PairSet(path: dir.file("e.h5"))
        #expect(set.task == "execute" && set.attributes().contains { $0 == ("nesting", "\(nesting)") })
        let pairs = try Self.texts(set, "train")
        var kinds = Set<String>()
        for (source, target) in pairs {
            #expect(try ExecuteInterpreter.run(source) == Int(target), "\(source)\n→ \(target)")
            for (kind, marker) in [("for", "for x in range("), ("if", "\nif "), ("ternary", " else "), ("mul", "*"),
                                   ("assign", "=")] where source.contains(marker) {
                kinds.insert(kind)
            }
        }
        if nesting >= 2 { #expect(kinds == ["for", "if", "ternary", "mul", "assign"]) }
        try Self.checkWithPython(pairs)
    }

    /// Runs every program with python3 and compares what it prints (skipped without python3).
    static func checkWithPython(_ pairs: [(String, String)]) throws {
        let dir = try TempDir()
        let data = try JSONSerialization.data(withJSONObject: pairs.map { [$0.0, $0.1] })
        try data.write(to: URL(fileURLWithPath: dir.file("pairs.json")))
        let script = """
            import json, io, contextlib, sys
            bad = 0
            for source, target in json.load(open("pairs.json")):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(source, {})
                if out.getvalue() != target + "\\n":
                    bad += 1
                    print(repr(source), "printed", repr(out.getvalue()), "expected", repr(target), file=sys.stderr)
            sys.exit(1 if bad else 0)
            """
        let status: Int32, output: String
        do {
            (status, output) = try runProcess(["python3", "-c", script], in: dir.path)
        } catch {
            print("SKIPPED python3 check of execute programs: cannot run python3: \(error)")
            return
        }
        if status == 127 {
            print("SKIPPED python3 check of execute programs: no python3")
            return
        }
        #expect(status == 0, "\(output)")
    }

    @Test func handWrittenProgramsRunAsPythonDoes() throws {
        let programs: [(String, Int)] = [
            ("f=(837*6)\nfor x in range(9):\n  f+=379\nprint((f-116))", 8317),
            ("a=12\nif a<20:\n  a-=30\nprint(a)", -18),
            ("a=12\nif a>20:\n  a-=30\nprint(a)", 12),
            ("print((5 if 3<4 else 9))", 5),
            ("print((5 if 4<3 else (2+7*3)))", 23),
            ("b=(100-(7*3))\nc=b\nprint(((c*2)+b))", 237),
        ]
        for (program, value) in programs {
            #expect(try ExecuteInterpreter.run(program) == value, "\(program)")
        }
        try Self.checkWithPython(programs.map { ($0.0, String($0.1)) })
    }

    @Test func generatedProgramsOnlyUseTheGrammar() {
        var rng = Xoshiro256(seed: 1)
        for _ in 0..<200 {
            let (source, target) = SyntheticPreparation.executeProgram(digits: 3, nesting: 3, rng: &rng)
            #expect(source.hasSuffix(")") && source.split(separator: "\n").last!.hasPrefix("print("))
            #expect(Int(target) != nil)
            #expect(source.allSatisfy { "abcdefghijklmnopqrstuvwxyz0123456789+-*=()<>:\n ".contains($0) })
        }
    }

    @Test func badPairOptionsAreRefusedInOneLineWithoutWriting() throws {
        let dir = try TempDir()
        let out = dir.file("x.h5")
        let cases: [(SyntheticOptions, String)] = [
            (SyntheticOptions(task: .execute, seed: 1, length: 10), "--length: expected 1...9 digits per number, found 10"),
            (SyntheticOptions(task: .execute, seed: 1, nesting: 0), "--nesting: expected 1...10 operations, found 0"),
            (SyntheticOptions(task: .execute, seed: 1, maxLength: 5),
             "--min-length/--max-length: expected not set for execute (use --length/--nesting), found a length"),
            (SyntheticOptions(task: .reverse, seed: 1, nesting: 2),
             "--length/--nesting: expected not set for reverse (use --min-length/--max-length), found a value"),
            (SyntheticOptions(task: .reverse, seed: 1, minLength: 0), "--length/--min-length/--max-length: expected 1 ≤ min ≤ max, found 0...20"),
            (SyntheticOptions(task: .parity, seed: 1, length: 3),
             "--length/--nesting: expected not set for parity (execute only), found a value"),
        ]
        for (options, expected) in cases {
            #expect(dataErrorMessage { _ = try SyntheticPreparation.prepare(options, output: out) }?.1 == expected)
        }
        let huge = dataErrorMessage {
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .reverse, seed: 1, sizes: [1_000_000_000_000, 1, 1]),
                                                 output: out)
        }?.1
        #expect(huge?.hasPrefix("--size: expected a dataset that fits in memory") == true)
        #expect(try dir.contents() == [])
    }
}

/// An interpreter for the `execute` programs, written independently of the generator: lines `v=E`,
/// `v+=E`, `v-=E`, `if E<E:` / `if E>E:` and `for x in range(E):` with a block of lines indented by
/// two spaces, and `print(E)`; expressions with integers, variables, parentheses, `+ - *` and
/// `(E if E<E else E)`, with Python's precedence.
enum ExecuteInterpreter {
    struct Failure: Error { let message: String }

    static func run(_ program: String) throws -> Int {
        var env: [String: Int] = [:]
        var printed: [Int] = []
        try execute(program.split(separator: "\n").map(String.init), &env, &printed)
        guard printed.count == 1 else { throw Failure(message: "printed \(printed.count) values") }
        return printed[0]
    }

    private static func execute(_ lines: [String], _ env: inout [String: Int], _ printed: inout [Int]) throws {
        var i = 0
        while i < lines.count {
            let line = lines[i]
            i += 1
            if line.hasSuffix(":") {
                var block: [String] = []
                while i < lines.count, lines[i].hasPrefix("  ") {
                    block.append(String(lines[i].dropFirst(2)))
                    i += 1
                }
                let header = String(line.dropLast())
                if header.hasPrefix("for x in range("), header.hasSuffix(")") {
                    let count = try evaluate(String(header.dropFirst(15).dropLast()), env)
                    for _ in 0..<count { try execute(block, &env, &printed) }
                } else if header.hasPrefix("if ") {
                    var parser = Parser(String(header.dropFirst(3)), env)
                    if try parser.comparison() { try execute(block, &env, &printed) }
                    guard parser.atEnd else { throw Failure(message: "trailing text in \(line)") }
                } else {
                    throw Failure(message: "unknown block \(line)")
                }
            } else if line.hasPrefix("print("), line.hasSuffix(")") {
                printed.append(try evaluate(String(line.dropFirst(6).dropLast()), env))
            } else if let r = line.range(of: "+=") {
                env[String(line[..<r.lowerBound]), default: 0] += try evaluate(String(line[r.upperBound...]), env)
            } else if let r = line.range(of: "-=") {
                env[String(line[..<r.lowerBound]), default: 0] -= try evaluate(String(line[r.upperBound...]), env)
            } else if let eq = line.firstIndex(of: "=") {
                env[String(line[..<eq])] = try evaluate(String(line[line.index(after: eq)...]), env)
            } else {
                throw Failure(message: "cannot parse \(line)")
            }
        }
    }

    static func evaluate(_ text: String, _ env: [String: Int]) throws -> Int {
        var parser = Parser(text, env)
        let value = try parser.ternary()
        guard parser.atEnd else { throw Failure(message: "trailing text in \(text)") }
        return value
    }

    /// Recursive descent over the characters of one expression.
    struct Parser {
        var chars: [Character]
        var at = 0
        let env: [String: Int]

        init(_ text: String, _ env: [String: Int]) {
            chars = Array(text)
            self.env = env
        }

        var atEnd: Bool { at == chars.count }

        mutating func skipSpaces() { while at < chars.count, chars[at] == " " { at += 1 } }

        mutating func take(_ word: String) -> Bool {
            skipSpaces()
            let w = Array(word)
            guard at + w.count <= chars.count, Array(chars[at..<(at + w.count)]) == w else { return false }
            at += w.count
            return true
        }

        /// sum [ "if" comparison "else" ternary ]
        mutating func ternary() throws -> Int {
            let value = try sum()
            guard take(" if ") || take("if ") else { return value }
            let holds = try comparison()
            guard take("else ") || take(" else ") else { throw Failure(message: "no else") }
            let other = try ternary()
            return holds ? value : other
        }

        mutating func comparison() throws -> Bool {
            let left = try sum()
            if take("<") { return left < (try sum()) }
            if take(">") { return left > (try sum()) }
            throw Failure(message: "no comparison")
        }

        mutating func sum() throws -> Int {
            var value = try product()
            while true {
                if take("+") { value += try product() } else if take("-") { value -= try product() } else { return value }
            }
        }

        mutating func product() throws -> Int {
            var value = try atom()
            while take("*") { value *= try atom() }
            return value
        }

        mutating func atom() throws -> Int {
            skipSpaces()
            if take("(") {
                let value = try ternary()
                guard take(")") else { throw Failure(message: "no )") }
                return value
            }
            if take("-") { return -(try atom()) }
            let start = at
            while at < chars.count, chars[at].isLetter || chars[at].isNumber { at += 1 }
            let word = String(chars[start..<at])
            if let n = Int(word) { return n }
            guard !word.isEmpty, word != "if", word != "else", let v = env[word] else {
                throw Failure(message: "unknown name \(quoted(word))")
            }
            return v
        }
    }
}
