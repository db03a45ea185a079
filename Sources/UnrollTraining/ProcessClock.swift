// Process measurements the trainer and the benchmarks share: a monotonic clock for step timings
// and the peak resident set size.
#if canImport(Glibc)
import Glibc
#endif

/// Monotonic clock in seconds.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Peak resident set size of this process in MiB.
public func peakResidentMiB() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}
