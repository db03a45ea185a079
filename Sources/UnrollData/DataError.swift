// DataError: the one error type UnrollData throws. Every case renders as a single line that names
// the file (or option) and the field involved, and says what was expected and what was found, so
// a CLI can print it as is and a test can match on the case.
import Foundation

/// An error from the data layer: HDF5 failures, invalid dataset files, OS-level I/O failures and
/// arguments that do not fit the data.
public enum DataError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// An HDF5 library call failed. `detail` is HDF5's error stack, outermost call first, joined by " | ".
    case hdf5(file: String, object: String, operation: String, detail: String)
    /// A file or input exists but its content is not what the format requires.
    case invalid(file: String, field: String, expected: String, found: String)
    /// An operating-system file operation failed (`reason` is the strerror text).
    case io(path: String, operation: String, reason: String)
    /// An argument (option) is inconsistent with itself or with the data.
    case argument(name: String, expected: String, found: String)
    /// Writing `path` stopped because storage ran out: no space left on the device, the disk quota,
    /// or the file-size limit (`reason` says which). `written` bytes had reached the disk, of about
    /// `expected` (nil if unknown). Thrown by `AtomicFile.write`, which has removed the partial file.
    case storageExhausted(path: String, reason: String, written: Int, expected: Int?)

    /// One-line, human-readable message.
    public var description: String {
        switch self {
        case let .hdf5(file, object, operation, detail):
            // HDF5's whole stack is 300–400 characters of internal function names; what the user
            // needs is its innermost entry, or in words the two failures that mean a damaged file.
            if detail.contains("Fletcher32") {
                return "\(file): \(object): Fletcher32 checksum mismatch: the stored data is corrupted (HDF5 \(operation))"
            }
            let innermost = detail.components(separatedBy: " | ").last ?? detail
            if detail.contains("truncated file") {
                return "\(file): \(object): damaged or truncated file (HDF5 \(operation): \(innermost))"
            }
            return "\(file): \(object): HDF5 \(operation) failed: \(innermost)"
        case let .invalid(file, field, expected, found):
            return "\(file): \(field): expected \(expected), found \(found)"
        case let .io(path, operation, reason):
            return "\(path): cannot \(operation): \(reason)"
        case let .argument(name, expected, found):
            return "\(name): expected \(expected), found \(found)"
        case let .storageExhausted(path, reason, written, expected):
            let total = expected.map { " of \(megabytes($0))" } ?? ""
            return "\(path): \(reason) (wrote \(megabytes(written))\(total) MB)"
        }
    }

    /// The storage condition behind this error, if it is one (in words: "no space left on
    /// device", "disk quota exceeded", "file too large (file-size limit)"), else nil. For an HDF5
    /// failure it is read from the `errno = N` that HDF5's file driver puts in its error stack.
    public var storageExhaustionReason: String? {
        switch self {
        case let .hdf5(_, _, _, detail):
            // e.g. "H5FD_sec2_write(): file write failed: ..., errno = 28, error message = ..."
            guard let range = detail.range(of: #"errno = [0-9]+"#, options: .regularExpression),
                  let code = Int32(detail[range].dropFirst("errno = ".count)) else { return nil }
            return Self.storageExhaustionReason(errno: code)
        case let .io(_, _, reason):
            return [ENOSPC, EDQUOT, EFBIG].first { String(cString: strerror($0)) == reason }
                .flatMap { Self.storageExhaustionReason(errno: $0) }
        case .storageExhausted(_, let reason, _, _):
            return reason
        default:
            return nil
        }
    }

    /// Words for the errno values that mean the storage ran out; nil for any other.
    static func storageExhaustionReason(errno code: Int32) -> String? {
        switch code {
        case ENOSPC: return "no space left on device"
        case EDQUOT: return "disk quota exceeded"
        // With SIGXFSZ ignored (as `unroll` does) a write past RLIMIT_FSIZE fails with EFBIG.
        case EFBIG: return "file too large (file-size limit)"
        default: return nil
        }
    }

    public var errorDescription: String? { description }

    /// Builds an `.io` error from the current `errno`.
    static func posix(_ path: String, _ operation: String, errno code: Int32 = errno) -> DataError {
        .io(path: path, operation: operation, reason: String(cString: strerror(code)))
    }
}

/// Bytes in MB (10^6) with two significant decimals for small sizes: "0.14", "3.52", "812".
func megabytes(_ bytes: Int) -> String {
    let mb = Double(bytes) / 1e6
    return String(format: mb < 10 ? "%.2f" : (mb < 100 ? "%.1f" : "%.0f"), mb)
}

/// `s` in double quotes for messages and summaries, with quotes, backslashes and control
/// characters escaped (unlike `String(reflecting:)`, which also escapes `'`).
public func quoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
