// Text generation from a checkpoint: prime the state with a prompt, then draw tokens one at a time
// from softmax(logits / temperature), optionally restricted to the top k, with a seeded generator.
import UnrollData
import UnrollKernels
import UnrollModels
#if canImport(Glibc)
import Glibc
#endif

public enum Sampler {
    /// Builds a model holding the checkpoint's parameters, for one stream and one step at a time.
    public static func model(from content: CheckpointContent) -> RecurrentLanguageModel {
        let arena = ParameterArena(layout: .languageModel(content.config.model))
        for view in arena.layout.views {
            if let v = content.parameters[view.name] { arena.parameters(view).update(from: v, count: view.count) }
        }
        return RecurrentLanguageModel(config: content.config.model, arena: arena, maxSteps: 1, maxBatch: 1)
    }

    /// Token ids of `text` under `vocabulary` at `level`; unknown symbols map to `unk` or are an error.
    public static func encode(_ text: String, vocabulary: [String], level: TokenLevel, unk: String?) throws -> [Int32] {
        var index: [String: Int32] = [:]
        for (i, s) in vocabulary.enumerated() { index[s] = Int32(i) }
        let symbols: [String]
        switch level {
        case .char: symbols = text.unicodeScalars.map { String($0) }
        case .byte: return text.utf8.map { Int32($0) }
        case .word: symbols = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        }
        return try symbols.map { s in
            if let id = index[s] { return id }
            if let unk, let id = index[unk] { return id }
            throw TrainingError.config("--prime: '\(s)' is not in the vocabulary")
        }
    }

    /// Generates `length` tokens after `prime` (or after a zero state if `prime` is empty).
    public static func generate(model: RecurrentLanguageModel, prime: [Int32], length: Int, temperature: Double,
                                topK: Int?, seed: UInt64) -> [Int32] {
        let V = model.config.vocabSize
        let state = RecurrentState(config: model.config, batch: 1)
        var rng = SplitMix64(seed: seed)
        var current: Int32 = prime.first ?? 0
        for t in prime.dropFirst() {
            model.forward(tokens: [current], steps: 1, batch: 1, state: state, dropout: nil)
            current = t
        }
        var out: [Int32] = []
        var probabilities = [Double](repeating: 0, count: V)
        for _ in 0..<length {
            model.forward(tokens: [current], steps: 1, batch: 1, state: state, dropout: nil)
            let logits = model.lastLogits
            var order = Array(0..<V)
            if let k = topK, k < V { order = Array(order.sorted { logits[$0] > logits[$1] }.prefix(max(1, k))) }
            var maxLogit = -Double.infinity
            for j in order { maxLogit = max(maxLogit, Double(logits[j])) }
            var total = 0.0
            for j in 0..<V { probabilities[j] = 0 }
            for j in order {
                probabilities[j] = exp((Double(logits[j]) - maxLogit) / max(temperature, 1e-6))
                total += probabilities[j]
            }
            var u = Double(rng.next() >> 11) / Double(1 << 53) * total
            var chosen = order.last ?? 0
            for j in order {
                u -= probabilities[j]
                if u <= 0 { chosen = j; break }
            }
            current = Int32(chosen)
            out.append(current)
        }
        return out
    }

    /// Joins tokens back into text.
    public static func decode(_ tokens: [Int32], vocabulary: [String], level: TokenLevel) -> String {
        switch level {
        case .char: return tokens.map { vocabulary[Int($0)] }.joined()
        case .byte: return String(decoding: tokens.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)
        case .word: return tokens.map { vocabulary[Int($0)] == "<eos>" ? "\n" : vocabulary[Int($0)] }.joined(separator: " ")
        }
    }
}
