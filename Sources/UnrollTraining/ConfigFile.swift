// Configuration files for `unroll train --config FILE`: TOML (parsed by TOMLKit, i.e. toml++, so
// all of TOML 1.0) or JSON, whose keys are the long command-line options (`cell = "lstm"`,
// `batch-size = 32`; `_` may stand for `-`). Tables — `[model]`, inline `{ … }`, dotted keys
// `model.hidden`, nested JSON objects — only group keys: `[model] hidden = 200` is `--hidden 200`.
// A key given twice (also in two tables, or as `batch_size` and `batch-size`) is refused with its
// name and the file, as are arrays, dates and unknown keys (the caller checks each key against
// the command's options). The entries become arguments placed before the real command line, so
// options given there override the file.
import Foundation
import TOMLKit

/// Reads option files.
public enum ConfigFile {
    /// One key of a configuration file.
    public struct Entry: Equatable, Sendable {
        /// The key as written, with its tables: `model.hidden`.
        public var path: String
        /// The option it stands for, without dashes: `hidden`.
        public var option: String
        /// The command-line arguments: `["--hidden", "200"]`, `["--forget-bias"]`, `["--no-forget-bias"]`.
        public var arguments: [String]
    }

    /// The `--key value` arguments a config file stands for (all entries' arguments, in key order).
    /// - Throws: `TrainingError.config` naming the file and the key (one line).
    public static func arguments(fromFile path: String) throws -> [String] {
        try entries(fromFile: path).flatMap(\.arguments)
    }

    /// The entries of a config file, sorted by option name.
    /// - Throws: `TrainingError.config` naming the file (and line or key) when the file cannot be
    ///   read, is neither valid TOML nor valid JSON, gives a key twice, or has a value that is not
    ///   a string, number or boolean.
    public static func entries(fromFile path: String) throws -> [Entry] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.config("\(path): cannot read the configuration file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let values: [(String, Scalar)]
        if text.drop(while: { $0.isWhitespace }).first == "{" {
            values = try jsonValues(data, path: path)
        } else {
            values = try tomlValues(text, path: path)
        }
        var seen: [String: String] = [:]
        var entries: [Entry] = []
        for (keyPath, value) in values {
            let name = keyPath.split(separator: ".").last.map(String.init) ?? keyPath
            let option = name.replacingOccurrences(of: "_", with: "-")
            if let earlier = seen[option] {
                throw TrainingError.config("\(path): duplicate key '\(keyPath)' (--\(option) is already given by '\(earlier)')")
            }
            seen[option] = keyPath
            let flag = "--" + option
            let arguments: [String]
            switch value {
            case .bool(true): arguments = [flag]
            case .bool(false): arguments = ["--no-" + option]
            case .text(let s): arguments = [flag, s]
            }
            entries.append(Entry(path: keyPath, option: option, arguments: arguments))
        }
        return entries.sorted { $0.option < $1.option }
    }

    /// A value an option can take.
    enum Scalar: Equatable {
        case text(String)
        case bool(Bool)
    }

    static func tomlValues(_ text: String, path: String) throws -> [(String, Scalar)] {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw TrainingError.config("\(path):\(error.source.begin.line): \(error.description)")
        }
        var out: [(String, Scalar)] = []
        func walk(_ table: TOMLTable, _ prefix: String) throws {
            for key in table.keys {
                let keyPath = prefix.isEmpty ? key : prefix + "." + key
                guard let value = table[key] else { continue }
                if let nested = value.table {
                    try walk(nested, keyPath)
                } else if let b = value.bool {
                    out.append((keyPath, .bool(b)))
                } else if let i = value.int {
                    out.append((keyPath, .text(String(i))))
                } else if let d = value.double {
                    out.append((keyPath, .text("\(d)")))
                } else if let s = value.string {
                    out.append((keyPath, .text(s)))
                } else if value.array != nil {
                    throw TrainingError.config("\(path): \(keyPath): an array, but every option takes one value")
                } else {
                    throw TrainingError.config("\(path): \(keyPath): expected a string, number or boolean, found a \(value.type)")
                }
            }
        }
        try walk(table, "")
        return out
    }

    static func jsonValues(_ data: Data, path: String) throws -> [(String, Scalar)] {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw TrainingError.config("\(path): not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = object as? [String: Any] else {
            throw TrainingError.config("\(path): expected a JSON object of option: value pairs")
        }
        // JSONSerialization keeps the last of two equal keys of one object: find them in the text.
        if let key = duplicateJSONKey(in: data) {
            throw TrainingError.config("\(path): duplicate key '\(key)'")
        }
        var out: [(String, Scalar)] = []
        func add(_ dict: [String: Any], _ prefix: String) throws {
            for key in dict.keys.sorted() {
                let keyPath = prefix.isEmpty ? key : prefix + "." + key
                switch dict[key] {
                case let nested as [String: Any]: try add(nested, keyPath)
                case let b as Bool where type(of: dict[key]!) == type(of: NSNumber(value: true)): out.append((keyPath, .bool(b)))
                case let n as NSNumber: out.append((keyPath, .text(n.stringValue)))
                case let s as String: out.append((keyPath, .text(s)))
                case is [Any]: throw TrainingError.config("\(path): \(keyPath): an array, but every option takes one value")
                default: throw TrainingError.config("\(path): \(keyPath): expected a string, number or boolean")
                }
            }
        }
        try add(dict, "")
        return out
    }

    /// The first key given twice in one object of a valid JSON text (dotted with its objects), or nil.
    static func duplicateJSONKey(in data: Data) -> String? {
        let bytes = [UInt8](data)
        // One frame per open object or array: the keys seen, whether the next string is a key,
        // and the key under which the frame sits.
        struct Frame { var isObject: Bool; var keys: Set<String> = []; var expectsKey: Bool; var name: String }
        var stack: [Frame] = []
        var lastKey = ""
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "{"):
                stack.append(Frame(isObject: true, expectsKey: true, name: lastKey))
            case UInt8(ascii: "["):
                stack.append(Frame(isObject: false, expectsKey: false, name: lastKey))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = stack.popLast()
            case UInt8(ascii: ","):
                if let top = stack.indices.last, stack[top].isObject { stack[top].expectsKey = true }
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < bytes.count && bytes[j] != UInt8(ascii: "\"") { j += bytes[j] == UInt8(ascii: "\\") ? 2 : 1 }
                if let top = stack.indices.last, stack[top].isObject, stack[top].expectsKey {
                    let raw = Data(bytes[i...min(j, bytes.count - 1)])
                    let key = (try? JSONSerialization.jsonObject(with: raw, options: .fragmentsAllowed)) as? String ?? ""
                    let dotted = (stack.map(\.name).filter { !$0.isEmpty } + [key]).joined(separator: ".")
                    if !stack[top].keys.insert(key).inserted { return dotted }
                    stack[top].expectsKey = false
                    lastKey = key
                }
                i = j
            default:
                break
            }
            i += 1
        }
        return nil
    }
}
