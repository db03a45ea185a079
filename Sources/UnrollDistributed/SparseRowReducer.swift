// Sums a row-sparse matrix over ranks: an embedding table's gradient, where a step touches only the
// rows of the tokens it saw (B·T of V rows, e.g. 400 of 10,000 on PTB). The ranks first agree on
// the union of touched rows (a V-float mask, reduced while forward runs), then reduce just those
// rows, packed, and scatter the sums back. Rows no rank touched are zero on every rank and stay
// zero, so the result is bit-identical to a dense reduction of the whole table.

/// Reduces the touched rows of a (rows, width) matrix over all ranks, in two phases per step:
/// `begin(touched:)` before the matrix is written (starts agreeing on the union of touched rows),
/// then `start(_:)` once it is final and `finish()` to complete the sum.
///
/// Falls back to reducing the whole matrix when the union covers more than half the rows (gathering
/// would then cost more than it saves). On one rank nothing moves, but `reducedRows` still tells
/// the caller which rows can be non-zero. Every rank takes the same branch, since it depends only on
/// the reduced mask. Reusable step after step; allocates only when the union grows past its largest
/// size so far.
public final class SparseRowReducer {
    public let rows: Int
    public let width: Int
    private let communicator: any Communicator
    /// (rows) 1 where this rank touched a row, then the number of ranks that did. Raw memory
    /// rather than arrays: MPI reads and writes it after the call that started the reduction.
    private let mask: UnsafeMutablePointer<Float>
    private var maskHandle = ReductionHandle.completed
    /// (union, width) the touched rows, packed in row order.
    private var packed: UnsafeMutablePointer<Float>
    private var packedCapacity = 0
    private var packedHandle = ReductionHandle.completed
    private var matrix: UnsafeMutablePointer<Float>?
    private var phase = Phase.idle

    private enum Phase { case idle, agreeing, reducing }

    /// Rows of the matrix that may be non-zero after the last `finish()`, ascending; nil when the
    /// whole matrix was reduced (or before the first step).
    public private(set) var reducedRows: [Int]?

    /// - Precondition: `rows > 0`, `width > 0`.
    public init(rows: Int, width: Int, communicator: any Communicator) {
        precondition(rows > 0 && width > 0, "SparseRowReducer(rows: \(rows), width: \(width))")
        self.rows = rows
        self.width = width
        self.communicator = communicator
        mask = .allocate(capacity: rows)
        mask.initialize(repeating: 0, count: rows)
        packed = .allocate(capacity: 1)
    }

    deinit {
        // A reduction still in flight may write into these; leak them rather than free under MPI.
        guard phase == .idle else { return }
        mask.deallocate()
        packed.deallocate()
    }

    /// Starts agreeing on the union of touched rows. `touched` are this rank's row indices (may
    /// repeat; each in `0..<rows`). Collective: every rank calls it at the same point.
    public func begin<S: Sequence>(touched: S) throws where S.Element: BinaryInteger {
        precondition(phase == .idle, "SparseRowReducer.begin called twice without finish")
        mask.update(repeating: 0, count: rows)
        for row in touched {
            let r = Int(row)
            precondition(r >= 0 && r < rows, "row \(r) outside 0..<\(rows)")
            mask[r] = 1
        }
        maskHandle = try communicator.startAllreduceSum(UnsafeMutableBufferPointer(start: mask, count: rows))
        phase = .agreeing
    }

    /// Lets the mask reduction progress; returns whether it has completed.
    public func poll() throws -> Bool {
        phase != .agreeing ? true : try communicator.poll(maskHandle)
    }

    /// Starts reducing the touched rows of `matrix` (rows, width), which must be final and must not
    /// be touched until `finish()` returns. Collective.
    public func start(_ matrix: UnsafeMutablePointer<Float>) throws {
        precondition(phase == .agreeing, "SparseRowReducer.start without begin")
        try communicator.wait(maskHandle)
        maskHandle = .completed
        self.matrix = matrix
        phase = .reducing
        var union: [Int] = []
        for i in 0..<rows where mask[i] > 0 { union.append(i) }
        if 2 * union.count > rows {
            reducedRows = nil
            packedHandle = try communicator.startAllreduceSum(UnsafeMutableBufferPointer(start: matrix, count: rows * width))
            return
        }
        reducedRows = union
        // One rank: the rows are already the sum; knowing which they are is all that is needed.
        if communicator.size == 1 {
            self.matrix = nil
            return
        }
        let needed = union.count * width
        if packedCapacity < needed {
            packed.deallocate()
            packed = .allocate(capacity: max(1, needed))
            packedCapacity = needed
        }
        for (k, row) in union.enumerated() {
            (packed + k * width).update(from: matrix + row * width, count: width)
        }
        packedHandle = try communicator.startAllreduceSum(UnsafeMutableBufferPointer(start: packed, count: needed))
    }

    /// Waits for the reduction started by `start` and writes the summed rows back. Collective.
    public func finish() throws {
        precondition(phase == .reducing, "SparseRowReducer.finish without start")
        try communicator.wait(packedHandle)
        packedHandle = .completed
        phase = .idle
        defer { matrix = nil }
        guard let matrix, let union = reducedRows else { return }
        for (k, row) in union.enumerated() {
            (matrix + row * width).update(from: packed + k * width, count: width)
        }
    }
}
