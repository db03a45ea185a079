// A pre-check for files in HDF5's original format (superblock 0 or 1: Unroll's format version 1),
// whose variable-length strings live in global heap collections without checksums. libhdf5 1.10
// trusts a collection's object sizes: an object size running past the collection makes it copy
// out of bounds (SIGSEGV in H5HG_read/memcpy), and a zeroed free-space object (size 0) makes it
// loop forever in H5HG__cache_heap_deserialize (no signal stops it). So before such a file is
// used, every collection in it ("GCOL", version 1) is walked the way libhdf5 will walk it, and a
// collection whose objects do not tile it exactly is refused. Files Unroll writes now keep nothing
// on the global heap and are not scanned.
import Foundation

enum GlobalHeapCheck {
    /// Collection signature and the size of a collection and of an object header (8-byte lengths).
    static let signature = Array("GCOL".utf8)
    static let headerSize = 16, objectHeaderSize = 16

    /// Scans `path` (of `fileSize` bytes) for global heap collections and checks each.
    /// - Throws: `DataError.invalid` naming the collection's offset and the object that does not fit.
    static func validate(_ path: String, fileSize: Int) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DataError.posix(path, "open") }
        defer { try? handle.close() }  // read-only: closing cannot lose data
        let block = 1 << 22
        var base = 0
        var carry = Data()
        while base < fileSize {
            let chunk: Data
            do {
                chunk = try handle.read(upToCount: block) ?? Data()
            } catch {
                throw DataError.io(path: path, operation: "read", reason: error.localizedDescription)
            }
            if chunk.isEmpty { break }
            // The last 3 bytes of the previous block, so a signature across blocks is found.
            let window = carry + chunk
            let start = base - carry.count
            var candidates: [Int] = []
            window.withUnsafeBytes { raw in
                guard let p = raw.baseAddress else { return }
                var offset = 0
                // memchr finds each "G" fast (memmem is not imported); the rest is compared here.
                while offset + 4 <= raw.count, let hit = memchr(p + offset, Int32(signature[0]), raw.count - offset) {
                    let at = UnsafeRawPointer(hit) - p
                    if at + 4 <= raw.count, raw[at + 1] == signature[1], raw[at + 2] == signature[2],
                       raw[at + 3] == signature[3] {
                        candidates.append(start + at)
                    }
                    offset = at + 1
                }
            }
            for at in candidates { try check(handle, path: path, at: at, fileSize: fileSize) }
            base += chunk.count
            carry = chunk.suffix(3)
            try handle.seek(toOffset: UInt64(base))
        }
    }

    /// Reads `count` bytes at `offset` (fewer at the end of the file).
    private static func bytes(_ handle: FileHandle, path: String, at offset: Int, count: Int) throws -> [UInt8] {
        do {
            try handle.seek(toOffset: UInt64(offset))
            return [UInt8](try handle.read(upToCount: count) ?? Data())
        } catch {
            throw DataError.io(path: path, operation: "read", reason: error.localizedDescription)
        }
    }

    private static func le(_ b: [UInt8], _ at: Int, _ n: Int) -> Int {
        (0..<n).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) }
    }

    /// Checks the collection at `at` if it is one (signature, version 1, reserved bytes zero).
    private static func check(_ handle: FileHandle, path: String, at: Int, fileSize: Int) throws {
        let header = try bytes(handle, path: path, at: at, count: headerSize)
        guard header.count == headerSize, header[4] == 1, header[5] == 0, header[6] == 0, header[7] == 0 else { return }
        let field = "global heap collection at offset \(at)"
        let size = le(header, 8, 8)
        // libhdf5 never writes a collection smaller than 4096 bytes (H5HG_MINSIZE).
        guard size >= 4096, size <= fileSize - at else {
            throw DataError.invalid(file: path, field: field, expected: "4096 to \(fileSize - at) bytes (within the file)",
                                    found: "\(size)")
        }
        let heap = try bytes(handle, path: path, at: at, count: size)
        var p = headerSize
        while p < size {
            // Too little room left for an object header: libhdf5 takes it as free space.
            if p + objectHeaderSize > size { break }
            let index = le(heap, p, 2), objectSize = le(heap, p + 8, 8)
            let need: Int
            if index > 0 {
                let aligned = objectSize > size ? size : (objectSize + 7) & ~7
                need = objectHeaderSize + aligned
            } else {
                need = objectSize  // free space: its size includes its header
            }
            guard need > 0, need <= size - p else {
                throw DataError.invalid(file: path, field: "\(field): object \(index) at offset \(at + p)",
                                        expected: "an object within the collection's \(size - p) remaining bytes",
                                        found: "\(index == 0 ? "free space" : "an object") of \(objectSize) bytes")
            }
            p += need
        }
    }
}
