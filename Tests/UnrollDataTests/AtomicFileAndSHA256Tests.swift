// Tests of AtomicFile (success, simulated disk-full at each stage, unwritable destination) and of
// SHA-256 against the FIPS 180-4 / NIST example vectors.
import Foundation
import Testing
@testable import UnrollData

struct DiskFull: Error {}

@Suite struct AtomicFileTests {
    @Test func successLeavesOnlyTheFinalFile() throws {
        let dir = try TempDir()
        let path = dir.file("out.h5")
        let value = try AtomicFile.write(to: path) { tmp -> Int in
            #expect(tmp == path + ".tmp.\(getpid())")
            #expect(FileManager.default.fileExists(atPath: tmp))
            #expect(!FileManager.default.fileExists(atPath: path))
            let f = try H5File.create(tmp)
            try f.write("x", [Float(1.5)])
            try f.close()
            return 42
        }
        #expect(value == 42)
        #expect(try dir.contents() == ["out.h5"])
        #expect(try H5File.open(path).openDataset("x").read(as: Float.self) == [1.5])
    }

    @Test(arguments: [AtomicFile.Stage.contentWritten, .synced])
    func simulatedDiskFullLeavesNothingBehindAndKeepsTheOldFile(stage: AtomicFile.Stage) throws {
        let dir = try TempDir()
        let path = try dir.write("out.txt", "old content")
        #expect(throws: DiskFull.self) {
            try AtomicFile.write(to: path, failureHook: { if $0 == stage { throw DiskFull() } }) { tmp in
                try "new, partly written".write(toFile: tmp, atomically: false, encoding: .utf8)
            }
        }
        #expect(try dir.contents() == ["out.txt"])
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "old content")
    }

    @Test func writerErrorMidwayLeavesNothing() throws {
        let dir = try TempDir()
        let path = dir.file("new.h5")
        #expect(throws: DiskFull.self) {
            try AtomicFile.write(to: path) { tmp in
                let f = try H5File.create(tmp)
                try f.write("half", [Int32](repeating: 1, count: 1000))
                throw DiskFull()
            }
        }
        #expect(try dir.contents() == [])
    }

    @Test func unwritableDestinationIsAOneLineIOError() throws {
        let dir = try TempDir()
        let regular = try dir.write("file.txt", "x")
        // A regular file used as a directory fails even for root (ENOTDIR).
        let failure = dataErrorMessage { try AtomicFile.write(to: regular + "/out.h5") { _ in } }
        guard case .io? = failure?.0 else {
            Issue.record("expected an io error, got \(String(describing: failure))")
            return
        }
        #expect(failure!.1.contains(regular + "/out.h5"))
        #expect(failure!.1.contains("Not a directory"))
        #expect(try dir.contents() == ["file.txt"])
    }
}

@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ])
    func knownVectors(message: String, digest: String) {
        #expect(SHA256Hex.hash(Array(message.utf8)) == digest)
        #expect(ReferenceSHA256.hexHash(Array(message.utf8)) == digest)
    }

    @Test func millionAsGiveTheNISTDigest() {
        let a = [UInt8](repeating: 0x61, count: 1_000_000)
        #expect(SHA256Hex.hash(a) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(SHA256Hex.hash(a[1...]) == ReferenceSHA256.hexHash(a[1...]))  // a slice, not at offset 0
    }

    /// The padding boundaries (55 and 56 bytes: one or two final blocks), a whole block, and sizes
    /// around the 4 MiB read of `SHA256Hex.file`, against the hand-written implementation it replaced.
    @Test(arguments: [0, 1, 55, 56, 63, 64, 65, 1000, 1 << 20, (4 << 20) - 1, (4 << 20) + 7])
    func equalsTheReplacedImplementationOnBytesAndFiles(size: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let expected = ReferenceSHA256.hexHash(bytes)
        #expect(SHA256Hex.hash(bytes) == expected)
        let dir = try TempDir()
        let path = dir.file("f.bin")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var reported = 0
        #expect(try SHA256Hex.file(path, progress: { reported = $0 }) == expected)
        #expect(reported == size)
    }

    @Test func missingFileIsAnIOErrorNamingIt() {
        #expect(throws: DataError.io(path: "/nonexistent/x.h5", operation: "open for reading (SHA-256)",
                                     reason: "No such file or directory")) {
            try SHA256Hex.file("/nonexistent/x.h5")
        }
    }

    /// `UNROLL_SHA256_BENCH=FILE swift test --filter timeOneFile`: the time of `SHA256Hex.file`
    /// (launch/results/sha256-startup.md).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["UNROLL_SHA256_BENCH"] != nil))
    func timeOneFile() throws {
        let path = ProcessInfo.processInfo.environment["UNROLL_SHA256_BENCH"] ?? ""
        let start = Date()
        let hex = try SHA256Hex.file(path)
        print("SHA256Hex.file \(path): \(hex) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
    }
}
