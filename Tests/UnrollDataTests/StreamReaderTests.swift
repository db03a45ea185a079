// Tests of sharded reading: training windows equal PyTorch-style batchify split over ranks,
// targets are inputs shifted by one, evaluation streams predict every target exactly once for any
// number of ranks, read-ahead returns the same data as direct reads, and size errors are clear.
// Token i of the test splits is the id i (vocabulary size ≥ N), so values reveal positions.
import Foundation
import Testing
@testable import UnrollData

/// A dataset whose splits are 0, 1, …, n−1.
private func positionalDataset(_ dir: TempDir, train n: Int, valid: Int = 10, test: Int = 10) throws -> String {
    let path = dir.file("pos-\(n)-\(valid).h5")
    let v = max(n, valid, test)
    try writeTokenDataset(path, train: (0..<n).map { Int32($0) }, valid: (0..<valid).map { Int32($0) },
                          test: (0..<test).map { Int32($0) }, vocabSize: v)
    return path
}

@Suite struct StreamReaderTests {
    @Test(arguments: [(1000, 8, 1, 7), (1000, 8, 2, 7), (1003, 12, 4, 5), (517, 6, 3, 10), (64, 4, 2, 100)])
    func unionOfRanksEqualsBatchify(n: Int, batch: Int, world: Int, bptt: Int) throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: n)
        let streamLength = n / batch
        let windows = (streamLength - 1 + bptt - 1) / bptt
        // Reference: batchify in memory.
        var global: [[Int32]] = Array(repeating: [], count: windows)   // window → (len, batch) time-major
        var globalTargets: [[Int32]] = Array(repeating: [], count: windows)
        for i in 0..<windows {
            let len = min(bptt, streamLength - 1 - i * bptt)
            global[i] = [Int32](repeating: -9, count: len * batch)
            globalTargets[i] = global[i]
        }
        for rank in 0..<world {
            let reader = try TrainStreamReader(path: path, split: "train", globalBatch: batch, bptt: bptt,
                                               rank: rank, worldSize: world)
            #expect(reader.streamLength == streamLength)
            #expect(reader.windowsPerEpoch == windows)
            #expect(reader.localBatch == batch / world)
            #expect(reader.firstStream == rank * batch / world)
            var inputs: [Int32] = [], targets: [Int32] = []
            for i in 0..<windows {
                let len = try reader.readWindow(i, inputs: &inputs, targets: &targets)
                #expect(inputs.count == len * reader.localBatch)
                for t in 0..<len {
                    for b in 0..<reader.localBatch {
                        global[i][t * batch + reader.firstStream + b] = inputs[t * reader.localBatch + b]
                        globalTargets[i][t * batch + reader.firstStream + b] = targets[t * reader.localBatch + b]
                    }
                }
            }
        }
        for i in 0..<windows {
            let len = global[i].count / batch
            for t in 0..<len {
                for b in 0..<batch {
                    let position = b * streamLength + i * bptt + t
                    #expect(global[i][t * batch + b] == Int32(position))
                    #expect(globalTargets[i][t * batch + b] == Int32(position + 1))
                }
            }
        }
        // Every token of every stream except each stream's last is an input exactly once per epoch.
        #expect(global.map(\.count).reduce(0, +) == batch * (streamLength - 1))
    }

    @Test func windowLengthsFollowTheFormula() throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: 4 * 36)   // L = 36, L − 1 = 35
        let exact = try TrainStreamReader(path: path, split: "train", globalBatch: 4, bptt: 35, rank: 0, worldSize: 1)
        #expect(exact.windowsPerEpoch == 1 && exact.windowLength(0) == 35)
        let ragged = try TrainStreamReader(path: path, split: "train", globalBatch: 4, bptt: 10, rank: 0, worldSize: 1)
        #expect(ragged.windowsPerEpoch == 4)
        #expect((0..<4).map(ragged.windowLength) == [10, 10, 10, 5])
        var inputs: [Int32] = [], targets: [Int32] = []
        #expect(try ragged.readWindow(3, inputs: &inputs, targets: &targets) == 5)
        #expect(Array(inputs.prefix(4)) == [30, 66, 102, 138])   // time-major: row 0 = position 30 of each stream
        #expect(Array(targets.suffix(4)) == [35, 71, 107, 143])
        let outOfRange = dataErrorMessage { _ = try ragged.readWindow(4, inputs: &inputs, targets: &targets) }
        #expect(outOfRange?.1 == "window: expected 0 ..< 4, found 4")
    }

    @Test(arguments: [(101, 4, 1, 7), (101, 4, 2, 7), (1000, 7, 3, 13), (50, 49, 2, 3), (997, 10, 4, 35), (12, 3, 5, 2)])
    func evaluationPredictsEveryTargetExactlyOnce(n: Int, streams: Int, world: Int, bptt: Int) throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: 20, valid: n)
        var seen = [Int](repeating: 0, count: n)
        var windowCounts = Set<Int>()
        var covered = 0
        for rank in 0..<world {
            let reader = try EvalStreamReader(path: path, split: "valid", streams: streams, bptt: bptt,
                                              rank: rank, worldSize: world)
            windowCounts.insert(reader.windowCount)
            covered += reader.localBatch
            var inputs: [Int32] = [], targets: [Int32] = []
            for i in 0..<reader.windowCount {
                let len = try reader.readWindow(i, inputs: &inputs, targets: &targets)
                for k in 0..<(len * reader.localBatch) where targets[k] != EvalStreamReader.ignoreTarget {
                    seen[Int(targets[k])] += 1
                    #expect(inputs[k] == targets[k] - 1)
                    // Column j holds stream localStreams.lowerBound + j.
                    let s = reader.localStreams.lowerBound + k % reader.localBatch
                    #expect(reader.streamBounds(s).contains(Int(inputs[k])))
                }
            }
        }
        #expect(covered == streams)
        #expect(windowCounts.count == 1)   // all ranks run the same number of windows
        #expect(seen[0] == 0)
        #expect(seen[1...].allSatisfy { $0 == 1 })
    }

    @Test func paddingOnlyAtTheEndOfShorterStreams() throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: 20, valid: 11)   // N − 1 = 10 targets, S = 3 → 3, 3, 4
        let reader = try EvalStreamReader(path: path, split: "valid", streams: 3, bptt: 4, localStreams: 0..<3)
        #expect((0..<3).map(reader.streamBounds) == [0..<3, 3..<6, 6..<10])
        #expect(reader.maxStreamLength == 4 && reader.windowCount == 1)
        var inputs: [Int32] = [], targets: [Int32] = []
        #expect(try reader.readWindow(0, inputs: &inputs, targets: &targets) == 4)
        #expect(inputs == [0, 3, 6, 1, 4, 7, 2, 5, 8, 0, 0, 9])
        #expect(targets == [1, 4, 7, 2, 5, 8, 3, 6, 9, -1, -1, 10])
    }

    @Test func readAheadReturnsTheSameWindowsAsDirectReads() throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: 5000, valid: 777)
        let train = try TrainStreamReader(path: path, split: "train", globalBatch: 6, bptt: 9, rank: 1, worldSize: 2)
        let eval = try EvalStreamReader(path: path, split: "valid", streams: 5, bptt: 8, rank: 0, worldSize: 2)
        for (source, range) in [(train as any TokenWindowSource, 0..<train.windowCount), (train, 17..<40),
                                (eval, 0..<eval.windowCount)] {
            let prefetcher = WindowPrefetcher(source: source, windows: range)
            var expectedIndex = range.lowerBound
            while let window = try prefetcher.next() {
                var inputs: [Int32] = [], targets: [Int32] = []
                let len = try source.readWindow(expectedIndex, inputs: &inputs, targets: &targets)
                #expect(window.index == expectedIndex)
                #expect(window.length == len && window.batch == source.localBatch)
                #expect(window.inputs == inputs && window.targets == targets)
                expectedIndex += 1
            }
            #expect(expectedIndex == range.upperBound)
            #expect(try prefetcher.next() == nil)
            #expect(prefetcher.waitSeconds >= 0 && prefetcher.readSeconds > 0)
        }
    }

    @Test func readAheadSurfacesReadErrors() throws {
        let dir = try TempDir()
        let path = dir.file("bad-ids.h5")
        var raw = RawTokenFile()
        raw.splits["train"] = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 7, 3]   // id 7 ≥ vocab 4 at position 14
        try raw.write(path)
        let reader = try TrainStreamReader(path: path, split: "train", globalBatch: 1, bptt: 4, rank: 0, worldSize: 1)
        let prefetcher = WindowPrefetcher(source: reader)
        var delivered = 0
        let failure = dataErrorMessage { while try prefetcher.next() != nil { delivered += 1 } }
        #expect(delivered == 3)
        #expect(failure?.1 == "\(path): /train[14]: expected token id < vocab_size 4, found 7")
        #expect(try prefetcher.next() == nil)
    }

    @Test func batchNotDivisibleByRanksNamesBothNumbers() throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: 100)
        let failure = dataErrorMessage {
            _ = try TrainStreamReader(path: path, split: "train", globalBatch: 10, bptt: 5, rank: 0, worldSize: 3)
        }
        #expect(failure?.1 == "global batch: expected a multiple of the number of ranks 3, found 10 (10 % 3 = 1)")
    }

    @Test func splitShorterThanOneWindow() throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: 100, valid: 15)
        let failure = dataErrorMessage {
            _ = try TrainStreamReader(path: path, split: "valid", globalBatch: 8, bptt: 5, rank: 0, worldSize: 1)
        }
        #expect(failure?.1 == "\(path): /valid: expected at least 2 × global batch = 16 tokens (one window needs an input and a target per stream), found 15 tokens")
        let eval = dataErrorMessage {
            _ = try EvalStreamReader(path: path, split: "valid", streams: 15, bptt: 5, rank: 0, worldSize: 1)
        }
        #expect(eval?.1 == "\(path): /valid: expected at least eval streams + 1 = 16 tokens, found 15 tokens")
    }

    @Test func unknownSplitAndBadRank() throws {
        let dir = try TempDir()
        let path = try positionalDataset(dir, train: 100)
        let split = dataErrorMessage {
            _ = try TrainStreamReader(path: path, split: "dev", globalBatch: 2, bptt: 5, rank: 0, worldSize: 1)
        }
        #expect(split?.1 == "split: expected train, valid, test, found \"dev\"")
        let rank = dataErrorMessage {
            _ = try TrainStreamReader(path: path, split: "train", globalBatch: 2, bptt: 5, rank: 2, worldSize: 2)
        }
        #expect(rank?.1 == "rank: expected 0 ≤ rank < world size 2, found 2")
    }
}
