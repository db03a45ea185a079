// A tiny test runner for code that must run on several MPI ranks at once: every rank runs every
// test in the same order, a test fails if it failed on any rank (verdicts combined with allAgree),
// and rank 0 prints `PASS name` / `FAIL name: why` and the final `N passed, N failed`.
#if canImport(Glibc)
import Glibc
#endif
import UnrollDistributed

/// Failures recorded by one test on this rank. Checks record and carry on instead of throwing, so
/// that a failed check never makes this rank skip a collective the other ranks are waiting in.
struct Expectations {
    private(set) var failures: [String] = []

    mutating func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { failures.append(message()) }
    }

    /// Compares bit patterns, reporting the first mismatch and how many elements differ.
    mutating func expectSameBits<T: BinaryFloatingPoint>(_ actual: [T], _ expected: [T], _ what: String) {
        guard actual.count == expected.count else {
            failures.append("\(what): \(actual.count) elements, expected \(expected.count)")
            return
        }
        var firstMismatch: Int? = nil, mismatches = 0
        for i in actual.indices where !sameBits(actual[i], expected[i]) {
            if firstMismatch == nil { firstMismatch = i }
            mismatches += 1
        }
        if let i = firstMismatch {
            failures.append("\(what): \(mismatches) of \(actual.count) elements differ, first at [\(i)]: "
                + "\(actual[i]) vs expected \(expected[i])")
        }
    }
}

/// Bitwise equality for Float and Double (so that -0 ≠ +0 and a NaN equals the same NaN).
func sameBits<T: BinaryFloatingPoint>(_ a: T, _ b: T) -> Bool {
    switch (a, b) {
    case let (x as Float, y as Float): return x.bitPattern == y.bitPattern
    case let (x as Double, y as Double): return x.bitPattern == y.bitPattern
    default: return a == b
    }
}

/// A named test: the body records failures in `Expectations`; a thrown error counts as a failure.
struct MPITest: Sendable {
    let name: String
    let body: @Sendable (any Communicator, inout Expectations) throws -> Void
}

final class MPITestRunner {
    let communicator: any Communicator
    private(set) var passed = 0
    private(set) var failed = 0

    init(communicator: any Communicator) { self.communicator = communicator }

    /// Runs `test` on this rank, then agrees with the other ranks on the verdict.
    func run(_ test: MPITest) {
        var expectations = Expectations()
        do {
            try test.body(communicator, &expectations)
        } catch {
            expectations.expect(false, "threw \(error)")
        }
        let localOK = expectations.failures.isEmpty
        let reasons = expectations.failures.prefix(5).joined(separator: "; ")
        let allOK: Bool
        do {
            allOK = try communicator.allAgree(localOK)
        } catch {
            communicator.abort("test runner: allAgree after \(test.name) failed: \(error)", code: 2)
        }
        if !localOK && communicator.rank != 0 {
            writeLine("  rank \(communicator.rank): \(test.name): \(reasons)", toStandardError: true)
        }
        if allOK { passed += 1 } else { failed += 1 }
        if communicator.rank == 0 {
            if allOK {
                writeLine("PASS \(test.name)")
            } else {
                writeLine("FAIL \(test.name): " + (localOK ? "failed on another rank (its reasons are on stderr)" : reasons))
            }
        }
    }

    /// Prints the summary on rank 0; returns the process exit code (the same on every rank).
    func summarize() -> Int32 {
        if communicator.rank == 0 { writeLine("\(passed) passed, \(failed) failed") }
        return failed == 0 ? 0 : 1
    }
}

/// Writes one line unbuffered so that output from the ranks and from stderr is not held back.
func writeLine(_ line: String, toStandardError: Bool = false) {
    let bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(toStandardError ? 2 : 1, $0.baseAddress, $0.count) }
        if n <= 0 { return }
        offset += n
    }
}
