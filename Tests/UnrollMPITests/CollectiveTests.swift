// The collective tests run on every rank under mpirun: sums against a rank-order fold computed
// locally, the bucketed reducer against one blocking allreduce bit for bit, the logarithmic
// reduction schedule against the linear one bit for bit (blocking and non-blocking), non-blocking handles,
// broadcast, allAgree, checkIdentical, MPI error reporting, and a slow but progressing wait that
// must not trip the collective timeout.
#if canImport(Glibc)
import Glibc
#endif
import UnrollDistributed

/// All tests, in the order every rank runs them.
let collectiveTests: [MPITest] = [
    MPITest(name: "rankAndSizeMatchTheLauncher", body: rankAndSizeMatchTheLauncher),
    MPITest(name: "allreduceFloatSumOfIntegersIsExact", body: allreduceFloatSumOfIntegersIsExact),
    MPITest(name: "allreduceFloatSumIsRankOrderFold", body: allreduceFloatSumIsRankOrderFold),
    MPITest(name: "allreduceDoubleSumIsRankOrderFold", body: allreduceDoubleSumIsRankOrderFold),
    MPITest(name: "allreduceMaxTakesMaximumAndPropagatesNaN", body: allreduceMaxTakesMaximumAndPropagatesNaN),
    MPITest(name: "bucketedReducerMatchesBlockingAllreduceBitForBit",
            body: bucketedReducerMatchesBlockingAllreduceBitForBit),
    MPITest(name: "reducerIsReusableAcrossSteps", body: reducerIsReusableAcrossSteps),
    MPITest(name: "sparseRowReducerMatchesDenseAllreduceBitForBit", body: sparseRowReducerMatchesDenseAllreduceBitForBit),
    MPITest(name: "nonBlockingReductionsCompleteInAnyWaitOrder", body: nonBlockingReductionsCompleteInAnyWaitOrder),
    MPITest(name: "scheduleIsLogarithmicExactlyForPowersOfTwo", body: scheduleIsLogarithmicExactlyForPowersOfTwo),
    MPITest(name: "logarithmicScheduleMatchesLinearBitForBit", body: logarithmicScheduleMatchesLinearBitForBit),
    MPITest(name: "logarithmicNonBlockingMatchesLinearInAnyWaitOrder",
            body: logarithmicNonBlockingMatchesLinearInAnyWaitOrder),
    MPITest(name: "reductionIsReproducible", body: reductionIsReproducible),
    MPITest(name: "reductionResultIsIdenticalOnAllRanks", body: reductionResultIsIdenticalOnAllRanks),
    MPITest(name: "broadcastCopiesRootBytesAndResizes", body: broadcastCopiesRootBytesAndResizes),
    MPITest(name: "allAgreeIsFalseWhenAnyRankSaysFalse", body: allAgreeIsFalseWhenAnyRankSaysFalse),
    MPITest(name: "checkIdenticalPassesWhenValuesMatch", body: checkIdenticalPassesWhenValuesMatch),
    MPITest(name: "checkIdenticalThrowsTheSameErrorOnEveryRank", body: checkIdenticalThrowsTheSameErrorOnEveryRank),
    MPITest(name: "invalidBroadcastRootThrowsMPIErrorOnEveryRank", body: invalidBroadcastRootThrowsMPIErrorOnEveryRank),
    MPITest(name: "progressingWaitLongerThanTimeoutDoesNotAbort", body: progressingWaitLongerThanTimeoutDoesNotAbort),
]

// MARK: - Inputs

/// SplitMix64: a deterministic value for (seed, rank, index), so every rank can compute every
/// other rank's input and hence the expected result.
private func mix(_ seed: Int, _ rank: Int, _ index: Int) -> UInt64 {
    var z = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15
        &+ UInt64(truncatingIfNeeded: rank) &* 0xBF58_476D_1CE4_E5B9
        &+ UInt64(truncatingIfNeeded: index) &* 0x94D0_49BB_1331_11EB
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A value in ±[0.5, 1) · 2^e with e in -8...8: magnitudes that differ make rounding depend on
/// the order of the additions.
private func input<T: BinaryFloatingPoint>(_: T.Type, seed: Int, rank: Int, index: Int) -> T {
    let bits = mix(seed, rank, index)
    let unit = T(bits >> 11) / T(UInt64(1) << 53) * 0.5 + 0.5
    let exponent = Int(bits & 15) - 8
    let sign: T = (bits >> 4) & 1 == 0 ? 1 : -1
    return sign * unit * T(Float(exactly: exp2(Double(exponent))) ?? 1)
}

private func inputs<T: BinaryFloatingPoint>(_ type: T.Type, seed: Int, rank: Int, count: Int) -> [T] {
    (0..<count).map { input(type, seed: seed, rank: rank, index: $0) }
}

/// The halving tree over ranks per element, node(lo, hi) = node(lo, mid) + node(mid, hi) with
/// mid = lo + (hi − lo) / 2 (x_0 + x_1 at 2 ranks, (x_0 + x_1) + (x_2 + x_3) at 4): the order the
/// communicator promises.
private func rankOrderSum<T: BinaryFloatingPoint>(_ type: T.Type, seed: Int, ranks: Int, count: Int) -> [T] {
    let xs = (0..<max(1, ranks)).map { inputs(type, seed: seed, rank: $0, count: count) }
    func node(_ lo: Int, _ hi: Int) -> [T] {
        if hi - lo == 1 { return xs[lo] }
        let mid = lo + (hi - lo) / 2
        let a = node(lo, mid), b = node(mid, hi)
        return (0..<count).map { a[$0] + b[$0] }
    }
    return node(0, xs.count)
}

private func blockingSum(_ comm: any Communicator, _ x: [Float]) throws -> [Float] {
    var y = x
    try y.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
    return y
}

/// Reduces `buffer` with a fresh reducer, declaring it ready in uneven "layers" from the end and
/// polling in between, as backward would.
private func bucketedSum(_ comm: any Communicator, _ x: [Float], bucketBytes: Int) throws -> [Float] {
    var y = x
    try y.withUnsafeMutableBufferPointer { buffer in
        let reducer = GradientBucketReducer(buffer: buffer, bucketBytes: bucketBytes, communicator: comm)
        try simulateBackward(reducer, count: buffer.count)
    }
    return y
}

private func simulateBackward(_ reducer: GradientBucketReducer, count: Int) throws {
    let layer = max(1, count / 5 + 3)
    var offset = count
    while offset > 0 {
        offset = max(0, offset - layer)
        try reducer.ready(from: offset)
        try reducer.poll()
    }
    try reducer.finish()
}

/// FNV-1a over the bit patterns: a short string to compare across ranks with checkIdentical.
private func digest(_ x: [Float]) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for v in x {
        h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01B3
    }
    return String(h, radix: 16)
}

// MARK: - Tests

private func rankAndSizeMatchTheLauncher(_ comm: any Communicator, _ e: inout Expectations) throws {
    if let size = getenv("OMPI_COMM_WORLD_SIZE").flatMap({ Int(String(cString: $0)) }) {
        e.expect(comm.size == size, "size \(comm.size), launcher says \(size)")
    }
    if let rank = getenv("OMPI_COMM_WORLD_RANK").flatMap({ Int(String(cString: $0)) }) {
        e.expect(comm.rank == rank, "rank \(comm.rank), launcher says \(rank)")
    }
    var ranks = [Double(comm.rank)]
    try ranks.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
    e.expect(ranks[0] == Double(comm.size * (comm.size - 1) / 2), "sum of ranks \(ranks[0])")
}

private func allreduceFloatSumOfIntegersIsExact(_ comm: any Communicator, _ e: inout Expectations) throws {
    let x = (0..<1000).map { Float((comm.rank + 1) * ($0 % 100)) }
    let y = try blockingSum(comm, x)
    let factor = comm.size * (comm.size + 1) / 2
    e.expectSameBits(y, (0..<1000).map { Float(factor * ($0 % 100)) }, "integer sums")
}

private func allreduceFloatSumIsRankOrderFold(_ comm: any Communicator, _ e: inout Expectations) throws {
    for count in [1, 3, 1003, 100_000] {
        let y = try blockingSum(comm, inputs(Float.self, seed: count, rank: comm.rank, count: count))
        e.expectSameBits(y, rankOrderSum(Float.self, seed: count, ranks: comm.size, count: count), "count \(count)")
    }
}

private func allreduceDoubleSumIsRankOrderFold(_ comm: any Communicator, _ e: inout Expectations) throws {
    for count in [1, 7, 4097] {
        var y = inputs(Double.self, seed: 11 * count, rank: comm.rank, count: count)
        try y.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
        e.expectSameBits(y, rankOrderSum(Double.self, seed: 11 * count, ranks: comm.size, count: count),
                         "count \(count)")
    }
}

private func allreduceMaxTakesMaximumAndPropagatesNaN(_ comm: any Communicator, _ e: inout Expectations) throws {
    let count = 1001
    var y = inputs(Double.self, seed: 5, rank: comm.rank, count: count)
    try y.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
    let expected = (0..<count).map { i in
        (0..<comm.size).map { input(Double.self, seed: 5, rank: $0, index: i) }.max()!
    }
    e.expectSameBits(y, expected, "maxima")

    // A NaN on the last rank only must reach every rank, in either position relative to a number.
    var z: [Double] = [1, 2, 3, 4]
    if comm.rank == comm.size - 1 { z[1] = .nan }
    if comm.rank == 0 { z[2] = .nan }
    try z.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
    e.expect(z[0] == 1 && z[1].isNaN && z[2].isNaN && z[3] == 4, "NaN not propagated: \(z)")
}

private func bucketedReducerMatchesBlockingAllreduceBitForBit(_ comm: any Communicator,
                                                               _ e: inout Expectations) throws {
    let counts = [1, 2, 7, 1000, 4099, 65_537, 300_001]
    // Bucket sizes not multiples of 4 bytes, nor of the counts; 64 MB is larger than every buffer.
    let bucketBytes = [4, 12, 1001, 4096, 1 << 20, 64 << 20]
    for count in counts {
        for bytes in bucketBytes where count / max(1, bytes / 4) <= 5000 {
            let x = inputs(Float.self, seed: count &+ 31 &* bytes, rank: comm.rank, count: count)
            let blocking = try blockingSum(comm, x)
            let bucketed = try bucketedSum(comm, x, bucketBytes: bytes)
            e.expectSameBits(bucketed, blocking, "count \(count), bucket \(bytes) B")
        }
    }
}

private func reducerIsReusableAcrossSteps(_ comm: any Communicator, _ e: inout Expectations) throws {
    let count = 50_003
    let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
    defer { buffer.deallocate() }
    let reducer = GradientBucketReducer(buffer: buffer, bucketBytes: 16 << 10, communicator: comm)
    for step in 0..<4 {
        let x = inputs(Float.self, seed: 1000 + step, rank: comm.rank, count: count)
        _ = buffer.initialize(from: x)
        if step == 2 {
            try reducer.finish()  // no ready() calls at all: finish starts everything
        } else {
            try simulateBackward(reducer, count: count)
        }
        e.expectSameBits(Array(buffer), try blockingSum(comm, x), "step \(step)")
    }
}

/// Each rank touches its own pseudo-random rows (a few, then most of them, which takes the dense
/// branch); untouched rows are zero as in an embedding gradient. The sparse reduction must equal a
/// blocking allreduce of the whole matrix bit for bit, report the union it reduced, and be reusable.
private func sparseRowReducerMatchesDenseAllreduceBitForBit(_ comm: any Communicator,
                                                            _ e: inout Expectations) throws {
    let rows = 1000, width = 7
    let reducer = SparseRowReducer(rows: rows, width: width, communicator: comm)
    let matrix = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
    defer { matrix.deallocate() }
    for (step, perRank) in [3, 40, 700, 0, 25].enumerated() {
        var touched: [[Int]] = []
        for r in 0..<comm.size {
            touched.append((0..<perRank).map { Int(mix(step, r, $0) % UInt64(rows)) })
        }
        let values = inputs(Float.self, seed: 500 + step, rank: comm.rank, count: rows * width)
        var local = Array(repeating: Float(0), count: rows * width)
        for row in touched[comm.rank] {
            for j in 0..<width { local[row * width + j] = values[row * width + j] }
        }
        matrix.update(from: local, count: rows * width)
        try reducer.begin(touched: touched[comm.rank].map { Int32($0) })
        _ = try reducer.poll()
        try reducer.start(matrix)
        try reducer.finish()
        let expected = try blockingSum(comm, local)
        e.expectSameBits(Array(UnsafeBufferPointer(start: matrix, count: rows * width)), expected, "step \(step)")
        let union = Set(touched.joined()).sorted()
        if 2 * union.count > rows {
            e.expect(reducer.reducedRows == nil, "step \(step): \(union.count) rows should take the dense branch")
        } else {
            e.expect(reducer.reducedRows == union, "step \(step): reduced rows are not the union")
        }
    }
}

private func nonBlockingReductionsCompleteInAnyWaitOrder(_ comm: any Communicator, _ e: inout Expectations) throws {
    var a = inputs(Float.self, seed: 71, rank: comm.rank, count: 10)
    var b = inputs(Float.self, seed: 72, rank: comm.rank, count: 5000)
    var c = inputs(Float.self, seed: 73, rank: comm.rank, count: 77)
    let expectedA = try blockingSum(comm, a), expectedB = try blockingSum(comm, b)
    let expectedC = try blockingSum(comm, c)
    let d = inputs(Float.self, seed: 74, rank: comm.rank, count: 300)
    var empty: [Float] = []
    try a.withUnsafeMutableBufferPointer { pa in
        try b.withUnsafeMutableBufferPointer { pb in
            try c.withUnsafeMutableBufferPointer { pc in
                let ha = try comm.startAllreduceSum(pa)
                let hb = try comm.startAllreduceSum(pb)
                // A blocking collective while two reductions are in flight.
                let sumD = try blockingSum(comm, d)
                e.expectSameBits(sumD, rankOrderSum(Float.self, seed: 74, ranks: comm.size, count: 300), "blocking d")
                let hc = try comm.startAllreduceSum(pc)
                let he = try empty.withUnsafeMutableBufferPointer { try comm.startAllreduceSum($0) }
                // Ranks poll different numbers of times, so their phases drift apart.
                for _ in 0..<(comm.rank * 7) { _ = try comm.poll(hb) }
                var spins = 0
                while try !comm.poll(hc), spins < 1_000_000 { spins += 1 }
                e.expect(try comm.poll(hc), "poll(hc) never reported completion")
                try comm.wait(he)
                try comm.wait(hc)
                try comm.wait(ha)
                try comm.wait(hb)
            }
        }
    }
    e.expectSameBits(a, expectedA, "a")
    e.expectSameBits(b, expectedB, "b")
    e.expectSameBits(c, expectedC, "c")
}

/// Runs `body` with the communicator's reductions on `schedule`, then restores the previous one.
private func withSchedule<R>(_ schedule: ReductionSchedule, _ comm: any Communicator, _ body: () throws -> R) rethrows -> R {
    guard let mpi = comm as? MPICommunicator else { return try body() }
    let saved = mpi.reductionSchedule
    mpi.reductionSchedule = schedule
    defer { mpi.reductionSchedule = saved }
    return try body()
}

/// Whether the logarithmic schedule applies at this size (a power of two ≥ 2).
private func logarithmicApplies(_ comm: any Communicator) -> Bool {
    comm.size >= 2 && comm.size & (comm.size - 1) == 0
}

/// Inputs with about one element in 12 special: ±∞, NaN, ±0.
private func specialInputs<T: BinaryFloatingPoint>(_ type: T.Type, seed: Int, rank: Int, count: Int) -> [T] {
    (0..<count).map { i in
        switch mix(seed &+ 7, rank, i) % 60 {
        case 0: return .infinity
        case 1: return -.infinity
        case 2: return .nan
        case 3: return -0.0
        case 4: return 0
        default: return input(type, seed: seed, rank: rank, index: i)
        }
    }
}

private func scheduleIsLogarithmicExactlyForPowersOfTwo(_ comm: any Communicator, _ e: inout Expectations) throws {
    guard let mpi = comm as? MPICommunicator else { return }
    // launch/test-mpi also runs this with UNROLL_REDUCTION_SCHEDULE=linear.
    let forcedLinear = getenv("UNROLL_REDUCTION_SCHEDULE").map { String(cString: $0) } == "linear"
    let expected: ReductionSchedule = logarithmicApplies(comm) && !forcedLinear ? .logarithmic : .linear
    e.expect(mpi.reductionSchedule == expected, "\(comm.size) ranks: schedule \(mpi.reductionSchedule)")
    e.expect([1, 3, 5, 6, 12].allSatisfy { ReductionSchedule.preferred(ranks: $0) == .linear }
             && [2, 4, 8, 256].allSatisfy { ReductionSchedule.preferred(ranks: $0) == .logarithmic },
             "preferred schedule by number of ranks")
}

/// Blocking sums (Float, Double) and maxima (Double) of plain and special inputs for many counts
/// (fewer elements than ranks, odd, large): the logarithmic schedule must give the linear one's
/// bits, and the plain sums must be the halving tree's.
private func logarithmicScheduleMatchesLinearBitForBit(_ comm: any Communicator, _ e: inout Expectations) throws {
    guard logarithmicApplies(comm) else { return }
    let w = comm.size
    for count in Set([0, 1, 2, 3, w - 1, w, w + 1, 2 * w + 1, 1003, 4099, 65_537]).sorted() {
        for special in [false, true] {
            let seed = 31 * count + (special ? 1 : 0)
            let f = special ? specialInputs(Float.self, seed: seed, rank: comm.rank, count: count)
                : inputs(Float.self, seed: seed, rank: comm.rank, count: count)
            let d = special ? specialInputs(Double.self, seed: seed, rank: comm.rank, count: count)
                : inputs(Double.self, seed: seed, rank: comm.rank, count: count)
            var results: [ReductionSchedule: ([Float], [Double], [Double])] = [:]
            for schedule in ReductionSchedule.allCases {
                results[schedule] = try withSchedule(schedule, comm) {
                    var sf = f, sd = d, md = d
                    try sf.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
                    try sd.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
                    try md.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
                    return (sf, sd, md)
                }
            }
            let (lf, ld, lm) = results[.logarithmic]!, (rf, rd, rm) = results[.linear]!
            let what = "count \(count)\(special ? " with ±inf, NaN, ±0" : "")"
            e.expectSameBits(lf, rf, "Float sum, " + what)
            e.expectSameBits(ld, rd, "Double sum, " + what)
            e.expectSameBits(lm, rm, "Double max, " + what)
            if !special {
                e.expectSameBits(lf, rankOrderSum(Float.self, seed: seed, ranks: w, count: count), "Float tree, " + what)
            }
            if special && count >= 1003 {
                // The special values really occur in the result (else this case tests nothing).
                e.expect(lf.contains { $0.isNaN } && lf.contains { $0.isInfinite } && lm.contains { $0.isNaN },
                         what + ": no NaN or ∞ in the result")
            }
        }
    }
}

/// Several logarithmic reductions in flight (one longer than the others, one shorter than the
/// number of ranks, one empty), ranks polling different numbers of times, a blocking reduction
/// and a bucketed reduction in between, waited in another order than started: each must equal the
/// linear schedule's blocking result bit for bit.
private func logarithmicNonBlockingMatchesLinearInAnyWaitOrder(_ comm: any Communicator,
                                                                _ e: inout Expectations) throws {
    guard logarithmicApplies(comm) else { return }
    let counts = [4099, 1, comm.size - 1, 100_003, 77, 0]
    var xs = counts.enumerated().map { inputs(Float.self, seed: 900 + $0.offset, rank: comm.rank, count: $0.element) }
    let bucketInput = inputs(Float.self, seed: 950, rank: comm.rank, count: 65_537)
    let expected = try withSchedule(.linear, comm) { try xs.map { try blockingSum(comm, $0) } }
    let expectedBucketed = try withSchedule(.linear, comm) { try blockingSum(comm, bucketInput) }
    var bucketed: [Float] = []
    let buffers = xs.indices.map { i in
        let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: counts[i])
        _ = b.initialize(from: xs[i])
        return b
    }
    defer { buffers.forEach { $0.deallocate() } }
    var handles: [ReductionHandle] = []
    for (i, buffer) in buffers.enumerated() {
        handles.append(try comm.startAllreduceSum(buffer))
        if i == 2 {
            // Blocking and bucketed reductions while three are in flight.
            let mid = try blockingSum(comm, xs[1])
            e.expectSameBits(mid, expected[1], "blocking while in flight")
            bucketed = try bucketedSum(comm, bucketInput, bucketBytes: 4096)
        }
        for _ in 0..<(comm.rank * 3 + i) { _ = try comm.poll(handles[0]) }
    }
    var spins = 0
    while try !comm.poll(handles[4]), spins < 10_000_000 { spins += 1 }
    e.expect(try comm.poll(handles[4]), "poll never reported completion")
    for i in [4, 3, 0, 5, 2, 1] { try comm.wait(handles[i]) }
    for i in xs.indices {
        xs[i] = Array(buffers[i])
        e.expectSameBits(xs[i], expected[i], "reduction \(i) (\(counts[i]) elements)")
    }
    e.expectSameBits(bucketed, expectedBucketed, "bucketed while in flight")
}

private func reductionIsReproducible(_ comm: any Communicator, _ e: inout Expectations) throws {
    let x = inputs(Float.self, seed: 99, rank: comm.rank, count: 123_457)
    let first = try blockingSum(comm, x), second = try blockingSum(comm, x)
    e.expectSameBits(second, first, "blocking, second run")
    let firstBucketed = try bucketedSum(comm, x, bucketBytes: 40_000)
    let secondBucketed = try bucketedSum(comm, x, bucketBytes: 40_000)
    e.expectSameBits(firstBucketed, first, "bucketed, first run")
    e.expectSameBits(secondBucketed, first, "bucketed, second run")
}

private func reductionResultIsIdenticalOnAllRanks(_ comm: any Communicator, _ e: inout Expectations) throws {
    let x = inputs(Float.self, seed: 5150, rank: comm.rank, count: 77_777)
    try comm.checkIdentical(digest(try blockingSum(comm, x)), what: "blocking sum digest")
    try comm.checkIdentical(digest(try bucketedSum(comm, x, bucketBytes: 10_000)), what: "bucketed sum digest")
}

private func broadcastCopiesRootBytesAndResizes(_ comm: any Communicator, _ e: inout Expectations) throws {
    for root in Set([0, comm.size - 1]).sorted() {
        for length in [0, 1, 1000, 1 << 20] {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ root &+ length) }
            // Non-roots start empty, shorter, or longer than the payload.
            var bytes = comm.rank == root ? payload : [UInt8](repeating: 0xAB, count: comm.rank * 700)
            try comm.broadcast(&bytes, root: root)
            e.expect(bytes == payload, "root \(root), length \(length): got \(bytes.count) bytes, wrong content")
        }
    }
}

private func allAgreeIsFalseWhenAnyRankSaysFalse(_ comm: any Communicator, _ e: inout Expectations) throws {
    e.expect(try comm.allAgree(true), "all true gave false")
    e.expect(try !comm.allAgree(comm.rank != comm.size - 1), "last rank false gave true")
    e.expect(try !comm.allAgree(comm.rank != 0), "rank 0 false gave true")
    e.expect(try !comm.allAgree(false), "all false gave true")
}

private func checkIdenticalPassesWhenValuesMatch(_ comm: any Communicator, _ e: inout Expectations) throws {
    try comm.checkIdentical("vocab=65 hidden=512 layers=2 ✓", what: "configuration")
    try comm.checkIdentical("", what: "empty string")
}

private func checkIdenticalThrowsTheSameErrorOnEveryRank(_ comm: any Communicator, _ e: inout Expectations) throws {
    guard comm.size > 1 else { return }  // nothing can differ at one rank
    let odd = comm.size - 1
    // A short value, and a long one that differs only after character 300.
    let long = String(repeating: "layer=lstm hidden=512; ", count: 20)
    let cases = [("lr=0.1", "lr=0.2", "configuration", #"rank \#(odd) has "lr=0.2" but rank 0 has "lr=0.1""#),
                 (long + "seed=1", long + "seed=2", "config JSON", "first difference at character \(long.count + 5)")]
    for (common, different, what, detail) in cases {
        do {
            try comm.checkIdentical(comm.rank == odd ? different : common, what: what)
            e.expect(false, "\(what): no error although rank \(odd) differs")
        } catch let error as DistributedError {
            guard case let .notIdentical(reportedWhat, rank, _, _) = error else {
                e.expect(false, "\(what): unexpected error \(error)")
                continue
            }
            e.expect(reportedWhat == what && rank == odd, "\(what): reported \(reportedWhat) at rank \(rank)")
            let message = error.description
            e.expect(message.hasPrefix("\(what) differs between ranks") && message.contains(detail),
                     "\(what): message \(message)")
            // The message itself must be identical everywhere.
            try comm.checkIdentical(message, what: "error message")
        }
    }
}

private func invalidBroadcastRootThrowsMPIErrorOnEveryRank(_ comm: any Communicator, _ e: inout Expectations) throws {
    var bytes: [UInt8] = [1, 2, 3]
    do {
        try comm.broadcast(&bytes, root: comm.size)
        e.expect(false, "broadcast from root \(comm.size) did not throw")
    } catch let DistributedError.mpi(call, _, message) {
        e.expect(call == "MPI_Ibcast" && message.contains("root"), "call \(call), message \(message)")
    }
}

/// Rank k > 0 joins a reduction k × 0.9 s late; with a 1.5 s timeout, rank 0's wait lasts longer
/// than the timeout at 3 ranks (1.8 s) but a message arrives every 0.9 s, so nothing may abort (an
/// abort ends the whole suite). The timeout measures silence, not the length of the wait. With the
/// logarithmic schedule (a power-of-two number of ranks) a rank hears from a group only when the
/// whole group has arrived, so there rank k is 0.9 s late per bit set in k: rank 0 hears from
/// rank 1 at 0.9 s, from ranks 2–3 at 1.8 s, from ranks 4–7 at 2.7 s.
private func progressingWaitLongerThanTimeoutDoesNotAbort(_ comm: any Communicator, _ e: inout Expectations) throws {
    guard comm.size > 1 else { return }
    let saved = comm.collectiveTimeout
    comm.collectiveTimeout = 1.5
    defer { comm.collectiveTimeout = saved }
    var x = [Float](repeating: Float(comm.rank + 1), count: 3000)
    try comm.barrier()
    let lateness = logarithmicApplies(comm) ? comm.rank.nonzeroBitCount : comm.rank
    usleep(useconds_t(lateness * 900_000))
    try x.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
    let expected = Float(comm.size * (comm.size + 1) / 2)
    e.expect(x.allSatisfy { $0 == expected }, "sum \(x[0]), expected \(expected)")
}
