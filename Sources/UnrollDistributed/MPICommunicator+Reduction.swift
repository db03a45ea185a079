// Floating-point reductions with a fixed summation order, blocking and non-blocking.
//
// MPI_Allreduce does not promise an order of additions, and Open MPI 4.1's order depends on the
// algorithm it picks for the message size: at 3 ranks with default settings, MPI_Allreduce summed
// 1003- and 100000-float buffers in rank order but not a 4099-float one (655 elements differed),
// so results would change with the bucket size. Hence a reduction here is a reduce-scatter and an
// allgather built from point-to-point messages: every rank sends block k of its buffer to rank k,
// which folds the W copies of its block as a pairwise tree over the ranks ((x0 + x1) + (x2 + x3) at
// four ranks; see `fold`), then sends the folded block to every rank. Each element is thus summed
// in the same order whatever the block boundaries, so the result depends only on the number of ranks and is the same
// on every rank. Same traffic as a ring allreduce, but 2(W − 1) messages per rank: for a power-of-two
// number of ranks W the default is the logarithmic schedule instead (MPICommunicator+Halving.swift),
// which sums by the same tree in 2·log2 W messages; this file holds the linear schedule, the shared
// slot machinery and the public entry points. The first version used MPI_Ialltoallv and
// MPI_Iallgatherv for the two phases; those copy the rank's own block in and out of scratch and go
// through libnbc's schedules, and at 2 ranks took 1.5–3.5× the point-to-point form for 4–10 MB
// (which matches MPI_Allreduce's own time).
import MPIShim

/// The element-wise combination a reduction applies.
enum ReduceOp {
    /// Sum; a NaN result is the canonical quiet NaN (`.nan`), whatever NaNs went in.
    case sum
    /// Maximum; a NaN on any rank wins (the first in rank order), so all ranks see the same NaN.
    case max
}

/// Element types the reductions accept.
enum ReduceScalar {
    case float, double

    var datatype: MPI_Datatype { self == .float ? MPI_FLOAT : MPI_DOUBLE }
    var stride: Int { self == .float ? MemoryLayout<Float>.stride : MemoryLayout<Double>.stride }
}

/// How `MPICommunicator` schedules its ordered reductions. Both sum every element by the same
/// halving tree over the ranks, so their results are bit-identical; they differ in messages.
public enum ReductionSchedule: String, CaseIterable, Sendable {
    /// Reduce-scatter in which every rank sends block k to rank k, then an allgather: 2(W − 1)
    /// messages per rank and reduction. Any number of ranks.
    case linear
    /// Recursive halving with doubling distance, then recursive doubling: 2·log2 W messages per
    /// rank, the same bytes. Power-of-two numbers of ranks only.
    case logarithmic

    /// The schedule used unless set otherwise: logarithmic for a power-of-two number of ranks ≥ 2,
    /// else linear.
    public static func preferred(ranks: Int) -> ReductionSchedule {
        ranks >= 2 && ranks & (ranks - 1) == 0 ? .logarithmic : .linear
    }
}

/// Storage for one reduction, reused from step to step.
final class ReductionSlot {
    /// `exchanging` and `gathering` are the linear schedule's phases, `stepping` the logarithmic
    /// schedule's rounds.
    enum State { case idle, exchanging, gathering, stepping, complete }

    var state = State.idle
    /// Bumped on release so that a stale handle is recognised.
    var generation = 0
    /// The phase's point-to-point requests: a receive and a send per other rank.
    let requests: UnsafeMutablePointer<MPI_Request?>
    var base: UnsafeMutableRawPointer? = nil
    var count = 0
    var scalar = ReduceScalar.float
    var op = ReduceOp.sum
    /// 2 × ranks Int32: block counts and block offsets per rank, in elements.
    let layout: UnsafeMutablePointer<Int32>
    let ranks: Int
    /// Receives every other rank's copy of this rank's block, at position (rank · block).
    var scratch: UnsafeMutableRawPointer? = nil
    var scratchBytes = 0
    var schedule = ReductionSchedule.linear
    /// log2 ranks for a power of two ≥ 2, else 0: the logarithmic schedule's reduce-scatter rounds.
    let levels: Int
    /// Logarithmic schedule: per level j, the element ranges this rank keeps and sends in round j,
    /// as (kept lower, kept upper, sent lower, sent upper).
    let halves: UnsafeMutablePointer<Int>
    /// Logarithmic schedule: rounds whose messages have been posted / have completed and been combined.
    var postedRounds = 0
    var finishedRounds = 0

    init(ranks: Int) {
        self.ranks = ranks
        layout = .allocate(capacity: 2 * ranks)
        layout.initialize(repeating: 0, count: 2 * ranks)
        requests = .allocate(capacity: max(2, 2 * (ranks - 1)))
        requests.initialize(repeating: nil, count: max(2, 2 * (ranks - 1)))
        levels = ReductionSchedule.preferred(ranks: ranks) == .logarithmic ? ranks.trailingZeroBitCount : 0
        halves = .allocate(capacity: max(1, 4 * levels))
        halves.initialize(repeating: 0, count: max(1, 4 * levels))
    }

    deinit {
        // MPI may still be reading or writing these if the owner forgot to wait; leak them then.
        guard state == .idle || state == .complete else { return }
        layout.deallocate()
        requests.deallocate()
        halves.deallocate()
        scratch?.deallocate()
    }

    var blockCounts: UnsafeMutablePointer<Int32> { layout }
    var blockOffsets: UnsafeMutablePointer<Int32> { layout + ranks }
    var requestCount: Int32 { Int32(2 * (ranks - 1)) }
    /// Logarithmic schedule: reduce-scatter rounds then allgather rounds.
    var rounds: Int { 2 * levels }
}

/// Message tags: the exchange phase (the logarithmic schedule's first round) always runs on
/// `program` in program order; gathers (later rounds) of non-blocking reductions run on `gather`,
/// those of blocking ones on `program` under their own tags. The logarithmic schedule's round k
/// uses `roundTag + k` except a non-blocking first round, which uses `exchangeTag`.
let exchangeTag: Int32 = 1
private let blockingGatherTag: Int32 = 2
private let gatherTag: Int32 = 1
let roundTag: Int32 = 16

extension MPICommunicator {
    public func allreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws {
        try reduceBlocking(UnsafeMutableRawPointer(x.baseAddress), count: x.count, scalar: .float, op: .sum)
    }

    public func allreduceSum(_ x: UnsafeMutableBufferPointer<Double>) throws {
        try reduceBlocking(UnsafeMutableRawPointer(x.baseAddress), count: x.count, scalar: .double, op: .sum)
    }

    public func allreduceMax(_ x: UnsafeMutableBufferPointer<Double>) throws {
        try reduceBlocking(UnsafeMutableRawPointer(x.baseAddress), count: x.count, scalar: .double, op: .max)
    }

    public func startAllreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws -> ReductionHandle {
        guard x.count > 0, let base = x.baseAddress else { return .completed }
        let index = acquireSlot()
        let slot = slots[index]
        try prepare(slot, base: UnsafeMutableRawPointer(base), count: x.count, scalar: .float, op: .sum)
        switch slot.schedule {
        case .linear:
            try postExchange(slot)
            slot.state = .exchanging
            exchanging.append(index)
        case .logarithmic:
            try startRounds(slot)
            stepping.append(index)
        }
        return ReductionHandle(id: slot.generation << 32 | index)
    }

    public func wait(_ h: ReductionHandle) throws {
        if h == .completed { return }
        let slot = resolve(h)
        switch slot.state {
        case .exchanging, .gathering:
            try advanceExchanges(completing: slot)
            if slot.state == .gathering {
                try waitAll(slot.requests, count: slot.requestCount, "gradient allreduce", peers: .allOthers)
                slot.state = .complete
            }
        case .stepping:
            try advanceRounds(completing: slot)
        case .idle, .complete:
            break
        }
        slot.state = .idle
        slot.generation += 1
        slot.base = nil
    }

    public func poll(_ h: ReductionHandle) throws -> Bool {
        if h == .completed { return true }
        let slot = resolve(h)
        try advanceExchanges(completing: nil)
        try advanceRounds(completing: nil)
        if slot.state == .gathering {
            var done: Int32 = 0
            try mpiCheck(MPI_Testall(slot.requestCount, slot.requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall")
            if done != 0 { slot.state = .complete }
        }
        return slot.state == .complete
    }

    // MARK: - Engine

    private func reduceBlocking(_ base: UnsafeMutableRawPointer?, count: Int, scalar: ReduceScalar,
                                op: ReduceOp) throws {
        guard count > 0, let base else { return }
        let slot = blockingSlot
        try prepare(slot, base: base, count: count, scalar: scalar, op: op)
        if slot.schedule == .logarithmic {
            try reduceInRounds(slot)
            slot.base = nil
            return
        }
        try postExchange(slot)
        try waitAll(slot.requests, count: slot.requestCount, "allreduce", peers: .allOthers)
        foldReceivedBlocks(slot)
        try postGather(slot, on: program, tag: blockingGatherTag)
        try waitAll(slot.requests, count: slot.requestCount, "allreduce", peers: .allOthers)
        slot.base = nil
    }

    /// Posts the exchange: this rank's block k goes to rank k; every other rank's copy of this
    /// rank's block arrives in scratch.
    private func postExchange(_ slot: ReductionSlot) throws {
        guard let base = slot.base, let scratch = slot.scratch else { return }
        let stride = slot.scalar.stride, mine = slot.blockCounts[rank], type = slot.scalar.datatype
        var r = 0
        for k in 0..<size where k != rank {
            try mpiCheck(MPI_Irecv(scratch + k * Int(mine) * stride, mine, type, Int32(k), exchangeTag, program,
                                   slot.requests + r), "MPI_Irecv")
            try mpiCheck(MPI_Isend(base + Int(slot.blockOffsets[k]) * stride, slot.blockCounts[k], type, Int32(k),
                                   exchangeTag, program, slot.requests + r + 1), "MPI_Isend")
            r += 2
        }
    }

    /// Posts the gather: this rank's folded block goes to every rank; every other rank's folded
    /// block arrives in place.
    private func postGather(_ slot: ReductionSlot, on comm: MPI_Comm, tag: Int32) throws {
        guard let base = slot.base else { return }
        let stride = slot.scalar.stride, type = slot.scalar.datatype
        let own = base + Int(slot.blockOffsets[rank]) * stride
        var r = 0
        for k in 0..<size where k != rank {
            try mpiCheck(MPI_Irecv(base + Int(slot.blockOffsets[k]) * stride, slot.blockCounts[k], type, Int32(k),
                                   tag, comm, slot.requests + r), "MPI_Irecv")
            try mpiCheck(MPI_Isend(own, slot.blockCounts[rank], type, Int32(k), tag, comm, slot.requests + r + 1),
                         "MPI_Isend")
            r += 2
        }
    }

    /// Lowest idle slot, so that a step issuing the same reductions as the previous one gets the
    /// same slots back (and their scratch already has the right size).
    private func acquireSlot() -> Int {
        if let index = slots.firstIndex(where: { $0.state == .idle }) { return index }
        slots.append(ReductionSlot(ranks: size))
        reductionAllocations += 1
        return slots.count - 1
    }

    private func resolve(_ h: ReductionHandle) -> ReductionSlot {
        let index = h.id & 0xFFFF_FFFF, generation = h.id >> 32
        precondition(index < slots.count && slots[index].generation == generation && slots[index].state != .idle,
                     "ReductionHandle \(h.id) was not issued by this communicator or was already waited")
        return slots[index]
    }

    /// Linear schedule: splits `count` elements into one contiguous block per rank (the first
    /// `count % size` blocks one longer) and sizes the slot's scratch for this rank's block from
    /// every rank. Logarithmic schedule: see `planRounds`.
    private func prepare(_ slot: ReductionSlot, base: UnsafeMutableRawPointer, count: Int,
                         scalar: ReduceScalar, op: ReduceOp) throws {
        let call: StaticString = "MPI_Isend"
        _ = try mpiCount(count + size, call)  // every offset and count below then fits in Int32
        let quotient = count / size, remainder = count % size
        var offset = 0
        for k in 0..<size {
            let n = quotient + (k < remainder ? 1 : 0)
            slot.blockCounts[k] = Int32(n)
            slot.blockOffsets[k] = Int32(offset)
            offset += n
        }
        slot.schedule = reductionSchedule
        let bytes: Int
        switch slot.schedule {
        case .linear: bytes = max(1, size * Int(slot.blockCounts[rank])) * scalar.stride
        case .logarithmic: bytes = max(1, planRounds(slot, count: count)) * scalar.stride
        }
        if slot.scratchBytes < bytes {
            slot.scratch?.deallocate()
            slot.scratch = .allocate(byteCount: bytes, alignment: 64)
            slot.scratchBytes = bytes
            reductionAllocations += 1
        }
        slot.base = base
        slot.count = count
        slot.scalar = scalar
        slot.op = op
    }

    /// Moves slots whose exchange has finished to their gather phase, strictly in start order so
    /// that all ranks post the gathers on `gather` in the same order. Blocks until `target` (if
    /// any) has left the exchange phase; otherwise only takes what has already finished.
    private func advanceExchanges(completing target: ReductionSlot?) throws {
        while let index = exchanging.first {
            let slot = slots[index]
            if let target, target.state == .exchanging {
                try waitAll(slot.requests, count: slot.requestCount, "gradient allreduce", peers: .allOthers)
            } else {
                var done: Int32 = 0
                try mpiCheck(MPI_Testall(slot.requestCount, slot.requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall")
                if done == 0 { return }
            }
            exchanging.removeFirst()
            foldReceivedBlocks(slot)
            try postGather(slot, on: gather, tag: gatherTag)
            slot.state = .gathering
        }
    }

    /// Folds every rank's copy of this rank's block, as a tree over the ranks (see `fold`), into the block in place.
    private func foldReceivedBlocks(_ slot: ReductionSlot) {
        let n = Int(slot.blockCounts[rank])
        guard n > 0, let base = slot.base, let scratch = slot.scratch else { return }
        let own = base + Int(slot.blockOffsets[rank]) * slot.scalar.stride
        switch slot.scalar {
        case .float: fold(Float.self, slot.op, received: scratch, own: own, rank: rank, ranks: size, count: n)
        case .double: fold(Double.self, slot.op, received: scratch, own: own, rank: rank, ranks: size, count: n)
        }
    }
}

/// own[j] = the pairwise tree over x0[j] … x_{W−1}[j]: the ranks split at half, node(lo, hi) =
/// node(lo, mid) ⊕ node(mid, hi) with mid = lo + (hi − lo) / 2 (so at 2 ranks x0 ⊕ x1, at 4
/// (x0 ⊕ x1) ⊕ (x2 ⊕ x3)). x_rank is `own` itself and x_k (k ≠ rank) is block k of `received`
/// (blocks of `count`). A tree rather than a left fold: when each rank holds a whole subtree of a
/// larger halving tree (the trainer's reduction groups, see GradientSync), the sum over ranks
/// continues that tree, so the result does not depend on the number of ranks.
private func fold<T: BinaryFloatingPoint>(_: T.Type, _ op: ReduceOp, received: UnsafeMutableRawPointer,
                                          own: UnsafeMutableRawPointer, rank: Int, ranks: Int, count: Int) {
    let blocks = received.bindMemory(to: T.self, capacity: ranks * count)
    let dst = own.assumingMemoryBound(to: T.self)
    if ranks == 2 {
        // x0 ⊕ x1: fold the other rank's block into (or under) the own one.
        if rank == 0 {
            combine(op, into: dst, blocks + count, count: count)
        } else {
            combineUnder(op, into: dst, blocks, count: count)
        }
        return
    }
    // Chunk by chunk (they stay in L1), one accumulator per tree level.
    let chunk = 1024
    var levels = 1, span = 1
    while span < ranks { span *= 2; levels += 1 }
    withUnsafeTemporaryAllocation(of: T.self, capacity: chunk * levels) { tmp in
        let acc = tmp.baseAddress!
        var start = 0
        while start < count {
            let n = min(chunk, count - start)
            func source(_ k: Int) -> UnsafePointer<T> { UnsafePointer(k == rank ? dst + start : blocks + k * count + start) }
            func node(_ lo: Int, _ hi: Int, _ level: Int) {
                let out = acc + level * chunk
                if hi - lo == 1 {
                    out.update(from: source(lo), count: n)
                    return
                }
                let mid = lo + (hi - lo) / 2
                node(lo, mid, level)
                if mid + 1 == hi {
                    combine(op, into: out, source(mid), count: n)
                } else {
                    node(mid, hi, level + 1)
                    combine(op, into: out, acc + (level + 1) * chunk, count: n)
                }
            }
            node(0, ranks, 0)
            (dst + start).update(from: acc, count: n)
            start += n
        }
    }
}

/// a[j] = b[j] ⊕ a[j] (b is the left operand).
///
/// Both combinations give the same bits for the same (left, right) pair, whichever of them is
/// stored in `a`: a sum that is NaN is stored as the canonical quiet NaN, because which operand's
/// NaN an addition returns (sign and payload) depends on the instruction's operand order, which
/// the compiler picks; a maximum keeps the left operand on a tie (−0 and +0).
@inline(__always)
func combineUnder<T: BinaryFloatingPoint>(_ op: ReduceOp, into a: UnsafeMutablePointer<T>,
                                          _ b: UnsafePointer<T>, count: Int) {
    switch op {
    case .sum:
        for j in 0..<count {
            let s = b[j] + a[j]
            a[j] = s.isNaN ? .nan : s
        }
    case .max:
        // A NaN in b (earlier rank) wins; otherwise a NaN in a stays, else the larger, b on a tie.
        for j in 0..<count where b[j].isNaN || (!a[j].isNaN && b[j] >= a[j]) { a[j] = b[j] }
    }
}

/// a[j] = a[j] ⊕ b[j] (see `combineUnder`). The op is tested outside the loops so that the sum
/// loop vectorises.
@inline(__always)
func combine<T: BinaryFloatingPoint>(_ op: ReduceOp, into a: UnsafeMutablePointer<T>,
                                     _ b: UnsafePointer<T>, count: Int) {
    switch op {
    case .sum:
        for j in 0..<count {
            let s = a[j] + b[j]
            a[j] = s.isNaN ? .nan : s
        }
    case .max:
        // A NaN already in `a` (earlier rank) stays; otherwise a NaN or larger value in b wins.
        for j in 0..<count where !a[j].isNaN && (b[j].isNaN || b[j] > a[j]) { a[j] = b[j] }
    }
}
