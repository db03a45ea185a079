// SHA-256 through swift-crypto (BoringSSL's implementation: SHA-NI or AVX2 where the CPU has
// them), used to record the source files a dataset was made from and, at every start of
// `unroll train`, to check that all ranks read the same dataset. Files are hashed in 4 MiB reads
// into one reused buffer, so hashing allocates nothing per block.
import Crypto
import Foundation

/// Lower-case hex SHA-256 digests of byte collections and whole files.
public enum SHA256Hex {
    /// Hex digest of `bytes`.
    public static func hash<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var hasher = Crypto.SHA256()
        let contiguous: Void? = bytes.withContiguousStorageIfAvailable { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        if contiguous == nil { hasher.update(data: Array(bytes)) }
        return hex(hasher.finalize())
    }

    /// Hex digest of the whole file at `path`.
    /// - Parameter progress: called after each read with the bytes hashed so far.
    /// - Throws: `DataError.io` naming the path when it cannot be opened or a read fails.
    public static func file(_ path: String, progress: ((Int) -> Void)? = nil) throws -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError.io(path: path, operation: "open for reading (SHA-256)", reason: errnoText()) }
        defer { close(fd) }  // read-only descriptor: closing cannot lose data
        let size = 4 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
        defer { buffer.deallocate() }
        var hasher = Crypto.SHA256()
        var total = 0
        while true {
            let n = read(fd, buffer.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError.io(path: path, operation: "read (SHA-256)", reason: errnoText())
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += n
            progress?(total)
        }
        return hex(hasher.finalize())
    }

    private static func hex(_ digest: Crypto.SHA256.Digest) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
