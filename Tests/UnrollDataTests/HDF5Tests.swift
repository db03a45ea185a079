// Tests of the HDF5 wrapper: round trips of every element type, hyperslab reads, chunking and
// checksums, attributes, string datasets, member listing, errors with HDF5's stack text, and
// read-only opens that do not block other readers.
import Foundation
import Testing
@testable import UnrollData

@Suite struct HDF5Tests {
    @Test func numericArraysRoundTripInOneAndTwoDimensions() throws {
        let dir = try TempDir()
        let path = dir.file("t.h5")
        let floats: [Float] = (0..<12).map { Float($0) * 0.5 - 2 }
        let doubles: [Double] = (0..<6).map { Double($0) / 3 }
        let ints32: [Int32] = [Int32.min, -1, 0, 1, Int32.max]
        let ints64: [Int64] = [Int64.min, -7, 0, 42, Int64.max]
        let bytes: [UInt8] = [0, 1, 127, 128, 255]
        do {
            let file = try H5File.create(path)
            let group = try file.createGroup("g")
            try group.write("floats", floats, shape: [3, 4], chunk: [2, 4], fletcher32: true)
            try group.write("doubles", doubles)
            try file.write("i32", ints32)
            try file.write("i64", ints64)
            try file.write("u8", bytes)
            try file.close()
        }
        let file = try H5File.open(path)
        let group = try file.openGroup("g")
        let f = try group.openDataset("floats")
        #expect(f.shape == [3, 4])
        #expect(f.elementType == .float32)
        #expect(try f.read(as: Float.self) == floats)
        #expect(try f.readRows(1..<3, as: Float.self) == Array(floats[4..<12]))
        let storage = try f.storage()
        #expect(storage.chunk == [2, 4])
        #expect(storage.fletcher32)
        #expect(try group.openDataset("doubles").read(as: Double.self) == doubles)
        #expect(try group.openDataset("doubles").storage().chunk == nil)
        #expect(try file.openDataset("i32").read(as: Int32.self) == ints32)
        #expect(try file.openDataset("i64").read(as: Int64.self) == ints64)
        #expect(try file.openDataset("u8").read(as: UInt8.self) == bytes)
        #expect(try file.openDataset("u8").elementType == .uint8)
        // uint8 in the file converts to Int32 in memory.
        #expect(try file.openDataset("u8").read(as: Int32.self) == bytes.map { Int32($0) })
        #expect(try file.memberNames() == ["g", "i32", "i64", "u8"])
        #expect(try group.memberNames() == ["doubles", "floats"])
        #expect(try file.contains("g"))
        #expect(try !file.contains("nope"))
    }

    @Test func hyperslabReadsReturnTheRequestedRangesAndRejectOutOfBounds() throws {
        let dir = try TempDir()
        let path = dir.file("h.h5")
        let data: [Int32] = Array(0..<1000)
        do {
            let file = try H5File.create(path)
            try file.write("x", data, chunk: [64], fletcher32: true)
            try file.close()
        }
        let d = try H5File.open(path).openDataset("x")
        #expect(try d.read(range: 10..<20, as: Int32.self) == Array(10..<20))
        #expect(try d.read(range: 990..<1000, as: Int32.self) == Array(990..<1000))
        #expect(try d.read(range: 5..<5, as: Int32.self) == [])
        var strided = [Int32](repeating: 0, count: 12)
        try strided.withUnsafeMutableBufferPointer {
            try d.readStrided(start: 3, stride: 100, count: 4, block: 3, into: $0)
        }
        #expect(strided == [3, 4, 5, 103, 104, 105, 203, 204, 205, 303, 304, 305])
        let failure = dataErrorMessage { _ = try d.read(range: 995..<1001, as: Int32.self) }
        #expect(failure?.1.contains(path) == true)
        #expect(failure?.1.contains("/x") == true)
    }

    @Test func attributesAndStringsRoundTrip() throws {
        let dir = try TempDir()
        let path = dir.file("a.h5")
        let words = ["the", "température ✓", "<unk>", "", "日本語"]
        do {
            let file = try H5File.create(path)
            try file.setAttribute("name", string: "température ✓ – UTF-8")
            try file.setAttribute("count", Int64(12345678901))
            try file.setAttribute("small", Int32(-3))
            try file.setAttribute("ratio", 0.25)
            try file.setAttribute("name", string: "replaced")
            let d = try file.writeStrings("vocab", words)
            try d.setAttribute("note", string: "on a dataset")
            try file.close()
        }
        let file = try H5File.open(path)
        #expect(try file.stringAttribute("name") == "replaced")
        #expect(try file.intAttribute("count") == 12345678901)
        #expect(try file.intAttribute("small") == -3)
        #expect(try file.doubleAttribute("ratio") == 0.25)
        #expect(try file.doubleAttribute("count") == 12345678901)
        #expect(try file.attributeNames() == ["count", "name", "ratio", "small"])
        #expect(try file.hasAttribute("count"))
        #expect(try !file.hasAttribute("missing"))
        let vocab = try file.openDataset("vocab")
        #expect(vocab.elementType == .string)
        #expect(try vocab.readStrings() == words)
        #expect(try vocab.stringAttribute("note") == "on a dataset")
        // Wrong-type reads are errors, not garbage.
        let wrongType = dataErrorMessage { _ = try file.intAttribute("name") }
        #expect(wrongType?.1.contains("expected an integer attribute") == true)
        let stringAsNumbers = dataErrorMessage { _ = try vocab.read(as: Int32.self) }
        #expect(stringAsNumbers?.1.contains("/vocab") == true)
    }

    @Test func failuresCarryHDF5StackTextNamingFileAndObject() throws {
        let dir = try TempDir()
        let notHDF5 = try dir.write("random.h5", bytes: (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
        let openFailure = dataErrorMessage { _ = try H5File.open(notHDF5) }
        guard case let .hdf5(file, _, operation, detail)? = openFailure?.0 else {
            Issue.record("expected an HDF5 error, got \(String(describing: openFailure))")
            return
        }
        #expect(file == notHDF5)
        #expect(operation == "H5Fopen")
        #expect(detail.contains("signature"))
        #expect(!openFailure!.1.contains("\n"))

        let path = dir.file("ok.h5")
        try H5File.create(path).close()
        let missing = dataErrorMessage { _ = try H5File.open(path).openDataset("absent") }
        #expect(missing?.1.contains(path) == true)
        #expect(missing?.1.contains("/absent") == true)
        #expect(missing?.1.contains("H5Dopen2") == true)
    }

    @Test func errorsOnABackgroundThreadAreCapturedToo() async throws {
        let dir = try TempDir()
        let path = try dir.write("junk.h5", "not an hdf5 file at all")
        let message = await Task.detached { () -> String? in
            dataErrorMessage { _ = try H5File.open(path) }?.1
        }.value
        #expect(message?.contains("signature") == true)
    }

    @Test func readOnlyOpensTakeNoLockSoAnExclusiveHolderDoesNotBlockThem() throws {
        let dir = try TempDir()
        let path = dir.file("locked.h5")
        try H5File.create(path).close()
        // flock locks belong to open file descriptions, so this conflicts with HDF5's own fd
        // exactly as another process's lock would.
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        #expect(throws: Never.self) { _ = try H5File.open(path) }
        // A read-write open keeps HDF5's locking and is refused.
        let refused = dataErrorMessage { _ = try H5File.open(path, mode: .readWrite) }
        #expect(refused?.1.contains("lock") == true)
    }

    @Test func twoReadersAndAtomicReplacementUnderAnOpenReader() throws {
        let dir = try TempDir()
        let path = dir.file("shared.h5")
        try AtomicFile.write(to: path) { tmp in
            let f = try H5File.create(tmp)
            try f.write("x", [Int32(1), 2, 3])
            try f.close()
        }
        let reader1 = try H5File.open(path)
        let reader2 = try H5File.open(path)
        #expect(try reader1.openDataset("x").read(as: Int32.self) == [1, 2, 3])
        // Replacing the file under open readers works (new inode), and new opens see new data.
        try AtomicFile.write(to: path) { tmp in
            let f = try H5File.create(tmp)
            try f.write("x", [Int32(7)])
            try f.close()
        }
        #expect(try reader2.openDataset("x").read(as: Int32.self) == [1, 2, 3])
        #expect(try H5File.open(path).openDataset("x").read(as: Int32.self) == [7])
    }
}
