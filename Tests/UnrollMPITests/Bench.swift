// `unroll-mpi-tests --bench`: times the blocking float allreduce and the bucketed reducer on a few
// gradient sizes (best of many runs, rank 0 prints). A measurement aid, not a test.
#if canImport(Glibc)
import Glibc
#endif
import UnrollDistributed

func runBenchmark(_ comm: MPICommunicator) throws {
    for megabytes in [1.0, 4.9, 16.0] {
        let count = Int(megabytes * 1_048_576 / 4)
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1)
        let reducer = GradientBucketReducer(buffer: buffer, bucketBytes: 1 << 20, communicator: comm)
        let repeats = 30
        var blocking = Double.infinity, bucketed = Double.infinity
        for _ in 0..<repeats {
            try comm.barrier()
            var t = now()
            try comm.allreduceSum(buffer)
            blocking = min(blocking, now() - t)
            try comm.barrier()
            t = now()
            try reducer.finish()
            bucketed = min(bucketed, now() - t)
        }
        if comm.rank == 0 {
            let line = "\(megabytes) MB, \(comm.size) ranks: blocking \(micro(blocking)) µs, "
                + "bucketed (1 MB buckets, \(reducer.buckets.count)) \(micro(bucketed)) µs"
            writeLine(line)
        }
    }
}

private func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

private func micro(_ seconds: Double) -> Int { Int((seconds * 1e6).rounded()) }
