// NumPy inputs of `unroll prepare sequences`: the .npy array format (header versions 1–3,
// little-endian float32/float64/int8–int64/uint8–uint32/bool, C order) and .npz archives (zip,
// stored or deflate, read with ZIPFoundation). Object arrays (pickles), Fortran order, big-endian
// and structured dtypes are refused with one line naming the file and the array; nothing is unpickled.
import Foundation
import ZIPFoundation

/// One array of a .npy/.npz file, elements in C order.
public struct NumPyArray: Sendable, Equatable {
    /// Elements, converted on read: floats to float32, integers and booleans to int64.
    public enum Elements: Sendable, Equatable {
        case floats([Float])
        case integers([Int64])
    }

    /// The dtype as stored (`descr`), e.g. `<f4`.
    public var dtype: String
    public var shape: [Int]
    public var elements: Elements

    public init(dtype: String, shape: [Int], elements: Elements) {
        self.dtype = dtype
        self.shape = shape
        self.elements = elements
    }

    /// Whether the elements are floating point.
    public var isFloat: Bool {
        if case .floats = elements { return true }
        return false
    }

    /// Number of elements (product of `shape`).
    public var count: Int { shape.reduce(1, *) }
}

/// Reads .npy and .npz files.
public enum NumPyReader {
    /// Reads the arrays `names` (without `.npy`) of the .npz archive at `path`; absent names are
    /// missing from the result. Other members are not read.
    /// - Throws: `DataError` naming `path` and the member for a file that is not a zip archive, a
    ///   compression other than stored/deflate, or an array `parse` refuses.
    public static func readArchive(_ path: String, names: [String]) throws -> [String: NumPyArray] {
        var info = stat()
        guard stat(path, &info) == 0 else { throw DataError.posix(path, "open input") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw DataError.io(path: path, operation: "read input", reason: "not a regular file")
        }
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw DataError.invalid(file: path, field: "file", expected: "a NumPy .npz (zip) archive",
                                    found: "no readable zip directory (\(error))")
        }
        var arrays: [String: NumPyArray] = [:]
        for name in names {
            guard let entry = archive[name + ".npy"] else { continue }
            let member = name + ".npy"
            guard entry.type == .file else {
                throw DataError.invalid(file: path, field: member, expected: "a file", found: "\(entry.type)")
            }
            let size = Double(entry.uncompressedSize)
            if let short = SystemMemory.shortfall(bytes: size * 2) {
                throw DataError.invalid(file: path, field: member, expected: "an array that fits in memory",
                                        found: "\(Int(size)) bytes (\(short))")
            }
            var data = Data()
            data.reserveCapacity(Int(entry.uncompressedSize))
            do {
                _ = try archive.extract(entry) { data.append($0) }
            } catch Archive.ArchiveError.invalidCompressionMethod {
                throw DataError.invalid(file: path, field: member, expected: "stored or deflate compression",
                                        found: "another compression method")
            } catch {
                throw DataError.invalid(file: path, field: member, expected: "a readable zip member",
                                        found: "\(error)")
            }
            arrays[name] = try parse(data, file: path, field: name)
        }
        return arrays
    }

    /// Parses the bytes of one .npy file.
    /// - Parameters: `file`, `field`: the names used in error messages.
    /// - Throws: `DataError.invalid` for a bad magic or header, an object dtype (a pickled
    ///   array), `fortran_order: True`, a big-endian, structured or unsupported dtype, or too few bytes.
    public static func parse(_ data: Data, file: String, field: String) throws -> NumPyArray {
        func bad(_ expected: String, _ found: String) -> DataError {
            DataError.invalid(file: file, field: field, expected: expected, found: found)
        }
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw bad("a .npy array (magic \\x93NUMPY)", "other bytes")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("a complete .npy header", "\(data.count) bytes") }
            headerLength = (8..<12).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 8)) }
            headerStart = 12
        default:
            throw bad(".npy format version 1, 2 or 3", "version \(major).\(bytes[7])")
        }
        guard data.count >= headerStart + headerLength else {
            throw bad("a complete .npy header", "\(data.count) bytes")
        }
        let base = data.startIndex
        let header = String(decoding: data[(base + headerStart)..<(base + headerStart + headerLength)], as: UTF8.self)
        guard let descrText = headerValue(header, "descr") else {
            throw bad("a 'descr' in the .npy header", quoted(header))
        }
        guard descrText.first == "'" || descrText.first == "\"" else {
            throw bad("a simple dtype", "a structured dtype \(descrText.prefix(40))")
        }
        let descr = String(descrText.dropFirst().prefix { $0 != "'" && $0 != "\"" })
        if descr.contains("O") {
            throw bad("a numeric array", "dtype '\(descr)': a pickled object array (refused: nothing is unpickled)")
        }
        guard let fortran = headerValue(header, "fortran_order") else {
            throw bad("'fortran_order' in the .npy header", quoted(header))
        }
        if fortran.hasPrefix("True") {
            throw bad("C order", "fortran_order True (save with np.ascontiguousarray)")
        }
        guard let shapeText = headerValue(header, "shape"), shapeText.first == "(",
              let close = shapeText.firstIndex(of: ")") else {
            throw bad("a 'shape' tuple in the .npy header", quoted(header))
        }
        let fields = shapeText[shapeText.index(after: shapeText.startIndex)..<close]
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = fields.compactMap { Int($0) }
        guard shape.count == fields.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw bad("a shape of non-negative integers", String(shapeText[...close]))
        }
        let order = descr.first
        let kind = descr.dropFirst().first
        let width = Int(descr.dropFirst(2)) ?? 0
        let supported: Set<String> = ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "b1"]
        guard let kind, supported.contains("\(kind)\(width)"),
              order == "<" || order == "|" || (order == "=" && Int(littleEndian: 1) == 1) else {
            throw bad("dtype <f4, <f8, <i4, <i8, |u1 or |b1 (little-endian)", "'\(descr)'")
        }
        let count = shape.reduce(1, *)
        let start = base + headerStart + headerLength
        guard data.count - (headerStart + headerLength) >= count * width else {
            throw bad("\(count * width) data bytes for shape \(shape)", "\(data.count - headerStart - headerLength)")
        }
        let elements: NumPyArray.Elements = data[start..<(start + count * width)].withUnsafeBytes { raw in
            func load<T>(_: T.Type, _ i: Int) -> T { raw.loadUnaligned(fromByteOffset: i * width, as: T.self) }
            switch (kind, width) {
            case ("f", 4): return .floats((0..<count).map { Float(bitPattern: UInt32(littleEndian: load(UInt32.self, $0))) })
            case ("f", _): return .floats((0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: load(UInt64.self, $0)))) })
            case ("i", 1): return .integers((0..<count).map { Int64(load(Int8.self, $0)) })
            case ("i", 2): return .integers((0..<count).map { Int64(Int16(littleEndian: load(Int16.self, $0))) })
            case ("i", 4): return .integers((0..<count).map { Int64(Int32(littleEndian: load(Int32.self, $0))) })
            case ("i", _): return .integers((0..<count).map { Int64(littleEndian: load(Int64.self, $0)) })
            case ("u", 2): return .integers((0..<count).map { Int64(UInt16(littleEndian: load(UInt16.self, $0))) })
            case ("u", 4): return .integers((0..<count).map { Int64(UInt32(littleEndian: load(UInt32.self, $0))) })
            default: return .integers((0..<count).map { Int64(load(UInt8.self, $0)) })  // u1, b1
            }
        }
        return NumPyArray(dtype: descr, shape: shape, elements: elements)
    }

    /// The text after `'key':` in a .npy header dict, leading spaces removed.
    private static func headerValue(_ header: String, _ key: String) -> Substring? {
        for quote in ["'", "\""] {
            if let range = header.range(of: quote + key + quote) {
                var rest = header[range.upperBound...].drop { $0 == " " }
                guard rest.first == ":" else { return nil }
                rest = rest.dropFirst().drop { $0 == " " }
                return rest
            }
        }
        return nil
    }

    /// The bytes of a .npy file (format version 1) holding `array`: for tests and for writing
    /// fixtures. Floats are written as `<f4`, integers as `<i8` unless `dtype` says otherwise
    /// (`<f8`, `<i4`, `|u1`, `|b1`; any other text is written as the header's descr as is, with
    /// 8-byte elements).
    public static func npyBytes(_ array: NumPyArray, fortranOrder: Bool = false) -> Data {
        let shapeText = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(array.dtype)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        func append<T>(_ value: T) { withUnsafeBytes(of: value) { data.append(contentsOf: $0) } }
        switch array.elements {
        case let .floats(values):
            for v in values { if array.dtype == "<f8" { append(Double(v).bitPattern.littleEndian) } else { append(v.bitPattern.littleEndian) } }
        case let .integers(values):
            for v in values {
                switch array.dtype {
                case "<i4": append(Int32(truncatingIfNeeded: v).littleEndian)
                case "|u1", "|b1": append(UInt8(truncatingIfNeeded: v))
                default: append(v.littleEndian)
                }
            }
        }
        return data
    }
}

/// Writes .npz archives (for `unroll export --format npz`).
public enum NumPyWriter {
    /// Writes `arrays` as the members `NAME.npy` of a new, uncompressed (stored) .npz archive at
    /// `path`, atomically (see `AtomicFile`); `numpy.load` reads it. Float arrays are `<f4`.
    /// - Throws: `DataError` naming `path` (or the member) when the archive cannot be written.
    public static func writeArchive(_ arrays: [(name: String, array: NumPyArray)], to path: String) throws {
        let expected = arrays.reduce(0) { $0 + 4 * $1.array.count + 200 }
        try AtomicFile.write(to: path, expectedBytes: expected) { tmp in
            // ZIPFoundation creates the archive itself: the temporary file AtomicFile made goes first.
            unlink(tmp)
            let archive: Archive
            do {
                archive = try Archive(url: URL(fileURLWithPath: tmp), accessMode: .create)
            } catch {
                throw DataError.io(path: tmp, operation: "create a zip archive", reason: "\(error)")
            }
            for (name, array) in arrays {
                let bytes = NumPyReader.npyBytes(array)
                do {
                    try archive.addEntry(with: name + ".npy", type: .file, uncompressedSize: Int64(bytes.count),
                                         compressionMethod: .none) { position, size in
                        bytes.subdata(in: Int(position)..<(Int(position) + size))
                    }
                } catch {
                    throw DataError.io(path: tmp, operation: "add \(name).npy", reason: "\(error)")
                }
            }
        }
    }
}
