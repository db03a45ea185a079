// Tests of the synthetic datasets: determinism per seed (identical bytes), arith results that
// recompute correctly with an independent evaluator, parity/adding targets, and the sequence-set reader.
import Foundation
import Testing
@testable import UnrollData

@Suite struct SyntheticTests {
    /// Sizes whose dataset would not fit in memory are refused in one line before anything is
    /// generated (nothing is written either).
    @Test(arguments: [(SyntheticTask.arith, [1_000_000_000_000, 1, 1], nil as Int?, "--size"),
                      (.parity, [10_000_000_000, 1, 1], nil, "--size/--max-length"),
                      (.adding, [10, 1, 1], 1_000_000_000_000, "--size/--max-length")])
    func datasetsLargerThanMemoryAreRefused(task: SyntheticTask, sizes: [Int], maxLength: Int?, name: String) throws {
        let dir = try TempDir()
        let path = dir.file("big.h5")
        let result = dataErrorMessage {
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: task, seed: 1, sizes: sizes, maxLength: maxLength),
                                                 output: path)
        }
        let message = try #require(result?.1)
        #expect(message.hasPrefix(name + ":") && message.contains("fits in memory") && message.contains("GB, this machine has"))
        #expect(!message.contains("\n"))
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test(arguments: [SyntheticTask.arith, .parity, .adding, .copy])
    func sameSeedGivesSameBytesAndOtherSeedsDiffer(task: SyntheticTask) throws {
        let dir = try TempDir()
        let sizes = task == .arith ? [20_000, 2_000, 2_000] : [200, 20, 20]
        let make = { (seed: UInt64, name: String) throws -> Data in
            let path = dir.file(name)
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: task, seed: seed, sizes: sizes), output: path)
            return try Data(contentsOf: URL(fileURLWithPath: path))
        }
        let a = try make(11, "a.h5"), b = try make(11, "b.h5"), c = try make(12, "c.h5")
        #expect(a == b)
        #expect(a != c)
    }

    @Test func arithCorpusIsAtLeastOneMillionCharactersByDefaultAndItsResultsAreCorrect() throws {
        let dir = try TempDir()
        let path = dir.file("arith.h5")
        let summary = try SyntheticPreparation.prepare(SyntheticOptions(task: .arith, seed: 5), output: path)
        guard case let .tokens(s) = summary else {
            Issue.record("arith must be a token dataset")
            return
        }
        #expect(s.tokens["train"]! >= 1_000_000)
        let data = try TokenDataset(path: path)
        #expect(data.level == .char)
        let vocab = try data.vocabulary()
        let text = try data.split("valid").read(0..<data.tokenCounts["valid"]!).map { vocab[Int($0)] }.joined()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count > 1000)
        var checked = 0
        var kinds = Set<String>()
        for line in lines {
            guard let eq = line.range(of: ")=", options: .backwards) else {
                Issue.record("no print in \(line)")
                continue
            }
            let program = String(line[..<eq.lowerBound]) + ")"
            let expected = Int(line[eq.upperBound...])
            #expect(expected != nil, "\(line)")
            #expect(try MiniInterpreter.run(program) == expected, "\(line)")
            if line.contains("for x") { kinds.insert("loop") }
            if line.contains("if ") { kinds.insert("if") }
            if line.contains("*") { kinds.insert("mul") }
            if line.split(separator: ";").count >= 4 && !line.contains("for") && !line.contains("if") { kinds.insert("3 vars") }
            checked += 1
        }
        #expect(checked == lines.count)
        #expect(kinds == ["loop", "if", "mul", "3 vars"])
    }

    @Test func parityTargetsAreTheParityOfTheBitsAndLengthsStayInRange() throws {
        let dir = try TempDir()
        let path = dir.file("parity.h5")
        _ = try SyntheticPreparation.prepare(
            SyntheticOptions(task: .parity, seed: 1, sizes: [300, 30, 30], minLength: 3, maxLength: 12), output: path)
        let set = try SequenceSet(path: path)
        #expect(set.inputDim == 1 && set.targetKind == "class" && set.numClasses == 2 && set.task == "parity")
        let train = try set.split("train")
        #expect(train.count == 300)
        guard case let .classes(targets) = train.targets else {
            Issue.record("parity targets must be classes")
            return
        }
        var lengths = Set<Int>()
        for i in 0..<train.count {
            let bits = try train.inputs(of: i)
            lengths.insert(bits.count)
            #expect(bits.allSatisfy { $0 == 0 || $0 == 1 })
            #expect(Int32(bits.filter { $0 == 1 }.count % 2) == targets[i])
        }
        #expect(lengths.min()! >= 3 && lengths.max()! <= 12 && lengths.count > 5)
        let batch = try train.inputs(of: 2..<5)
        #expect(batch.offsets.first == 0 && batch.offsets.count == 4)
        #expect(Array(batch.inputs[0..<Int(batch.offsets[1])]) == (try train.inputs(of: 2)))
    }

    @Test func addingTargetsAreTheSumOfTheTwoMarkedValues() throws {
        let dir = try TempDir()
        let path = dir.file("adding.h5")
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .adding, seed: 2, sizes: [100, 10, 10]), output: path)
        let set = try SequenceSet(path: path)
        #expect(set.inputDim == 2 && set.targetKind == "value" && set.targetDim == 1)
        let test = try set.split("test")
        guard case let .values(targets) = test.targets else {
            Issue.record("adding targets must be values")
            return
        }
        for i in 0..<test.count {
            let rows = try test.inputs(of: i)
            #expect(rows.count == 2 * 50)
            let marked = stride(from: 0, to: rows.count, by: 2).filter { rows[$0 + 1] == 1 }
            #expect(marked.count == 2)
            #expect(abs(marked.map { rows[$0] }.reduce(0, +) - targets[i]) < 1e-6)
        }
    }

    @Test func addingAtAGivenLengthHasTwoMarkersAndUniformValues() throws {
        let dir = try TempDir()
        let path = dir.file("adding.h5")
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .adding, seed: 4, sizes: [400, 10, 10], minLength: 30,
                                                              maxLength: 30), output: path)
        let train = try SequenceSet(path: path).split("train")
        guard case let .values(targets) = train.targets else {
            Issue.record("adding targets must be values")
            return
        }
        var positions = Set<Int>(), values: [Float] = []
        for i in 0..<train.count {
            let rows = try train.inputs(of: i)
            #expect(rows.count == 2 * 30)
            let marked = (0..<30).filter { rows[2 * $0 + 1] == 1 }
            #expect(marked.count == 2 && (0..<30).allSatisfy { rows[2 * $0 + 1] == 0 || rows[2 * $0 + 1] == 1 })
            #expect(abs(marked.map { rows[2 * $0] }.reduce(0, +) - targets[i]) < 1e-6)
            positions.formUnion(marked)
            values += (0..<30).map { rows[2 * $0] }
        }
        #expect(values.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = values.reduce(0, +) / Float(values.count)
        #expect(abs(mean - 0.5) < 0.02)
        #expect(positions.count == 30)  // markers anywhere in the sequence
        // Predicting 1 (the target's mean) scores about 1/6 (two U(0,1) summed: variance 2/12).
        let mse = targets.map { ($0 - 1) * ($0 - 1) }.reduce(0, +) / Float(targets.count)
        #expect(abs(mse - 1.0 / 6) < 0.03)
    }

    @Test func copySequencesRepeatTheirFirstTenSymbolsAfterTheDelimiter() throws {
        let dir = try TempDir()
        let path = dir.file("copy.h5")
        let T = 15
        let summary = try SyntheticPreparation.prepare(
            SyntheticOptions(task: .copy, seed: 3, sizes: [200, 20, 20], minLength: T, maxLength: T), output: path)
        #expect("\(summary)".contains("memoryless baseline"))
        let set = try SequenceSet(path: path)
        #expect(set.inputKind == .tokens && set.perStep && set.targetKind == "class" && set.numClasses == 9)
        #expect(set.vocabulary == CopyTask.vocabulary && set.classNames == CopyTask.classNames && set.task == "copy")
        for name in ["train", "valid", "test"] {
            let split = try set.split(name)
            guard case let .tokens(all) = try split.loadInputs(), case let .classes(targets) = split.targets else {
                Issue.record("copy must have token inputs and class targets")
                return
            }
            var seen = Set<Int32>()
            for i in 0..<split.count {
                let start = Int(split.offsets[i]), n = split.length(of: i)
                #expect(n == T + 20)
                let x = Array(all[start..<(start + n)]), y = Array(targets[start..<(start + n)])
                let symbols = Array(x[0..<10])
                #expect(symbols.allSatisfy { (1...8).contains($0) })
                seen.formUnion(symbols)
                #expect(x[10..<(10 + T - 1)].allSatisfy { $0 == 0 })
                #expect(x[10 + T - 1] == 9)
                #expect(x[(10 + T)...].allSatisfy { $0 == 0 } && x[(10 + T)...].count == 10)
                #expect(y[0..<(T + 10)].allSatisfy { $0 == 0 })
                #expect(Array(y[(T + 10)...]) == symbols)
            }
            #expect(seen == Set(1...8))
        }
        #expect(abs(CopyTask.baseline(delay: 100) - 10 * log(8.0) / 120) < 1e-12)
    }

    @Test func parityAtAGivenLengthIsSequenceClassification() throws {
        let dir = try TempDir()
        let path = dir.file("parity.h5")
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .parity, seed: 6, sizes: [500, 10, 10], minLength: 7,
                                                              maxLength: 7), output: path)
        let set = try SequenceSet(path: path)
        #expect(!set.perStep && set.classNames == ["even", "odd"])
        let train = try set.split("train")
        guard case let .classes(targets) = train.targets else {
            Issue.record("parity targets must be classes")
            return
        }
        #expect(targets.count == 500)
        for i in 0..<train.count {
            let bits = try train.inputs(of: i)
            #expect(bits.count == 7 && Int32(bits.reduce(0, +)) % 2 == targets[i])
        }
        let odd = targets.filter { $0 == 1 }.count
        #expect(odd > 200 && odd < 300)
    }

    @Test func badSyntheticOptionsAreRejectedWithoutWriting() throws {
        let dir = try TempDir()
        let out = dir.file("x.h5")
        let sizes = dataErrorMessage {
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .parity, seed: 1, sizes: [10, 0, 1]), output: out)
        }
        #expect(sizes?.1.contains("--size") == true)
        let lengths = dataErrorMessage {
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .adding, seed: 1, minLength: 1, maxLength: 1),
                                                 output: out)
        }
        #expect(lengths?.1.contains("--min-length") == true)
        let delay = dataErrorMessage {
            _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .copy, seed: 1, minLength: 0, maxLength: 0), output: out)
        }
        #expect(delay?.1.contains("--length") == true)
        #expect(try dir.contents() == [])
    }

    @Test func sequenceSetValidationNamesTheField() throws {
        let dir = try TempDir()
        let path = dir.file("broken.h5")
        do {
            let file = try H5File.create(path)
            try file.setAttribute("format", string: DatasetFormat.name)
            try file.setAttribute("version", Int64(1))
            try file.setAttribute("kind", string: "sequences")
            try file.setAttribute("task", string: "t")
            try file.setAttribute("input_dim", Int64(1))
            try file.setAttribute("target_kind", string: "class")
            try file.setAttribute("target_dim", Int64(1))
            try file.setAttribute("num_classes", Int64(2))
            let g = try file.createGroup("train")
            try g.write("inputs", [Float](repeating: 0, count: 5), shape: [5, 1])
            try g.write("offsets", [Int64(0), 3, 4])   // must end at 5
            try g.write("targets", [Int32(0), 1], shape: [2, 1])
            try file.close()
        }
        let set = try SequenceSet(path: path)
        let failure = dataErrorMessage { _ = try set.split("train") }
        #expect(failure?.1.hasPrefix("\(path): /train/offsets: expected offsets from 0 to 5 (rows of inputs), found first 0, last 4") == true)
        let missing = dataErrorMessage { _ = try set.split("valid") }
        #expect(missing?.1 == "\(path): /valid: expected a split group, found missing")
        let asTokens = dataErrorMessage { _ = try TokenDataset(path: path) }
        #expect(asTokens?.1 == "\(path): attribute 'kind': expected \"tokens\", found \"sequences\"")
    }
}

/// An evaluator for the arith grammar, written independently of the generator:
/// statements `v=E`, `v+=E`, `v-=E`, `for x in range(K):S`, `if E>E:S`, `if E<E:S`, `print(E)`.
enum MiniInterpreter {
    struct Failure: Error { let message: String }

    static func run(_ program: String) throws -> Int {
        var env: [String: Int] = [:]
        var printed: Int?
        for statement in program.split(separator: ";").map(String.init) {
            try execute(statement, &env, &printed)
        }
        guard let printed else { throw Failure(message: "no print in \(program)") }
        return printed
    }

    private static func execute(_ s: String, _ env: inout [String: Int], _ printed: inout Int?) throws {
        if s.hasPrefix("for x in range(") {
            let close = s.firstIndex(of: ")")!
            let count = Int(s[s.index(s.startIndex, offsetBy: 15)..<close])!
            let body = String(s[s.index(close, offsetBy: 2)...])
            for _ in 0..<count { try execute(body, &env, &printed) }
        } else if s.hasPrefix("if ") {
            let colon = s.firstIndex(of: ":")!
            let condition = s[s.index(s.startIndex, offsetBy: 3)..<colon]
            let op: Character = condition.contains(">") ? ">" : "<"
            let sides = condition.split(separator: op).map(String.init)
            let l = try evaluate(sides[0], env), r = try evaluate(sides[1], env)
            if op == ">" ? l > r : l < r { try execute(String(s[s.index(after: colon)...]), &env, &printed) }
        } else if s.hasPrefix("print(") {
            printed = try evaluate(String(s.dropFirst(6).dropLast()), env)
        } else if let r = s.range(of: "+=") {
            env[String(s[..<r.lowerBound]), default: 0] += try evaluate(String(s[r.upperBound...]), env)
        } else if let r = s.range(of: "-=") {
            env[String(s[..<r.lowerBound]), default: 0] -= try evaluate(String(s[r.upperBound...]), env)
        } else if let eq = s.firstIndex(of: "=") {
            env[String(s[..<eq])] = try evaluate(String(s[s.index(after: eq)...]), env)
        } else {
            throw Failure(message: "cannot parse \(s)")
        }
    }

    /// Sum of products, left to right (no parentheses in the grammar).
    private static func evaluate(_ e: String, _ env: [String: Int]) throws -> Int {
        var total = 0
        var sign = 1
        var term = ""
        func value(_ t: String) throws -> Int {
            try t.split(separator: "*").reduce(1) { acc, f in
                if let n = Int(f) { return acc * n }
                guard let v = env[String(f)] else { throw Failure(message: "unknown variable \(f)") }
                return acc * v
            }
        }
        for c in e {
            if c == "+" || c == "-" {
                total += sign * (try value(term))
                sign = c == "+" ? 1 : -1
                term = ""
            } else {
                term.append(c)
            }
        }
        return total + sign * (try value(term))
    }
}
