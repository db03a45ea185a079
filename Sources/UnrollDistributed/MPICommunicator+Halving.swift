// The logarithmic schedule of the ordered reductions, for a power-of-two number of ranks W = 2^L:
// a reduce-scatter by recursive halving with doubling distance, then an allgather by recursive
// doubling in the reverse order. Reduce-scatter round j (j = 0 … L−1) pairs rank r with r XOR 2^j.
// Both hold the same range of the buffer, each summed over its own group of 2^j ranks; they split
// it at half, the rank whose bit j is 0 keeps the lower half, each sends the other half to its
// partner and combines what arrives with its own kept half, the lower-rank group's partial on the
// left. After L rounds every rank holds 1/W of the buffer, each element summed as
// ((x0 ⊕ x1) ⊕ (x2 ⊕ x3)) ⊕ …: the halving tree that `fold` computes for the linear schedule, with
// the same operands in the same places, so the two schedules agree bit for bit. The allgather runs
// the levels backwards (distance W/2 … 1): each rank sends its partner what it has of their common
// range and receives the rest. 2·L messages sent per rank instead of 2(W − 1), the same bytes.
//
// Non-blocking reductions are a per-slot state machine driven from poll and wait: round 0 is
// posted at start (program order, on `program`), each later round when the previous one has
// completed and been combined (a moment that differs between ranks, so on `gather`). Messages of
// one round between two ranks carry the same tag for every reduction, so every rank must post a
// given round of its reductions in start order: a reduction posts round k only after every
// earlier one still in flight has posted it.
import MPIShim

extension MPICommunicator {
    /// Fills `slot.halves` with the ranges this rank keeps and sends at each level and returns the
    /// scratch length (in elements) the reduce-scatter rounds need: the largest kept half.
    func planRounds(_ slot: ReductionSlot, count: Int) -> Int {
        var lo = 0, hi = count, largest = 0
        for level in 0..<slot.levels {
            // The lower half gets the odd element.
            let mid = lo + (hi - lo + 1) / 2
            let keepsLower = (rank >> level) & 1 == 0
            let range = slot.halves + 4 * level
            (range[0], range[1], range[2], range[3]) = keepsLower ? (lo, mid, mid, hi) : (mid, hi, lo, mid)
            (lo, hi) = (range[0], range[1])
            largest = Swift.max(largest, hi - lo)
        }
        slot.postedRounds = 0
        slot.finishedRounds = 0
        return largest
    }

    /// Blocking reduction by the logarithmic schedule: every round on `program` in program order.
    func reduceInRounds(_ slot: ReductionSlot) throws {
        for round in 0..<slot.rounds {
            try postRound(slot, round, on: program, tag: roundTag + Int32(round))
            try waitAll(slot.requests, count: 2, "allreduce", peers: .partner(partner(slot, round)))
            finishRound(slot)
        }
    }

    /// Posts the first round of a non-blocking reduction (at start, so in program order).
    func startRounds(_ slot: ReductionSlot) throws {
        try postRound(slot, 0, on: program, tag: exchangeTag)
        slot.state = .stepping
    }

    /// Moves the logarithmic reductions through their rounds as far as their messages allow, in
    /// start order, posting a round only after every earlier reduction in flight has posted it.
    /// With `target`, blocks until it (and every reduction started before it) has completed;
    /// without, only takes what has already arrived.
    func advanceRounds(completing target: ReductionSlot?) throws {
        var i = 0
        // Rounds posted by the latest earlier reduction still in flight (they are non-increasing in start order).
        var postedBefore = Int.max
        while i < stepping.count {
            let slot = slots[stepping[i]]
            while slot.finishedRounds < slot.rounds {
                if slot.postedRounds == slot.finishedRounds {
                    let round = slot.postedRounds
                    guard round < postedBefore else { break }
                    try postRound(slot, round, on: gather, tag: roundTag + Int32(round))
                }
                if target != nil {
                    try waitAll(slot.requests, count: 2, "gradient allreduce",
                                peers: .partner(partner(slot, slot.finishedRounds)))
                } else {
                    var done: Int32 = 0
                    try mpiCheck(MPI_Testall(2, slot.requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall")
                    if done == 0 { break }
                }
                finishRound(slot)
            }
            if slot.finishedRounds == slot.rounds {
                slot.state = .complete
                stepping.remove(at: i)
            } else {
                postedBefore = slot.postedRounds
                i += 1
            }
            if slot === target { return }
        }
    }

    /// The rank this one exchanges with in `round`: reduce-scatter rounds at distance 1, 2, …,
    /// W/2, then the allgather at W/2, …, 1.
    private func partner(_ slot: ReductionSlot, _ round: Int) -> Int {
        rank ^ (1 << level(slot, round))
    }

    private func level(_ slot: ReductionSlot, _ round: Int) -> Int {
        round < slot.levels ? round : slot.rounds - 1 - round
    }

    /// Posts `round`'s receive and send (requests 0 and 1; MPI_REQUEST_NULL for an empty half,
    /// which both partners skip). Reduce-scatter: the partner's copy of the kept half arrives in
    /// scratch, the sent half goes out. Allgather: the kept (now complete) half goes out, the
    /// partner's arrives in place.
    private func postRound(_ slot: ReductionSlot, _ round: Int, on comm: MPI_Comm, tag: Int32) throws {
        guard let base = slot.base, let scratch = slot.scratch else { return }
        let range = slot.halves + 4 * level(slot, round)
        let stride = slot.scalar.stride, type = slot.scalar.datatype, peer = Int32(partner(slot, round))
        let scattering = round < slot.levels
        let inbox = scattering ? scratch : base + range[2] * stride
        let incoming = scattering ? range[1] - range[0] : range[3] - range[2]
        let outbox = scattering ? base + range[2] * stride : base + range[0] * stride
        let outgoing = scattering ? range[3] - range[2] : range[1] - range[0]
        slot.requests[0] = MPI_REQUEST_NULL
        slot.requests[1] = MPI_REQUEST_NULL
        if incoming > 0 {
            try mpiCheck(MPI_Irecv(inbox, Int32(incoming), type, peer, tag, comm, slot.requests), "MPI_Irecv")
        }
        if outgoing > 0 {
            try mpiCheck(MPI_Isend(outbox, Int32(outgoing), type, peer, tag, comm, slot.requests + 1), "MPI_Isend")
        }
        slot.postedRounds += 1
    }

    /// Completes the round whose messages have arrived: a reduce-scatter round combines the
    /// partner's partial (in scratch) with the kept half, the lower-rank group's on the left.
    private func finishRound(_ slot: ReductionSlot) {
        let round = slot.finishedRounds
        slot.finishedRounds += 1
        guard round < slot.levels, let base = slot.base, let scratch = slot.scratch else { return }
        let range = slot.halves + 4 * round
        let n = range[1] - range[0]
        guard n > 0 else { return }
        let ownIsLeft = (rank >> round) & 1 == 0
        let own = base + range[0] * slot.scalar.stride
        switch slot.scalar {
        case .float: combineHalf(Float.self, slot.op, own: own, received: scratch, count: n, ownIsLeft: ownIsLeft)
        case .double: combineHalf(Double.self, slot.op, own: own, received: scratch, count: n, ownIsLeft: ownIsLeft)
        }
    }
}

/// own = own ⊕ received when this rank's group is the lower one, else received ⊕ own.
private func combineHalf<T: BinaryFloatingPoint>(_: T.Type, _ op: ReduceOp, own: UnsafeMutableRawPointer,
                                                 received: UnsafeMutableRawPointer, count: Int, ownIsLeft: Bool) {
    let a = own.assumingMemoryBound(to: T.self)
    let b = UnsafePointer(received.bindMemory(to: T.self, capacity: count))
    if ownIsLeft {
        combine(op, into: a, b, count: count)
    } else {
        combineUnder(op, into: a, b, count: count)
    }
}
