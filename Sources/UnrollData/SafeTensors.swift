// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, a
// JSON header of N bytes {"__metadata__": {str: str}, NAME: {"dtype", "shape", "data_offsets":
// [begin, end]}} padded with spaces to a multiple of 8, then the tensors' bytes, row-major,
// little-endian, offsets relative to the end of the header. Written F32 only; read F32, F64, F16
// and BF16 (converted to Float). The reader checks every offset, size and dtype and names the
// first entry that does not fit.
import Foundation

/// One tensor of a safetensors file, converted to Float.
public struct SafeTensor: Sendable, Equatable {
    /// The dtype as stored ("F32", "F64", "F16", "BF16").
    public var dtype: String
    public var shape: [Int]
    /// Elements in row-major order.
    public var values: [Float]

    public init(dtype: String = "F32", shape: [Int], values: [Float]) {
        self.dtype = dtype
        self.shape = shape
        self.values = values
    }
}

/// A parsed safetensors header entry (before the data is read).
public struct SafeTensorsEntry: Sendable, Equatable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    /// [begin, end) in the data section (after the header).
    public var begin: Int
    public var end: Int
}

/// Reads and writes .safetensors files.
public enum SafeTensors {
    /// Dtypes `read` converts to Float, with their element size in bytes.
    public static let readableDtypes: [String: Int] = ["F32": 4, "F64": 8, "F16": 2, "BF16": 2]
    /// Element sizes of the other dtypes the format defines (refused by `read` with their name).
    static let otherDtypes: [String: Int] = ["I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "U16": 2, "U32": 4,
                                             "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1]

    /// The bytes of a safetensors file holding `tensors` as F32, in the given order, with
    /// `metadata` under `__metadata__` (string values only, as the format requires).
    /// - Precondition: each tensor's `values.count` is the product of its shape.
    public static func encode(_ tensors: [(name: String, tensor: SafeTensor)], metadata: [String: String] = [:]) -> Data {
        var entries: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            entries.append("\"__metadata__\":{" + fields.joined(separator: ",") + "}")
        }
        var offset = 0
        for (name, t) in tensors {
            precondition(t.values.count == t.shape.reduce(1, *), "\(name): \(t.values.count) values for shape \(t.shape)")
            let bytes = 4 * t.values.count
            entries.append("\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                           + "\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out = Data(capacity: 8 + header.count + offset)
        var length = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for (_, t) in tensors {
            if Int(littleEndian: 1) == 1 {
                t.values.withUnsafeBufferPointer { out.append(contentsOf: UnsafeRawBufferPointer($0)) }
            } else {
                for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
            }
        }
        return out
    }

    /// Writes `tensors` as an F32 safetensors file at `path`, atomically (see `AtomicFile`).
    /// - Throws: `DataError` naming `path` when it cannot be written (storage exhausted included).
    public static func write(_ tensors: [(name: String, tensor: SafeTensor)], metadata: [String: String] = [:],
                             to path: String) throws {
        let data = encode(tensors, metadata: metadata)
        try AtomicFile.write(to: path, expectedBytes: data.count) { tmp in try writeBytes(data, to: tmp) }
    }

    /// True if `path` names a .safetensors file, or a file whose first bytes are a plausible
    /// safetensors header (a length below the file size, then `{`).
    public static func isSafeTensors(_ path: String) -> Bool {
        if path.lowercased().hasSuffix(".safetensors") { return true }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }  // read-only handle: closing cannot lose data
        guard let head = try? handle.read(upToCount: 9), head.count == 9 else { return false }
        let n = head.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        return n >= 2 && n <= UInt64(info.st_size) - 8 && head[head.startIndex + 8] == UInt8(ascii: "{")
    }

    /// Parses the header of a safetensors file's bytes: the entries sorted by offset, and the metadata.
    /// - Throws: `DataError.invalid` naming `file` and the entry for a short file, a header that is
    ///   not a JSON object, an entry without dtype/shape/data_offsets, an unknown dtype, offsets
    ///   outside the data or not matching the shape, or tensors that overlap or leave gaps.
    public static func parseHeader(_ data: Data, file: String) throws -> (entries: [SafeTensorsEntry], metadata: [String: String], dataStart: Int) {
        func bad(_ field: String, _ expected: String, _ found: String) -> DataError {
            DataError.invalid(file: file, field: field, expected: expected, found: found)
        }
        guard data.count >= 8 else { throw bad("header", "a safetensors file (8-byte header length)", "\(data.count) bytes") }
        let base = data.startIndex
        let n = data[base..<base + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard n <= UInt64(data.count - 8) else {
            throw bad("header", "a header length within the file (\(data.count - 8) bytes)", "\(n)")
        }
        let headerBytes = data[(base + 8)..<(base + 8 + Int(n))]
        guard let object = try? JSONSerialization.jsonObject(with: headerBytes), let header = object as? [String: Any] else {
            throw bad("header", "a JSON object", "\(n) bytes that are not one")
        }
        var metadata: [String: String] = [:]
        var entries: [SafeTensorsEntry] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad(name, "an object of strings", "\(type(of: value))") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad("__metadata__.\(k)", "a string", "\(v)") }
                    metadata[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shape = (e["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (e["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  shape.count == (e["shape"] as? [Any])?.count, offsets.count == 2 else {
                throw bad(name, "{\"dtype\": str, \"shape\": [int], \"data_offsets\": [begin, end]}", "\(value)")
            }
            guard let size = readableDtypes[dtype] ?? otherDtypes[dtype] else { throw bad(name, "a safetensors dtype", "'\(dtype)'") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw bad(name, "a shape of non-negative sizes", "\(shape)") }
            let bytes = shape.reduce(1, *) * size
            guard offsets[0] >= 0, offsets[1] - offsets[0] == bytes else {
                throw bad(name, "data_offsets spanning \(bytes) bytes (\(dtype) \(shape))", "\(offsets)")
            }
            entries.append(SafeTensorsEntry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1]))
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        let dataStart = 8 + Int(n), dataBytes = data.count - dataStart
        var expectedBegin = 0
        for e in entries {
            guard e.begin == expectedBegin else {
                throw bad(e.name, "data starting at byte \(expectedBegin) (tensors contiguous, no overlap or gap)", "\(e.begin)")
            }
            expectedBegin = e.end
        }
        guard expectedBegin == dataBytes else {
            throw bad("data", "\(expectedBegin) bytes of tensors after the header", "\(dataBytes)")
        }
        return (entries, metadata, dataStart)
    }

    /// Reads every tensor of the safetensors file at `path`, converting F64/F16/BF16 to Float.
    /// - Throws: `DataError` for an unreadable file, a header `parseHeader` refuses, or a tensor
    ///   of a non-float dtype (named with its dtype).
    public static func read(_ path: String) throws -> (tensors: [String: SafeTensor], metadata: [String: String]) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw DataError.posix(path, "open") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw DataError.io(path: path, operation: "read", reason: "not a regular file")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError.posix(path, "read") }
        let (entries, metadata, dataStart) = try parseHeader(data, file: path)
        var tensors: [String: SafeTensor] = [:]
        for e in entries {
            guard let width = readableDtypes[e.dtype] else {
                throw DataError.invalid(file: path, field: e.name, expected: "a float tensor (F32, F64, F16 or BF16)", found: e.dtype)
            }
            let count = (e.end - e.begin) / width
            let start = data.startIndex + dataStart + e.begin
            let values: [Float] = data[start..<(start + e.end - e.begin)].withUnsafeBytes { raw in
                func u16(_ i: Int) -> UInt16 { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
                switch e.dtype {
                case "F32": return (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
                case "F64": return (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
                case "BF16": return (0..<count).map { Float(bitPattern: UInt32(u16($0)) << 16) }
                default: return (0..<count).map { halfToFloat(u16($0)) }
                }
            }
            tensors[e.name] = SafeTensor(dtype: e.dtype, shape: e.shape, values: values)
        }
        return (tensors, metadata)
    }

    /// IEEE 754 binary16 → Float (normals, subnormals, infinities, NaN).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign: Float = (h & 0x8000) != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F), fraction = Float(h & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * 0x1p-24
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }

    /// A JSON string literal of `s`.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Writes all of `data` to a new file at `path` (which must not exist) and closes it.
/// - Throws: `DataError.io` naming `path` and the failing call (errno in words).
func writeBytes(_ data: Data, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw DataError.posix(path, "create") }
    var failure: DataError?
    data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        var done = 0
        while done < raw.count {
            let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                failure = DataError.posix(path, "write")
                return
            }
            done += n
        }
    }
    if close(fd) != 0, failure == nil { failure = DataError.posix(path, "close") }
    if let failure { throw failure }
}
