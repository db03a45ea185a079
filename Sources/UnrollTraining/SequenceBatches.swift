// Which sequences make up each step of a sequence task, decided without reference to the world
// size, so that every number of ranks trains on the same global batches in the same order:
// - training: each epoch shuffles the split (seeded by the run's seed and the epoch), cuts it into
//   pools of 50 batches, sorts each pool by length (longest first) and cuts it into batches of B,
//   then shuffles the order of the batches. Grouping by length cuts padding; the pools keep
//   batches random. Rank r of W takes rows r, r+W, … of a batch: a share of every length, still
//   sorted longest first as the model needs. With reduction groups (`--reduction-group g`) rank r
//   takes instead the r-th of W contiguous parts of B/W rows (whole groups of g consecutive rows;
//   a short last batch leaves the last parts short or empty).
// - evaluation: the whole split sorted by length, in batches of B; batch j is run by rank j mod W
//   and its sums are reduced per batch, so the result does not depend on W either.
import UnrollData

/// Batch plans of a sequence split.
public enum SequenceBatches {
    /// Batches per pool sorted by length.
    static let poolBatches = 50

    /// Epoch `epoch`'s global batches over sequences of `lengths`: indices sorted longest first
    /// (ties by index). The last batch may be short.
    public static func trainingEpoch(lengths: [Int], batchSize: Int, seed: UInt64, epoch: Int) -> [[Int]] {
        var rng = Xoshiro256(seed: seed ^ (0x5EC0_0000_0000_0000 &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15))
        var order = Array(lengths.indices)
        shuffle(&order, &rng)
        var batches: [[Int]] = []
        let pool = batchSize * poolBatches
        for start in stride(from: 0, to: order.count, by: pool) {
            let sorted = sortedLongestFirst(Array(order[start..<min(start + pool, order.count)]), lengths)
            for b in stride(from: 0, to: sorted.count, by: batchSize) {
                batches.append(Array(sorted[b..<min(b + batchSize, sorted.count)]))
            }
        }
        shuffle(&batches, &rng)
        return batches
    }

    /// Evaluation batches: every sequence once, sorted longest first, `batchSize` per batch.
    public static func evaluation(lengths: [Int], batchSize: Int) -> [[Int]] {
        let sorted = sortedLongestFirst(Array(lengths.indices), lengths)
        return stride(from: 0, to: sorted.count, by: batchSize).map { Array(sorted[$0..<min($0 + batchSize, sorted.count)]) }
    }

    /// The rows of a global batch that `rank` of `size` runs (still longest first).
    public static func share(of batch: [Int], rank: Int, size: Int) -> [Int] {
        stride(from: rank, to: batch.count, by: size).map { batch[$0] }
    }

    /// Positions in the global batch of the rows `share` returns: world-size-independent row ids.
    public static func sharePositions(count: Int, rank: Int, size: Int) -> [Int] {
        Array(stride(from: rank, to: count, by: size))
    }

    /// Positions in a global batch of `count` rows (at most `batchSize`) that `rank` of `size` runs
    /// with reduction groups: [r·B/W, (r+1)·B/W) cut to the batch. - Precondition: W divides B.
    public static func groupShare(count: Int, batchSize: Int, rank: Int, size: Int) -> Range<Int> {
        precondition(batchSize % size == 0 && count <= batchSize, "a batch of \(count) ≤ \(batchSize) rows over \(size) ranks")
        let per = batchSize / size
        return min(rank * per, count)..<min((rank + 1) * per, count)
    }

    static func sortedLongestFirst(_ indices: [Int], _ lengths: [Int]) -> [Int] {
        indices.sorted { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }
    }

    /// Fisher–Yates with the project's version-stable generator.
    static func shuffle<T>(_ items: inout [T], _ rng: inout Xoshiro256) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(i, rng.below(i + 1))
        }
    }
}
