// A human-readable description of a dataset file (token streams or sequence set), validating it
// on the way; backs `unroll inspect`.
import Foundation

/// Describes dataset files.
public enum DatasetInspector {
    /// Which layout a dataset file uses, from its `kind` attribute (after format/version checks).
    public static func kind(of path: String) throws -> String {
        let file = try openDatasetFile(path, kind: nil)
        let kind = try requireString(file, "kind")
        guard kind == "tokens" || kind == "sequences" else {
            throw DataError.invalid(file: path, field: "attribute 'kind'", expected: "\"tokens\" or \"sequences\"",
                                    found: quoted(kind))
        }
        return kind
    }

    /// Validates `path` and describes it. With `scan`, every token id is read and checked and the
    /// most frequent tokens of each split are listed.
    public static func describe(_ path: String, scan: Bool = false) throws -> String {
        var lines: [String] = []
        switch try kind(of: path) {
        case "tokens":
            let dataset = try TokenDataset(path: path)
            let vocab = try dataset.vocabulary()
            lines.append("\(path): token streams, format \(DatasetFormat.name) v\(try dataset.version())")
            for (name, value) in try dataset.attributes() {
                lines.append("  @\(name) = \(value)")
            }
            let dtype = dataset.vocabSize <= 256 ? "uint8" : "int32"
            for name in DatasetFormat.splits {
                let split = try dataset.split(name)
                var line = "  /\(name): \(split.count) tokens (\(split.dataset.elementType), expected \(dtype))"
                if scan {
                    let histogram = try split.countTokens()
                    let top = histogram.indices.sorted { histogram[$0] > histogram[$1] }.prefix(5)
                        .map { "\(quoted(vocab[$0])) \(histogram[$0])" }
                    line += ", all ids < \(dataset.vocabSize); top: " + top.joined(separator: ", ")
                }
                lines.append(line)
            }
            let shown = vocab.prefix(20).map { quoted($0) }.joined(separator: " ")
            lines.append("  /vocab: \(vocab.count) entries: \(shown)\(vocab.count > 20 ? " …" : "")")
        default:
            let set = try SequenceSet(path: path)
            lines.append("\(path): sequence set '\(set.task)', input_dim \(set.inputDim), "
                         + "target \(set.targetKind) × \(set.targetDim)"
                         + (set.targetKind == "class" ? ", \(set.numClasses) classes" : ""))
            for (name, value) in try attributeTexts(set.file) {
                lines.append("  @\(name) = \(value)")
            }
            for name in DatasetFormat.splits {
                let split = try set.split(name)
                let lengths = (0..<split.count).map(split.length(of:))
                lines.append("  /\(name): \(split.count) sequences, \(split.offsets.last!) steps, "
                             + "lengths \(lengths.min()!)...\(lengths.max()!)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
