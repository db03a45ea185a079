// The unigram baseline a language model must beat: cross-entropy on a split of the token
// frequencies of the train split (add-one smoothed), in nats per token.
import UnrollData
#if canImport(Glibc)
import Glibc
#endif

public enum UnigramBaseline {
    /// Mean −log p_unigram(token) over `split`, with p from train counts + 1.
    public static func loss(path: String, split: String) throws -> Double {
        let dataset = try TokenDataset(path: path)
        let counts = try dataset.split("train").countTokens()
        let total = Double(counts.reduce(0, +) + counts.count)
        let target = try dataset.split(split)
        let tokens = try target.read(0..<target.count)
        var nll = 0.0
        for t in tokens { nll -= log(Double(counts[Int(t)] + 1) / total) }
        return nll / Double(max(tokens.count, 1))
    }
}
