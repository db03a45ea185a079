// `unroll bench-allreduce`: times the gradient reduction alone over a sweep of message sizes —
// Unroll's ordered allreduce (the one the trainer's buckets use; for a power-of-two number of ranks
// both of its schedules, linear and logarithmic, call by call in turn) and a plain MPI_Allreduce of
// the same bytes — one JSON line per size (rank 0). launch/emulated-nodes runs it across two network
// namespaces; launch/scaling-model fits its α–β model to the output.
import ArgumentParser
import Foundation
import UnrollDistributed
import UnrollTraining

struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-allreduce",
        abstract: "Time Unroll's ordered allreduce (both schedules where both apply) and MPI_Allreduce of float buffers over a sweep of sizes (run under mpirun). Prints one JSON object per size (rank 0).",
        discussion: examples("mpirun -np 2 unroll bench-allreduce",
                             "mpirun -np 2 unroll bench-allreduce --sizes 4096,1048576 --seconds 0.5"))

    @Option(help: "Comma-separated message sizes in bytes (each rounded down to whole floats, at least one).")
    var sizes: String = "4096,16384,65536,262144,1048576,4194304,16777216,67108864"
    @Option(help: "Seconds of timed calls per size and kind (at least 5 calls).")
    var seconds: Double = 1
    @Option(help: "At most this many timed calls per size and kind.")
    var maxRepeats: Int = 200

    func parsedSizes() throws -> [Int] {
        let parts = sizes.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 4 }) else {
            throw ValidationError("--sizes: expected comma-separated byte counts ≥ 4, got '\(sizes)'")
        }
        return values.map { $0! }
    }

    func validate() throws {
        _ = try parsedSizes()
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be > 0, got \(seconds)") }
        guard maxRepeats >= 5 else { throw ValidationError("--max-repeats must be ≥ 5, got \(maxRepeats)") }
    }

    func run() throws {
        let comm = try makeCommunicator()
        let sizes = try parsedSizes()
        let mpi = comm as? MPICommunicator
        // The communicator's own schedule first; the linear one beside it where both apply.
        var schedules = [mpi?.reductionSchedule ?? .linear]
        if schedules[0] == .logarithmic { schedules.append(.linear) }
        try runReportingErrors(communicator: comm) {
            for bytes in sizes {
                let count = bytes / 4
                var buffer = [Float](repeating: 1, count: count)
                // One untimed call, then as many as fit in `seconds` by the slowest rank's pace.
                var probe = [try timeOrdered(&buffer, comm)]
                try probe.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
                let repeats = max(5, min(maxRepeats, Int(seconds / max(probe[0], 1e-6))))
                // Each schedule's calls alternate with the other's, first one then the other first
                // (ABBA), so that drift on a busy host and the order of the pair affect both alike.
                var times = Array(repeating: [Double](), count: schedules.count)
                for i in 0..<repeats {
                    let order = i % 2 == 0 ? Array(schedules.indices) : schedules.indices.reversed()
                    for k in order {
                        let schedule = schedules[k]
                        mpi?.reductionSchedule = schedule
                        times[k].append(try timeOrdered(&buffer, comm))
                    }
                }
                mpi?.reductionSchedule = schedules[0]
                // The slowest rank's time per call is the collective's time.
                for k in times.indices {
                    try times[k].withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
                    times[k].sort()
                }
                var raw: Double?
                if let mpi {
                    raw = try mpi.rawAllreduceSeconds(count: count, repeats: repeats)
                }
                if comm.rank == 0 {
                    var line: [String: Any] = ["bytes": count * 4, "ranks": comm.size, "repeats": repeats]
                    // "ordered…" is the default schedule (the trainer's), then each schedule by name.
                    for (k, schedule) in schedules.enumerated() {
                        let prefixes = (k == 0 ? ["ordered"] : []) + (schedules.count > 1 ? [Self.key(schedule)] : [])
                        for prefix in prefixes {
                            line[prefix + "Ms"] = times[k][times[k].count / 2] * 1000
                            line[prefix + "MinMs"] = times[k][0] * 1000
                            line[prefix + "P90Ms"] = times[k][min(times[k].count - 1, times[k].count * 9 / 10)] * 1000
                        }
                    }
                    line["schedule"] = schedules[0].rawValue
                    if let raw { line["rawMs"] = raw * 1000 }
                    let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                    fflush(nil)
                }
            }
        }
    }

    /// JSON key prefix of a schedule's times: "linear", "logp".
    private static func key(_ schedule: ReductionSchedule) -> String {
        schedule == .linear ? "linear" : "logp"
    }

    /// One ordered allreduce after a barrier: seconds on this rank.
    private func timeOrdered(_ buffer: inout [Float], _ comm: any Communicator) throws -> Double {
        try comm.barrier()
        let t0 = monotonicSeconds()
        try buffer.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
        return monotonicSeconds() - t0
    }
}
