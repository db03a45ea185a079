// Bucket arithmetic of GradientBucketReducer (buckets cover the buffer exactly once, cut from the
// end backwards) and its protocol with the communicator, observed through a recording fake.
import Testing
@testable import UnrollDistributed

@Suite struct GradientBucketReducerTests {
    @Test(arguments: [(0, 1), (1, 1), (1, 5), (10, 3), (10, 10), (10, 100), (1000, 7), (4096, 1024), (4097, 1024)])
    func bucketsCoverTheBufferExactlyOnceFromTheEnd(count: Int, bucketElements: Int) {
        let buckets = GradientBucketReducer.bucketRanges(count: count, bucketElements: bucketElements)
        #expect(buckets.count == (count + bucketElements - 1) / bucketElements)
        var expectedUpper = count
        for (i, bucket) in buckets.enumerated() {
            #expect(bucket.upperBound == expectedUpper, "bucket \(i) must end where bucket \(i - 1) begins")
            #expect(!bucket.isEmpty)
            if i < buckets.count - 1 { #expect(bucket.count == bucketElements) }
            expectedUpper = bucket.lowerBound
        }
        #expect(expectedUpper == 0, "the last bucket must start at offset 0")
        #expect(buckets.reduce(0) { $0 + $1.count } == count)
    }

    @Test func bucketBytesRoundDownToWholeFloatsAtLeastOne() {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 10)
        defer { buffer.deallocate() }
        let comm = SingleProcessCommunicator()
        #expect(GradientBucketReducer(buffer: buffer, bucketBytes: 11, communicator: comm).buckets
                == [8..<10, 6..<8, 4..<6, 2..<4, 0..<2])
        #expect(GradientBucketReducer(buffer: buffer, bucketBytes: 3, communicator: comm).buckets.count == 10)
        #expect(GradientBucketReducer(buffer: buffer, bucketBytes: 1 << 20, communicator: comm).buckets == [0..<10])
    }

    @Test func readyStartsOnlyFinishedBucketsInReverseOrder() throws {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 10)
        defer { buffer.deallocate() }
        let comm = RecordingCommunicator(base: buffer.baseAddress!)
        let reducer = GradientBucketReducer(buffer: buffer, bucketBytes: 12, communicator: comm)
        #expect(reducer.buckets == [7..<10, 4..<7, 1..<4, 0..<1])

        try reducer.ready(from: 8)  // 7..<10 is not entirely final yet
        #expect(comm.started.isEmpty)
        try reducer.ready(from: 7)
        #expect(comm.started == [7..<10])
        try reducer.ready(from: 2)
        #expect(comm.started == [7..<10, 4..<7])
        #expect(comm.waited.isEmpty)
        try reducer.finish()
        #expect(comm.started == [7..<10, 4..<7, 1..<4, 0..<1])
        #expect(comm.waited == [0, 1, 2, 3], "every started bucket is waited for, in start order")

        // The next step starts again from the last bucket.
        try reducer.ready(from: 4)
        #expect(comm.started.suffix(2) == [7..<10, 4..<7])
        try reducer.finish()
        #expect(comm.started.count == 8)
        #expect(comm.waited == [0, 1, 2, 3, 4, 5, 6, 7])
    }

    @Test func pollStopsAtTheFirstUnfinishedBucket() throws {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 6)
        defer { buffer.deallocate() }
        let comm = RecordingCommunicator(base: buffer.baseAddress!)
        comm.pollsUntilDone = 2
        let reducer = GradientBucketReducer(buffer: buffer, bucketBytes: 8, communicator: comm)
        try reducer.ready(from: 0)  // starts 3 buckets and polls once: the first is not done yet
        #expect(comm.polled == [0])
        try reducer.poll()  // the first completes (second poll), the second is polled once
        #expect(comm.polled == [0, 0, 1])
        try reducer.finish()
        #expect(comm.waited == [0, 1, 2])
    }

    @Test func singleProcessReducerLeavesGradientsUnchanged() throws {
        var gradients = (0..<1000).map { Float($0) * 0.25 - 3 }
        let original = gradients
        try gradients.withUnsafeMutableBufferPointer { buffer in
            let reducer = GradientBucketReducer(buffer: buffer, bucketBytes: 400, communicator: SingleProcessCommunicator())
            try reducer.ready(from: 500)
            try reducer.poll()
            try reducer.finish()
        }
        #expect(gradients == original)
    }
}

/// Records which ranges are started, polled and waited; every reduction is the identity. A handle
/// completes after `pollsUntilDone` polls.
final class RecordingCommunicator: Communicator {
    var collectiveTimeout: Double = 600
    let rank = 0, size = 1
    let base: UnsafeMutablePointer<Float>
    var started: [Range<Int>] = []
    var polled: [Int] = []
    var waited: [Int] = []
    var pollsUntilDone = 1
    private var pollCounts: [Int: Int] = [:]

    init(base: UnsafeMutablePointer<Float>) { self.base = base }

    func startAllreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws -> ReductionHandle {
        let offset = x.baseAddress! - base
        started.append(offset..<offset + x.count)
        return ReductionHandle(id: started.count - 1)
    }
    func poll(_ h: ReductionHandle) throws -> Bool {
        polled.append(h.id)
        pollCounts[h.id, default: 0] += 1
        return pollCounts[h.id]! >= pollsUntilDone
    }
    func wait(_ h: ReductionHandle) throws { waited.append(h.id) }

    func allreduceSum(_ x: UnsafeMutableBufferPointer<Float>) throws {}
    func allreduceSum(_ x: UnsafeMutableBufferPointer<Double>) throws {}
    func allreduceMax(_ x: UnsafeMutableBufferPointer<Double>) throws {}
    func broadcast(_ bytes: inout [UInt8], root: Int) throws {}
    func barrier() throws {}
    func allAgree(_ ok: Bool) throws -> Bool { ok }
    func checkIdentical(_ value: String, what: String) throws {}
    func abort(_ message: String, code: Int32) -> Never { fatalError(message) }
}
