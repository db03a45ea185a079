// Corpus BLEU-4 (Papineni et al. 2002) on token ids, one reference per hypothesis, computed as
// sacrebleu does without smoothing (`BLEU(smooth_method='none')`): clipped n-gram matches and
// n-gram totals for n = 1…4 and the two lengths are summed over the corpus (integers, so ranks can
// add theirs exactly), then BLEU = BP · exp(¼ Σ log pₙ), pₙ = matchesₙ / totalsₙ, and
// BP = exp(1 − r/c) when the hypothesis length c < the reference length r (0 when c = 0), else 1.
// A zero match count or total for any n gives BLEU 0. Pure Swift: no HDF5, no MPI.
import Foundation

/// Corpus BLEU-4 from summable statistics.
public enum Bleu {
    /// Largest n-gram order.
    public static let order = 4

    /// Sufficient statistics of corpus BLEU: integer counts that add across sentences and ranks.
    public struct Statistics: Sendable, Equatable {
        /// Clipped n-gram matches for n = 1…4 (index n − 1).
        public var matches: [Int]
        /// Hypothesis n-grams for n = 1…4 (index n − 1): Σ max(0, c − n + 1).
        public var totals: [Int]
        /// Tokens in the hypotheses (c).
        public var hypothesisLength: Int
        /// Tokens in the references (r).
        public var referenceLength: Int

        /// All counts zero.
        public init() {
            matches = [Int](repeating: 0, count: Bleu.order)
            totals = [Int](repeating: 0, count: Bleu.order)
            hypothesisLength = 0
            referenceLength = 0
        }

        /// Statistics from `counts` as laid out by `counts` (for a reduction's result).
        /// - Precondition: `counts.count == Bleu.Statistics.countsLength`.
        public init(counts: [Int]) {
            precondition(counts.count == Self.countsLength, "expected \(Self.countsLength) BLEU counts")
            matches = Array(counts[0..<Bleu.order])
            totals = Array(counts[Bleu.order..<(2 * Bleu.order)])
            hypothesisLength = counts[2 * Bleu.order]
            referenceLength = counts[2 * Bleu.order + 1]
        }

        /// Length of `counts`: 4 matches, 4 totals, hypothesis length, reference length.
        public static let countsLength = 2 * Bleu.order + 2

        /// The statistics as one flat array to sum across ranks (e.g. an allreduce):
        /// matches₁…₄, totals₁…₄, hypothesis length, reference length.
        public var counts: [Int] { matches + totals + [hypothesisLength, referenceLength] }

        /// Adds `other`'s counts to these.
        public mutating func add(_ other: Statistics) {
            for n in 0..<Bleu.order {
                matches[n] += other.matches[n]
                totals[n] += other.totals[n]
            }
            hypothesisLength += other.hypothesisLength
            referenceLength += other.referenceLength
        }

        /// The sum of two statistics.
        public static func + (a: Statistics, b: Statistics) -> Statistics {
            var sum = a
            sum.add(b)
            return sum
        }

        /// Modified n-gram precisions p₁…p₄ as fractions in [0, 1] (0 where a total is 0).
        public var precisions: [Double] {
            (0..<Bleu.order).map { totals[$0] > 0 ? Double(matches[$0]) / Double(totals[$0]) : 0 }
        }

        /// Brevity penalty: 1 when c ≥ r, exp(1 − r/c) when 0 < c < r, 0 when c = 0 < r.
        public var brevityPenalty: Double {
            if hypothesisLength >= referenceLength { return 1 }
            if hypothesisLength == 0 { return 0 }
            return Foundation.exp(1 - Double(referenceLength) / Double(hypothesisLength))
        }

        /// BLEU in [0, 100], as sacrebleu reports it (`corpus_score(...).score` with
        /// `smooth_method='none'`): 0 when any n has no match or no hypothesis n-gram.
        public var score: Double {
            guard (0..<Bleu.order).allSatisfy({ matches[$0] > 0 && totals[$0] > 0 }) else { return 0 }
            let logs = (0..<Bleu.order).map { Foundation.log(100 * Double(matches[$0]) / Double(totals[$0])) }
            return brevityPenalty * Foundation.exp(logs.reduce(0, +) / Double(Bleu.order))
        }
    }

    /// Statistics of one hypothesis against its reference.
    public static func statistics<H: Collection<Int32>, R: Collection<Int32>>(hypothesis: H, reference: R) -> Statistics {
        var stats = Statistics()
        let hyp = Array(hypothesis), ref = Array(reference)
        stats.hypothesisLength = hyp.count
        stats.referenceLength = ref.count
        for n in 1...order where hyp.count >= n {
            stats.totals[n - 1] = hyp.count - n + 1
            var available: [ArraySlice<Int32>: Int] = [:]
            if ref.count >= n {
                for i in 0...(ref.count - n) { available[ref[i..<(i + n)], default: 0] += 1 }
            }
            var matched = 0
            for i in 0...(hyp.count - n) {
                let gram = hyp[i..<(i + n)]
                if let left = available[gram], left > 0 {
                    available[gram] = left - 1
                    matched += 1
                }
            }
            stats.matches[n - 1] = matched
        }
        return stats
    }

    /// Summed statistics of a corpus: hypothesis i against reference i.
    /// - Precondition: as many hypotheses as references.
    public static func statistics(hypotheses: [[Int32]], references: [[Int32]]) -> Statistics {
        precondition(hypotheses.count == references.count, "one reference per hypothesis")
        var total = Statistics()
        for (h, r) in zip(hypotheses, references) { total.add(statistics(hypothesis: h, reference: r)) }
        return total
    }

    /// Corpus BLEU in [0, 100] of `hypotheses` against `references` (see `Statistics.score`).
    public static func score(hypotheses: [[Int32]], references: [[Int32]]) -> Double {
        statistics(hypotheses: hypotheses, references: references).score
    }
}
