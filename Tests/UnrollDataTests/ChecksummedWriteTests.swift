// Tests of the fast checksummed writer: ch5_fletcher32 against a port of HDF5's own checksum loop,
// writeChecksummed storing byte for byte the chunks HDF5's Fletcher32 filter stores (edge chunks,
// odd sizes, all-zero data, early writeback on), a corrupted edge chunk still failing its checksum
// on read, and the one-buffer vocabulary writer still refusing NUL.
import Foundation
import HDF5Shim
import Testing
@testable import UnrollData

@Suite struct ChecksummedWriteTests {
    /// HDF5's H5_checksum_fletcher32 (H5checksum.c), one 16-bit word at a time: the reference.
    static func referenceFletcher32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var sum1: UInt32 = 0, sum2: UInt32 = 0
        var words = bytes.count / 2, i = 0
        while words > 0 {
            var block = min(words, 360)
            words -= block
            repeat {
                sum1 &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
                i += 2
                sum2 &+= sum1
                block -= 1
            } while block > 0
            sum1 = (sum1 & 0xffff) + (sum1 >> 16)
            sum2 = (sum2 & 0xffff) + (sum2 >> 16)
        }
        if bytes.count % 2 == 1 {
            sum1 &+= UInt32(bytes[i]) << 8
            sum2 &+= sum1
            sum1 = (sum1 & 0xffff) + (sum1 >> 16)
            sum2 = (sum2 & 0xffff) + (sum2 >> 16)
        }
        sum1 = (sum1 & 0xffff) + (sum1 >> 16)
        sum2 = (sum2 & 0xffff) + (sum2 >> 16)
        return sum2 << 16 | sum1
    }

    /// Lengths around the 360-word fold, the 4096-word block and several blocks plus a tail;
    /// patterns that make a sum a multiple of 65535 (all 0xff), all zero, one late non-zero byte,
    /// and random bytes; at an odd address too.
    @Test func fastFletcher32EqualsHDF5sDefinition() {
        var rng = SplitMix64(seed: 5)
        let lengths = [0, 1, 2, 3, 719, 720, 721, 8191, 8192, 8193, 3 * 8192 + 77, 100_003]
        var mismatches: [String] = []
        for length in lengths {
            let patterns: [(String, [UInt8])] = [
                ("random", (0..<(length + 1)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
                ("0xff", [UInt8](repeating: 0xff, count: length + 1)),
                ("zero", [UInt8](repeating: 0, count: length + 1)),
                ("late", (0...length).map { $0 == length - 1 ? 1 : 0 }),
            ]
            for (name, bytes) in patterns {
                bytes.withUnsafeBytes { all in
                    for start in [0, 1] {
                        let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                        let fast = ch5_fletcher32(slice.baseAddress, length)
                        let reference = Self.referenceFletcher32(slice)
                        if fast != reference { mismatches.append("\(name) length \(length) at +\(start): \(fast) ≠ \(reference)") }
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    /// Chunk `index` of `dataset`: its coordinates and the bytes stored in the file (data + checksum).
    static func storedChunk(_ dataset: H5Dataset, _ index: Int, in path: String) throws -> (offset: [Int], bytes: [UInt8]) {
        let space = H5Dget_space(dataset.id)
        defer { H5Sclose(space) }
        var offsets = [hsize_t](repeating: 0, count: dataset.shape.count)
        var mask: UInt32 = 0, address: haddr_t = 0, size: hsize_t = 0
        #expect(H5Dget_chunk_info(dataset.id, space, hsize_t(index), &offsets, &mask, &address, &size) >= 0)
        #expect(mask == 0, "every filter applied")
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }  // read-only handle
        try handle.seek(toOffset: UInt64(address))
        let bytes = [UInt8](try handle.read(upToCount: Int(size)) ?? Data())
        return (offsets.map { Int($0) }, bytes)
    }

    static func chunkCount(_ dataset: H5Dataset) -> Int {
        let space = H5Dget_space(dataset.id)
        defer { H5Sclose(space) }
        var n: hsize_t = 0
        _ = H5Dget_num_chunks(dataset.id, space, &n)
        return Int(n)
    }

    /// Writes `data` through HDF5's filter pipeline and through `writeChecksummed`, then checks
    /// that both read back as `data` and that every stored chunk is the same, byte for byte.
    func expectSameChunks<T: H5Scalar & Equatable>(_ data: [T], shape: [Int], rows: Int, dir: TempDir) throws {
        let path = dir.file("c.h5")
        do {
            // A writeback request after every chunk: it must not change what is written.
            let file = try H5File.create(path, writebackBytes: 1)
            try file.write("reference", data, shape: shape, chunk: [rows] + shape.dropFirst(), fletcher32: true)
            try data.withUnsafeBufferPointer { _ = try file.writeChecksummed("fast", $0, shape: shape, rowsPerChunk: rows) }
            file.startWriteback()
            try file.close()
        }
        let file = try H5File.open(path)
        let reference = try file.openDataset("reference"), fast = try file.openDataset("fast")
        #expect(try fast.read(as: T.self) == data)
        #expect(fast.shape == shape)
        let storage = try fast.storage()
        #expect(storage.chunk == [min(rows, shape[0])] + shape.dropFirst() && storage.fletcher32)
        let n = Self.chunkCount(reference)
        #expect(n == (shape[0] + rows - 1) / rows && Self.chunkCount(fast) == n)
        for i in 0..<n {
            let a = try Self.storedChunk(reference, i, in: path), b = try Self.storedChunk(fast, i, in: path)
            #expect(a.offset == b.offset && a.bytes == b.bytes, "shape \(shape) chunk \(i)")
        }
    }

    @Test func storesTheSameChunksAsHDF5sFletcher32Filter() throws {
        let dir = try TempDir()
        var rng = SplitMix64(seed: 9)
        func floats(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Int64(rng.next() % 2001) - 1000) / 37 } }
        // 2-D with a short edge chunk, 1-D, 3-D, one chunk larger than the extent.
        try expectSameChunks(floats(37 * 5), shape: [37, 5], rows: 8, dir: dir)
        try expectSameChunks(floats(1000), shape: [1000], rows: 300, dir: dir)
        try expectSameChunks(floats(3 * 2 * 4), shape: [3, 2, 4], rows: 2, dir: dir)
        try expectSameChunks(floats(12), shape: [4, 3], rows: 10, dir: dir)
        // All zeros: the checksum itself is 0.
        try expectSameChunks([Float](repeating: 0, count: 12), shape: [4, 3], rows: 4, dir: dir)
        // An odd number of bytes per chunk (3 rows × 3 bytes), and 8-byte elements.
        try expectSameChunks((0..<21).map { UInt8($0 * 11 % 256) }, shape: [7, 3], rows: 3, dir: dir)
        try expectSameChunks((0..<10).map { Int64($0) * -123_456_789_012 }, shape: [10], rows: 4, dir: dir)
        // Chunks of 1 MiB, as checkpoints use, over several checksum blocks.
        try expectSameChunks(floats(3 * (1 << 18) + 100), shape: [3 * (1 << 18) + 100], rows: 1 << 18, dir: dir)
    }

    @Test func emptyDatasetIsCreatedWithoutChunks() throws {
        let dir = try TempDir()
        let path = dir.file("e.h5")
        do {
            let file = try H5File.create(path)
            try [Float]().withUnsafeBufferPointer { _ = try file.writeChecksummed("x", $0, shape: [0, 4], rowsPerChunk: 8) }
            try file.close()
        }
        let d = try H5File.open(path).openDataset("x")
        #expect(d.shape == [0, 4])
        #expect(try d.read(as: Float.self) == [])
    }

    @Test func wrongShapeIsRefused() throws {
        let dir = try TempDir()
        let file = try H5File.create(dir.file("s.h5"))
        let message = dataErrorMessage {
            try [Float](repeating: 1, count: 6).withUnsafeBufferPointer {
                _ = try file.writeChecksummed("x", $0, shape: [4, 2], rowsPerChunk: 2)
            }
        }
        #expect(message?.1.contains("/x") == true)
        #expect(try !file.contains("x"))
    }

    /// A flipped byte in the last, partial chunk fails HDF5's checksum verification on read.
    @Test func corruptedEdgeChunkFailsTheChecksum() throws {
        let dir = try TempDir()
        let path = dir.file("x.h5")
        let data: [Float] = (0..<(37 * 5)).map { Float($0) * 0.25 }
        do {
            let file = try H5File.create(path)
            try data.withUnsafeBufferPointer { _ = try file.writeChecksummed("x", $0, shape: [37, 5], rowsPerChunk: 8) }
            try file.close()
        }
        let address: UInt64, size: Int
        do {
            let d = try H5File.open(path).openDataset("x")
            let space = H5Dget_space(d.id)
            defer { H5Sclose(space) }
            var offsets = [hsize_t](repeating: 0, count: 2)
            var mask: UInt32 = 0, a: haddr_t = 0, s: hsize_t = 0
            #expect(H5Dget_chunk_info(d.id, space, hsize_t(Self.chunkCount(d) - 1), &offsets, &mask, &a, &s) >= 0)
            #expect(offsets == [32, 0])
            (address, size) = (UInt64(a), Int(s))
        }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: address + UInt64(size / 3))
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: address + UInt64(size / 3))
        try handle.write(contentsOf: Data([~byte]))
        try handle.close()
        let d = try H5File.open(path).openDataset("x")
        #expect(try d.readRows(0..<32, as: Float.self) == Array(data[0..<160]))
        let failure = dataErrorMessage { _ = try d.read(as: Float.self) }
        #expect(failure?.1.contains("Fletcher32") == true, "\(failure?.1 ?? "no error")")
    }

    @Test func vocabularyWithNULIsRefusedNamingTheEntry() throws {
        let dir = try TempDir()
        let file = try H5File.create(dir.file("v.h5"))
        let message = dataErrorMessage { _ = try file.writeStrings("vocab", ["a", "b\u{0}c"]) }
        #expect(message?.1.contains("/vocab[1]") == true)
        #expect(try !file.contains("vocab"))
        try file.writeStrings("empty", [])
        #expect(try file.openDataset("empty").readStrings() == [])
    }
}
