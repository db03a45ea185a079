// A human-readable description of a dataset file (token streams, sequence set or pairs), validating it
// on the way; backs `unroll inspect`.
import Foundation

/// Describes dataset files.
public enum DatasetInspector {
    /// Which layout a dataset file uses, from its `kind` attribute (after format/version checks).
    public static func kind(of path: String) throws -> String {
        let file = try openDatasetFile(path, kind: nil, versions: 1...DatasetFormat.newestVersion)
        let kind = try requireString(file, "kind")
        guard ["tokens", "sequences", "pairs", "trees"].contains(kind) else {
            throw DataError.invalid(file: path, field: "attribute 'kind'", expected: "\"tokens\", \"sequences\", \"pairs\" or \"trees\"",
                                    found: quoted(kind))
        }
        return kind
    }

    /// Validates `path` and describes it. With `scan`, every token id (or feature) is read and
    /// checked, and for token streams the most frequent tokens of each split are listed.
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
        case "pairs":
            lines += try describePairs(try PairSet(path: path))
        case "trees":
            lines += try describeTrees(try TreeSet(path: path))
        default:
            let set = try SequenceSet(path: path)
            lines.append(sequenceHeadline(set))
            for (name, value) in try set.attributes() {
                lines.append("  @\(name) = \(value)")
            }
            if set.inputKind == .tokens {
                let shown = set.vocabulary.prefix(20).map { quoted($0) }.joined(separator: " ")
                lines.append("  /vocab: \(set.vocabulary.count) entries: \(shown)\(set.vocabulary.count > 20 ? " …" : "")")
            }
            if set.targetKind == "class" {
                let shown = set.classNames.prefix(20).enumerated().map { "\($0.offset)=\(quoted($0.element))" }
                lines.append("  classes: " + shown.joined(separator: " ") + (set.numClasses > 20 ? " …" : ""))
            }
            if let stats = set.normalization {
                let pairs = zip(stats.mean, stats.std).prefix(8).map { String(format: "%.4g±%.4g", $0, $1) }
                lines.append("  normalization (train mean±std per feature): " + pairs.joined(separator: " ")
                             + (stats.mean.count > 8 ? " …" : ""))
            } else if set.inputKind == .features {
                lines.append("  normalization: none stored")
            }
            for name in DatasetFormat.splits {
                let split = try set.split(name)
                let lengths = (0..<split.count).map(split.length(of:))
                var line = "  /\(name): \(split.count) sequences, \(split.totalSteps) steps, "
                    + "lengths \(lengths.min()!)...\(lengths.max()!)"
                if scan {
                    _ = try split.loadInputs()
                    line += set.inputKind == .tokens ? ", all ids < \(set.vocabulary.count)" : ", all features finite"
                }
                if case let .classes(ids) = split.targets {
                    var histogram = [Int](repeating: 0, count: set.numClasses)
                    for id in ids { histogram[Int(id)] += 1 }
                    let top = histogram.indices.sorted { histogram[$0] > histogram[$1] }.prefix(5)
                        .map { "\(quoted(set.classNames[$0])) \(histogram[$0])" }
                    line += "; classes: " + top.joined(separator: ", ")
                }
                lines.append(line)
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Lines for a pair file (already fully validated by `PairSet`, so `scan` adds nothing).
    private static func describePairs(_ set: PairSet) throws -> [String] {
        var lines = ["\(set.path): pairs '\(set.task)', format \(DatasetFormat.name) v\(set.version), level \(set.level.rawValue), "
                     + "source vocab size \(set.sourceVocabulary.count), target vocab size \(set.targetVocabulary.count), "
                     + "all token ids checked"]
        for (name, value) in set.attributes() {
            lines.append("  @\(name) = \(value)")
        }
        for (side, vocab) in [("source", set.sourceVocabulary), ("target", set.targetVocabulary)] {
            let shown = vocab.prefix(20).map { quoted($0) }.joined(separator: " ")
            lines.append("  /\(side)_vocab: \(vocab.count) entries: \(shown)\(vocab.count > 20 ? " …" : "")")
        }
        for name in DatasetFormat.splits {
            let split = try set.split(name)
            let source = (0..<split.count).map { split.source($0).count }
            let target = (0..<split.count).map { split.target($0).count }
            lines.append("  /\(name): \(split.count) pairs, source \(split.sourceTokens.count) tokens (lengths "
                         + "\(source.min()!)...\(source.max()!)), target \(split.targetTokens.count) tokens (lengths "
                         + "\(target.min()!)...\(target.max()!))")
        }
        lines.append("  longest source \(set.longestSource), longest target \(set.longestTarget) (targets without <bos>/<eos>)")
        return lines
    }

    /// Lines for a tree file (already fully validated by `TreeSet`, so `scan` adds nothing).
    private static func describeTrees(_ set: TreeSet) throws -> [String] {
        var lines = ["\(set.path): trees '\(set.task)', format \(DatasetFormat.name) v\(set.version), vocab size "
                     + "\(set.vocabulary.count), \(set.classNames.count) classes, labels per root"
                     + (set.hasNodeLabels ? " and per node" : "") + ", all nodes checked"]
        for (name, value) in set.attributes() {
            lines.append("  @\(name) = \(value)")
        }
        let shown = set.vocabulary.prefix(20).map { quoted($0) }.joined(separator: " ")
        lines.append("  /vocab: \(set.vocabulary.count) entries: \(shown)\(set.vocabulary.count > 20 ? " …" : "")")
        let classes = set.classNames.prefix(20).enumerated().map { "\($0.offset)=\(quoted($0.element))" }
        lines.append("  classes: " + classes.joined(separator: " ") + (set.classNames.count > 20 ? " …" : ""))
        for name in DatasetFormat.splits {
            let split = try set.split(name)
            let sizes = (0..<split.count).map { split.nodes($0).count }
            let heights = (0..<split.count).map { Int(split.heights[split.root($0)]) }
            var histogram = [Int](repeating: 0, count: set.classNames.count)
            for label in split.labels { histogram[Int(label)] += 1 }
            let top = histogram.indices.sorted { histogram[$0] > histogram[$1] }.prefix(5)
                .map { "\(quoted(set.classNames[$0])) \(histogram[$0])" }
            lines.append("  /\(name): \(split.count) trees, \(split.nodeCount) nodes (sizes \(sizes.min()!)...\(sizes.max()!), "
                         + "heights \(heights.min()!)...\(heights.max()!)); root classes: " + top.joined(separator: ", "))
        }
        return lines
    }

    /// First line for a sequence set: task, version, input kind, targets.
    private static func sequenceHeadline(_ set: SequenceSet) -> String {
        let inputs = set.inputKind == .tokens
            ? "token inputs (level \(set.level ?? "?"), vocab size \(set.vocabulary.count))"
            : "feature inputs (input_dim \(set.inputDim))"
        let targets = (set.perStep ? "per-step " : "per-sequence ") + "\(set.targetKind) targets × \(set.targetDim)"
            + (set.targetKind == "class" ? ", \(set.numClasses) classes" : "")
        return "\(set.path): sequence set '\(set.task)', format \(DatasetFormat.name) v\(set.version), \(inputs), \(targets)"
    }
}
