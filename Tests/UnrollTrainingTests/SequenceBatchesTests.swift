// The batch plans of sequence tasks: every sequence once per epoch, the same global batches for any
// world size, grouped by length, deterministic per seed and epoch, and rank shares that partition
// each batch longest first.
import Testing
@testable import UnrollTraining

struct SequenceBatchesTests {
    static let lengths = (0..<1000).map { 1 + ($0 * 7919) % 97 }

    @Test func everySequenceOncePerEpochAndDeterministic() {
        let a = SequenceBatches.trainingEpoch(lengths: Self.lengths, batchSize: 16, seed: 5, epoch: 3)
        #expect(a.flatMap { $0 }.sorted() == Array(0..<1000))
        #expect(a.count == (1000 + 15) / 16)
        #expect(a == SequenceBatches.trainingEpoch(lengths: Self.lengths, batchSize: 16, seed: 5, epoch: 3))
        #expect(a != SequenceBatches.trainingEpoch(lengths: Self.lengths, batchSize: 16, seed: 5, epoch: 4))
        #expect(a != SequenceBatches.trainingEpoch(lengths: Self.lengths, batchSize: 16, seed: 6, epoch: 3))
    }

    @Test func batchesAreSortedLongestFirstAndGroupedByLength() {
        let batches = SequenceBatches.trainingEpoch(lengths: Self.lengths, batchSize: 16, seed: 1, epoch: 1)
        var padded = 0, valid = 0
        for batch in batches {
            let l = batch.map { Self.lengths[$0] }
            #expect(l == l.sorted(by: >))
            padded += batch.count * l[0]
            valid += l.reduce(0, +)
        }
        // Random batches of lengths 1…97 would waste about half; pools sorted by length far less.
        #expect(Double(valid) / Double(padded) > 0.9)
    }

    @Test(arguments: [1, 2, 3, 4, 7])
    func sharesPartitionEachBatchLongestFirst(size: Int) {
        for batch in SequenceBatches.trainingEpoch(lengths: Self.lengths, batchSize: 10, seed: 2, epoch: 1) {
            var union: [Int] = []
            for rank in 0..<size {
                let share = SequenceBatches.share(of: batch, rank: rank, size: size)
                let l = share.map { Self.lengths[$0] }
                #expect(l == l.sorted(by: >))
                let positions = SequenceBatches.sharePositions(count: batch.count, rank: rank, size: size)
                #expect(positions.map { batch[$0] } == share)
                union += share
            }
            #expect(union.sorted() == batch.sorted())
        }
    }

    @Test func evaluationBatchesCoverTheSplitInLengthOrder() {
        let batches = SequenceBatches.evaluation(lengths: Self.lengths, batchSize: 64)
        #expect(batches.flatMap { $0 }.sorted() == Array(0..<1000))
        let all = batches.flatMap { $0 }.map { Self.lengths[$0] }
        #expect(all == all.sorted(by: >))
    }
}
