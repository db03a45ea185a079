// Sharded reading of token streams for truncated-BPTT training and evaluation.
// Training (PyTorch `batchify`): a split of N tokens is cut into B contiguous streams of
// L = N / B tokens (tail dropped); rank r of W owns streams [r·B/W, (r+1)·B/W). Window i covers
// stream positions [i·T, i·T + len), len = min(T, L − 1 − i·T), targets shifted by one.
// Evaluation: S streams, independent of W, with boundaries a_s = s·(N−1)/S, so every target token
// is predicted exactly once; shorter streams are padded (input 0, target −1) in the last window.
// Buffers are time-major (len, B_local). Reads are hyperslabs of the rank's own slices only.
import Foundation

/// A source of fixed-size windows of token streams (time-major `(len, localBatch)` buffers).
public protocol TokenWindowSource: AnyObject, Sendable {
    /// Number of windows in one pass (epoch).
    var windowCount: Int { get }
    /// Streams (batch columns) this reader returns.
    var localBatch: Int { get }
    /// Reads window `index` into `inputs`/`targets` (resized to `len · localBatch`) and returns `len`.
    func readWindow(_ index: Int, inputs: inout [Int32], targets: inout [Int32]) throws -> Int
}

/// HDF5 chunk cache big enough for two chunks per stream, so consecutive windows hit the cache
/// instead of re-reading (and re-checksumming) each stream's chunk.
private func chunkCacheBytes(streams: Int) -> Int {
    min(1 << 29, max(1 << 20, (2 * streams + 2) * DatasetFormat.tokenChunk * MemoryLayout<Int32>.size))
}

/// Reads this rank's share of the training streams, window by window.
///
/// Thread safety: all stored state is immutable after `init`, and HDF5 (thread-safe build, as
/// Debian ships it) serialises the reads, so one reader may be used from a prefetch thread.
public final class TrainStreamReader: TokenWindowSource, @unchecked Sendable {
    public let path: String
    public let split: String
    public let globalBatch: Int
    public let bptt: Int
    public let rank: Int
    public let worldSize: Int
    /// Tokens in the split.
    public let splitTokens: Int
    /// L = N / B: tokens per stream.
    public let streamLength: Int
    /// ⌈(L − 1) / T⌉.
    public let windowsPerEpoch: Int
    /// B / W streams per rank.
    public let localBatch: Int
    /// First global stream of this rank (r · B / W).
    public let firstStream: Int
    public let vocabSize: Int
    let tokens: TokenSplit

    public var windowCount: Int { windowsPerEpoch }

    /// Opens (and validates) the dataset and this rank's shard.
    /// - Throws: `DataError.argument` if B is not divisible by W or the sizes are not positive;
    ///   `DataError.invalid` if the split is shorter than 2 · B tokens (one input and one target per
    ///   stream); any validation error of `TokenDataset`.
    public init(path: String, split: String, globalBatch: Int, bptt: Int, rank: Int, worldSize: Int) throws {
        guard worldSize >= 1, rank >= 0, rank < worldSize else {
            throw DataError.argument(name: "rank", expected: "0 ≤ rank < world size \(worldSize)", found: "\(rank)")
        }
        guard globalBatch >= 1 else {
            throw DataError.argument(name: "global batch", expected: "≥ 1", found: "\(globalBatch)")
        }
        guard globalBatch % worldSize == 0 else {
            throw DataError.argument(name: "global batch", expected: "a multiple of the number of ranks \(worldSize)",
                                     found: "\(globalBatch) (\(globalBatch) % \(worldSize) = \(globalBatch % worldSize))")
        }
        guard bptt >= 1 else { throw DataError.argument(name: "bptt", expected: "≥ 1", found: "\(bptt)") }
        let dataset = try TokenDataset(path: path)
        let local = globalBatch / worldSize
        tokens = try dataset.split(split, chunkCacheBytes: chunkCacheBytes(streams: local))
        self.path = path
        self.split = split
        self.globalBatch = globalBatch
        self.bptt = bptt
        self.rank = rank
        self.worldSize = worldSize
        vocabSize = dataset.vocabSize
        splitTokens = tokens.count
        streamLength = tokens.count / globalBatch
        guard streamLength >= 2 else {
            throw DataError.invalid(file: path, field: "/\(split)",
                                    expected: "at least 2 × global batch = \(2 * globalBatch) tokens (one window needs an input and a target per stream)",
                                    found: "\(tokens.count) tokens")
        }
        windowsPerEpoch = (streamLength - 1 + bptt - 1) / bptt
        localBatch = local
        firstStream = rank * local
    }

    /// Reads this rank's whole shard once (its streams are one contiguous range of the split),
    /// chunk by chunk: every Fletcher-32 checksum and every token id is checked at start, instead
    /// of failing hundreds of steps later when training reaches a damaged chunk.
    /// - Throws: the `DataError` of the first damaged chunk or out-of-range id, naming the file.
    public func verifyShard() throws {
        let end = (firstStream + localBatch) * streamLength
        let block = DatasetFormat.tokenChunk * 64
        var start = firstStream * streamLength
        while start < end {
            let stop = min(end, start + block)
            _ = try tokens.read(start..<stop)
            start = stop
        }
    }

    /// Length of window `index`: min(T, L − 1 − index · T).
    public func windowLength(_ index: Int) -> Int {
        min(bptt, streamLength - 1 - index * bptt)
    }

    /// Reads window `index` (0 ..< windowsPerEpoch) of this rank's streams with one strided
    /// hyperslab read. `inputs`/`targets` become time-major (len, localBatch):
    /// `inputs[t · localBatch + b]` = token at position index·T + t of stream firstStream + b,
    /// `targets[...]` = the token after it. Returns len.
    public func readWindow(_ index: Int, inputs: inout [Int32], targets: inout [Int32]) throws -> Int {
        guard index >= 0, index < windowsPerEpoch else {
            throw DataError.argument(name: "window", expected: "0 ..< \(windowsPerEpoch)", found: "\(index)")
        }
        let len = windowLength(index)
        let block = len + 1
        let raw = try tokens.readStrided(start: firstStream * streamLength + index * bptt, stride: streamLength,
                                         count: localBatch, block: block)
        resize(&inputs, len * localBatch)
        resize(&targets, len * localBatch)
        // raw is (localBatch, len + 1) stream-major; transpose to time-major.
        for b in 0..<localBatch {
            for t in 0..<len {
                inputs[t * localBatch + b] = raw[b * block + t]
                targets[t * localBatch + b] = raw[b * block + t + 1]
            }
        }
        return len
    }
}

/// Reads evaluation streams: S streams fixed independently of the number of ranks; a reader
/// handles any contiguous subset of them.
public final class EvalStreamReader: TokenWindowSource, @unchecked Sendable {
    /// Input value at padded positions (a valid token id, so embeddings can be looked up).
    public static let padInput: Int32 = 0
    /// Target value at padded positions: no prediction, to be ignored by the loss.
    public static let ignoreTarget: Int32 = -1

    public let path: String
    public let split: String
    /// S: streams of the whole split.
    public let streamCount: Int
    public let bptt: Int
    /// Streams this reader returns (batch column j is stream localStreams.lowerBound + j).
    public let localStreams: Range<Int>
    /// Tokens in the split.
    public let splitTokens: Int
    /// Longest stream (inputs), ⌈(N − 1) / S⌉.
    public let maxStreamLength: Int
    /// ⌈maxStreamLength / T⌉; the same on every rank.
    public let windowCount: Int
    public let vocabSize: Int
    let tokens: TokenSplit

    public var localBatch: Int { localStreams.count }

    /// Opens the split for streams `localStreams` of `streams`.
    /// - Throws: `DataError.argument` for inconsistent sizes; `DataError.invalid` if the split has
    ///   fewer than S + 1 tokens (each stream needs a target).
    public init(path: String, split: String, streams: Int, bptt: Int, localStreams: Range<Int>) throws {
        guard streams >= 1 else { throw DataError.argument(name: "eval streams", expected: "≥ 1", found: "\(streams)") }
        guard bptt >= 1 else { throw DataError.argument(name: "bptt", expected: "≥ 1", found: "\(bptt)") }
        guard localStreams.lowerBound >= 0, localStreams.upperBound <= streams else {
            throw DataError.argument(name: "local streams", expected: "within 0..<\(streams)", found: "\(localStreams)")
        }
        let dataset = try TokenDataset(path: path)
        tokens = try dataset.split(split, chunkCacheBytes: chunkCacheBytes(streams: localStreams.count))
        self.path = path
        self.split = split
        streamCount = streams
        self.bptt = bptt
        self.localStreams = localStreams
        vocabSize = dataset.vocabSize
        splitTokens = tokens.count
        guard tokens.count - 1 >= streams else {
            throw DataError.invalid(file: path, field: "/\(split)",
                                    expected: "at least eval streams + 1 = \(streams + 1) tokens", found: "\(tokens.count) tokens")
        }
        maxStreamLength = (tokens.count - 1 + streams - 1) / streams
        windowCount = (maxStreamLength + bptt - 1) / bptt
    }

    /// Rank `rank` of `worldSize` takes streams [rank·S/W, (rank+1)·S/W).
    public convenience init(path: String, split: String, streams: Int, bptt: Int, rank: Int, worldSize: Int) throws {
        guard worldSize >= 1, rank >= 0, rank < worldSize else {
            throw DataError.argument(name: "rank", expected: "0 ≤ rank < world size \(worldSize)", found: "\(rank)")
        }
        try self.init(path: path, split: split, streams: streams, bptt: bptt,
                      localStreams: (rank * streams / worldSize)..<((rank + 1) * streams / worldSize))
    }

    /// Input positions of global stream `s`: [a_s, a_{s+1}) with a_s = s·(N−1)/S; it predicts
    /// tokens a_s + 1 … a_{s+1}.
    public func streamBounds(_ s: Int) -> Range<Int> {
        (s * (splitTokens - 1) / streamCount)..<((s + 1) * (splitTokens - 1) / streamCount)
    }

    /// Rows of window `index`: min(T, maxStreamLength − index · T).
    public func windowLength(_ index: Int) -> Int {
        min(bptt, maxStreamLength - index * bptt)
    }

    /// Reads window `index` (time-major (len, localBatch)). Positions past the end of a shorter
    /// stream hold `padInput` / `ignoreTarget`. Returns len.
    public func readWindow(_ index: Int, inputs: inout [Int32], targets: inout [Int32]) throws -> Int {
        guard index >= 0, index < windowCount else {
            throw DataError.argument(name: "window", expected: "0 ..< \(windowCount)", found: "\(index)")
        }
        let len = windowLength(index)
        let batch = localBatch
        resize(&inputs, len * batch)
        resize(&targets, len * batch)
        for j in 0..<batch {
            let bounds = streamBounds(localStreams.lowerBound + j)
            let start = bounds.lowerBound + index * bptt
            let n = max(0, min(len, bounds.upperBound - start))
            let raw = n > 0 ? try tokens.read(start..<(start + n + 1)) : []
            for t in 0..<len {
                inputs[t * batch + j] = t < n ? raw[t] : Self.padInput
                targets[t * batch + j] = t < n ? raw[t + 1] : Self.ignoreTarget
            }
        }
        return len
    }
}

private func resize(_ buffer: inout [Int32], _ count: Int) {
    if buffer.count != count {
        buffer = [Int32](repeating: 0, count: count)
    }
}

// MARK: - Read-ahead

/// One window as returned by `WindowPrefetcher`.
public struct TokenWindow: Sendable {
    public var index: Int
    /// Rows (time steps).
    public var length: Int
    /// Columns (streams).
    public var batch: Int
    /// Time-major (length, batch).
    public var inputs: [Int32]
    /// Time-major (length, batch); −1 = ignore.
    public var targets: [Int32]
}

/// Hands the result of one background read to the consumer. The semaphore orders the write on
/// the I/O thread before the read on the consumer thread, which is why unchecked Sendable is sound.
private final class PrefetchSlot: @unchecked Sendable {
    let ready = DispatchSemaphore(value: 0)
    var result: Result<TokenWindow, any Error>?
    var readSeconds: Double = 0
}

/// Double-buffered iteration over windows: while the caller works on window i, window i + 1 is
/// read on a background queue. Use from one thread. If libhdf5 is not thread-safe, reads happen
/// synchronously in `next()` instead.
public final class WindowPrefetcher {
    private let source: any TokenWindowSource
    private let windows: Range<Int>
    private var nextIndex: Int
    private var pending: PrefetchSlot?
    private let queue = DispatchQueue(label: "unroll.data.prefetch", qos: .userInitiated)

    /// Total seconds `next()` spent waiting for data (the I/O time not hidden by read-ahead).
    public private(set) var waitSeconds: Double = 0
    /// Total seconds spent reading, wherever it happened.
    public private(set) var readSeconds: Double = 0

    /// Iterates `windows` (default: all windows of `source`) in order, starting the first read now.
    public init(source: any TokenWindowSource, windows: Range<Int>? = nil) {
        self.source = source
        let range = windows ?? 0..<source.windowCount
        self.windows = range
        nextIndex = range.lowerBound
        schedule(nextIndex)
    }

    /// The next window, or nil after the last one. A read error is thrown once, then iteration ends.
    public func next() throws -> TokenWindow? {
        guard nextIndex < windows.upperBound else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let slot: PrefetchSlot
        if let pending {
            slot = pending
        } else {
            slot = PrefetchSlot()
            Self.read(source, nextIndex, into: slot)
        }
        slot.ready.wait()
        waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        readSeconds += slot.readSeconds
        pending = nil
        nextIndex += 1
        do {
            let window = try slot.result!.get()
            schedule(nextIndex)
            return window
        } catch {
            nextIndex = windows.upperBound
            throw error
        }
    }

    private func schedule(_ index: Int) {
        guard index < windows.upperBound, H5.isThreadSafe else { return }
        let slot = PrefetchSlot()
        let source = self.source
        queue.async { Self.read(source, index, into: slot) }
        pending = slot
    }

    private static func read(_ source: any TokenWindowSource, _ index: Int, into slot: PrefetchSlot) {
        let start = DispatchTime.now().uptimeNanoseconds
        slot.result = Result {
            var inputs: [Int32] = [], targets: [Int32] = []
            let len = try source.readWindow(index, inputs: &inputs, targets: &targets)
            return TokenWindow(index: index, length: len, batch: source.localBatch, inputs: inputs, targets: targets)
        }
        slot.readSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        slot.ready.signal()
    }
}
