// Tests of corpus BLEU (Bleu): against sacrebleu's numbers on the committed fixture
// Tests/Reference/bleu_golden.json (made by Tests/Reference/make_bleu_golden.py with
// BLEU(tokenize='none', smooth_method='none') on space-joined ids; no sacrebleu needed here), exact
// summing of the statistics across parts (as ranks reduce them), and the edge cases by hand.
import Foundation
import Testing
@testable import UnrollData

@Suite struct BleuTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var name: String
            var hypotheses: [[Int32]]
            var references: [[Int32]]
            var matches: [Int]
            var totals: [Int]
            var hypothesis_length: Int
            var reference_length: Int
            var score: Double
        }
        var sacrebleu: String
        var cases: [Case]
    }

    static func golden() throws -> Golden {
        let data = try Data(contentsOf: URL(fileURLWithPath: packageRoot + "/Tests/Reference/bleu_golden.json"))
        return try JSONDecoder().decode(Golden.self, from: data)
    }

    @Test func statisticsAndScoreMatchSacrebleu() throws {
        let golden = try Self.golden()
        #expect(golden.cases.count >= 10)
        for c in golden.cases {
            let stats = Bleu.statistics(hypotheses: c.hypotheses, references: c.references)
            #expect(stats.matches == c.matches, "\(c.name)")
            #expect(stats.totals == c.totals, "\(c.name)")
            #expect(stats.hypothesisLength == c.hypothesis_length && stats.referenceLength == c.reference_length, "\(c.name)")
            #expect(abs(stats.score - c.score) <= 1e-9 * max(1, c.score), "\(c.name): \(stats.score) vs sacrebleu \(c.score)")
            #expect(Bleu.score(hypotheses: c.hypotheses, references: c.references) == stats.score)
        }
    }

    @Test func statisticsOfPartsSumToTheStatisticsOfTheWhole() throws {
        let c = try #require(try Self.golden().cases.first { $0.name == "random1" })
        let whole = Bleu.statistics(hypotheses: c.hypotheses, references: c.references)
        // Three "ranks" with uneven shares, reduced as flat integer counts (an allreduce's sum).
        let cuts = [0, 7, 8, c.hypotheses.count]
        var reduced = [Int](repeating: 0, count: Bleu.Statistics.countsLength)
        var summed = Bleu.Statistics()
        for r in 0..<3 {
            let part = Bleu.statistics(hypotheses: Array(c.hypotheses[cuts[r]..<cuts[r + 1]]),
                                       references: Array(c.references[cuts[r]..<cuts[r + 1]]))
            for (i, n) in part.counts.enumerated() { reduced[i] += n }
            summed = summed + part
        }
        #expect(Bleu.Statistics(counts: reduced) == whole)
        #expect(summed == whole)
        #expect(Bleu.Statistics(counts: reduced).score == whole.score)
        #expect(whole.counts.count == 10)
    }

    @Test func edgeCasesFollowSacrebleuWithoutSmoothing() {
        // Perfect match: 100 (up to rounding), brevity penalty 1.
        let perfect = Bleu.statistics(hypothesis: [1, 2, 3, 4, 5] as [Int32], reference: [1, 2, 3, 4, 5] as [Int32])
        #expect(abs(perfect.score - 100) < 1e-9 && perfect.brevityPenalty == 1)
        #expect(perfect.precisions == [1, 1, 1, 1])
        // No 4-gram in common: 0, although lower orders match.
        let noFour = Bleu.statistics(hypothesis: [1, 2, 3, 9, 4, 5, 6] as [Int32], reference: [1, 2, 3, 4, 5, 6] as [Int32])
        #expect(noFour.matches[3] == 0 && noFour.matches[0] == 6 && noFour.score == 0)
        // Shorter than 4 tokens: no 4-gram at all (total 0), so 0.
        let short = Bleu.statistics(hypothesis: [1, 2, 3] as [Int32], reference: [1, 2, 3] as [Int32])
        #expect(short.totals == [3, 2, 1, 0] && short.score == 0)
        // Empty hypothesis: lengths count, no n-grams, brevity penalty 0, BLEU 0.
        let empty = Bleu.statistics(hypothesis: [] as [Int32], reference: [7, 8, 9] as [Int32])
        #expect(empty.totals == [0, 0, 0, 0] && empty.hypothesisLength == 0 && empty.referenceLength == 3)
        #expect(empty.brevityPenalty == 0 && empty.score == 0)
        // Empty corpus and no statistics: 0.
        #expect(Bleu.score(hypotheses: [], references: []) == 0 && Bleu.Statistics().score == 0)
        // Clipping: a repeated token matches at most as often as the reference has it.
        let clipped = Bleu.statistics(hypothesis: [5, 5, 5, 5] as [Int32], reference: [5, 5, 1, 2] as [Int32])
        #expect(clipped.matches == [2, 1, 0, 0] && clipped.totals == [4, 3, 2, 1])
        // Brevity penalty exp(1 − r/c) for c < r.
        let brief = Bleu.statistics(hypothesis: [1, 2, 3, 4] as [Int32], reference: [1, 2, 3, 4, 5, 6, 7, 8] as [Int32])
        #expect(abs(brief.brevityPenalty - exp(1 - 8.0 / 4)) < 1e-15)
        #expect(abs(brief.score - 100 * exp(-1.0)) < 1e-9)
        // Slices (e.g. PairSplit.target(i)) are accepted as they are.
        let tokens: [Int32] = [0, 1, 2, 3, 4, 5]
        #expect(Bleu.statistics(hypothesis: tokens[1...], reference: tokens[1...]) == perfect)
    }
}
