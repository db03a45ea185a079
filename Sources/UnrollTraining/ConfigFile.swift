// Configuration files for `unroll train --config FILE`: JSON or TOML whose keys are the long
// command-line options (`cell = "lstm"`, `batch-size = 32`; `_` may stand for `-`; TOML [tables]
// only group keys). They become command-line arguments placed before the real ones, so options
// given on the command line override the file.
import Foundation

/// Reads option files.
public enum ConfigFile {
    /// The `--key value` arguments a config file stands for.
    /// - Throws: `TrainingError.config` naming the file, the line and what was expected.
    public static func arguments(fromFile path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.config("\(path): cannot read the configuration file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let pairs: [(String, String)]
        if text.drop(while: { $0.isWhitespace }).first == "{" {
            pairs = try jsonPairs(data, path: path)
        } else {
            pairs = try tomlPairs(text, path: path)
        }
        var args: [String] = []
        for (key, value) in pairs {
            let option = "--" + key.replacingOccurrences(of: "_", with: "-")
            switch value {
            case "true": args.append(option)
            case "false": args.append("--no-" + option.dropFirst(2))
            default: args += [option, value]
            }
        }
        return args
    }

    private static func jsonPairs(_ data: Data, path: String) throws -> [(String, String)] {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw TrainingError.config("\(path): not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = object as? [String: Any] else {
            throw TrainingError.config("\(path): expected a JSON object of option: value pairs")
        }
        var pairs: [(String, String)] = []
        func add(_ dict: [String: Any]) throws {
            for key in dict.keys.sorted() {
                switch dict[key] {
                case let nested as [String: Any]: try add(nested)
                case let b as Bool where type(of: dict[key]!) == type(of: NSNumber(value: true)): pairs.append((key, b ? "true" : "false"))
                case let n as NSNumber: pairs.append((key, n.stringValue))
                case let s as String: pairs.append((key, s))
                default: throw TrainingError.config("\(path): \(key): expected a string, number or boolean")
                }
            }
        }
        try add(dict)
        return pairs
    }

    /// The TOML subset a flat configuration needs: comments, [tables], key = string | integer |
    /// float | boolean.
    static func tomlPairs(_ text: String, path: String) throws -> [(String, String)] {
        var pairs: [(String, String)] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = stripComment(String(rawLine)).trimmingCharacters(in: .whitespaces)
            if line.isEmpty || (line.hasPrefix("[") && line.hasSuffix("]")) { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw TrainingError.config("\(path):\(number + 1): expected key = value, found \(line)")
            }
            var key = line[..<eq].trimmingCharacters(in: .whitespaces)
            if key.hasPrefix("\""), key.hasSuffix("\""), key.count >= 2 { key = String(key.dropFirst().dropLast()) }
            let rawValue = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, !rawValue.isEmpty else {
                throw TrainingError.config("\(path):\(number + 1): expected key = value, found \(line)")
            }
            let value: String
            if rawValue.hasPrefix("\"") || rawValue.hasPrefix("'") {
                guard rawValue.count >= 2, rawValue.last == rawValue.first else {
                    throw TrainingError.config("\(path):\(number + 1): \(key): unterminated string")
                }
                let inner = String(rawValue.dropFirst().dropLast())
                value = rawValue.hasPrefix("\"") ? inner.replacingOccurrences(of: "\\\"", with: "\"")
                    .replacingOccurrences(of: "\\\\", with: "\\") : inner
            } else if rawValue == "true" || rawValue == "false" || Double(rawValue.replacingOccurrences(of: "_", with: "")) != nil {
                value = rawValue.replacingOccurrences(of: "_", with: "")
            } else {
                throw TrainingError.config("\(path):\(number + 1): \(key): expected a string, number or boolean, found \(rawValue)")
            }
            pairs.append((key, value))
        }
        return pairs
    }

    /// Removes a `#` comment that is not inside a string.
    private static func stripComment(_ line: String) -> String {
        var quote: Character?
        var out = ""
        for ch in line {
            if let q = quote {
                if ch == q { quote = nil }
            } else if ch == "\"" || ch == "'" {
                quote = ch
            } else if ch == "#" {
                break
            }
            out.append(ch)
        }
        return out
    }
}
