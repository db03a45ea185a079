// The machine's physical memory, for refusing inputs whose processing would need more than it has
// (one line naming the need and the machine's size) before anything is allocated.
#if canImport(Glibc)
import Glibc
#endif

public enum SystemMemory {
    /// Physical memory of this machine in bytes.
    public static var physicalBytes: Double {
        Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Gigabytes with one decimal ("80.0 GB"), or words for a non-finite amount.
    public static func gigabytes(_ bytes: Double) -> String {
        bytes.isFinite ? String(format: "%.1f GB", bytes / 1e9) : "more than any machine has"
    }

    /// True when `bytes` fit in nine tenths of `machine` (a tenth left for everything else).
    public static func fits(_ bytes: Double, machine: Double = physicalBytes) -> Bool {
        bytes <= 0.9 * machine
    }

    /// "needs 80.0 GB, this machine has 24.0 GB", or nil when `bytes` fit (see `fits`).
    public static func shortfall(bytes: Double, machine: Double = physicalBytes) -> String? {
        fits(bytes, machine: machine) ? nil : "needs \(gigabytes(bytes)), this machine has \(gigabytes(machine))"
    }
}
