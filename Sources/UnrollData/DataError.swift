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

    /// One-line, human-readable message.
    public var description: String {
        switch self {
        case let .hdf5(file, object, operation, detail):
            return "\(file): \(object): HDF5 \(operation) failed: \(detail)"
        case let .invalid(file, field, expected, found):
            return "\(file): \(field): expected \(expected), found \(found)"
        case let .io(path, operation, reason):
            return "\(path): cannot \(operation): \(reason)"
        case let .argument(name, expected, found):
            return "\(name): expected \(expected), found \(found)"
        }
    }

    public var errorDescription: String? { description }

    /// Builds an `.io` error from the current `errno`.
    static func posix(_ path: String, _ operation: String, errno code: Int32 = errno) -> DataError {
        .io(path: path, operation: operation, reason: String(cString: strerror(code)))
    }
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
