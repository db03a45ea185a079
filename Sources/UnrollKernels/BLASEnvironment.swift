// Process set-up for OpenBLAS, which reads its settings once, when the library loads (before
// main runs): Debian's OpenBLAS 0.3.21 does not recognise Sapphire Rapids and falls back to its
// Haswell (AVX2) kernels; `OPENBLAS_CORETYPE=SkylakeX` selects the AVX-512 ones (1.4–1.8× on our
// GEMMs). So when the CPU has AVX-512 and the user chose nothing, the binary re-executes itself
// once with the variable set. The same pass pins one BLAS thread per process (one per MPI rank)
// unless the user asked for more.
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS settings that must be in the environment before the library loads.
public enum BLASEnvironment {
    /// Set in the re-executed process so it never loops.
    static let marker = "UNROLL_BLAS_ENV_SET"

    /// The instruction set the CPU offers to our own kernels: "avx512", "avx2" or "generic".
    public static var cpuISA: String { String(cString: uk_isa_name()) }

    /// Ensures `OPENBLAS_CORETYPE` (SkylakeX on AVX-512 CPUs, when unset) and `OPENBLAS_NUM_THREADS`
    /// (`blasThreads`, default 1, when unset) are in effect, re-executing the current binary with the
    /// same arguments if the loaded library could not have seen them. Returns normally when nothing
    /// needs to change or when re-execution is impossible (then the caller runs with what it has).
    public static func prepareProcess(blasThreads: Int = 1) {
        if getenv(marker) != nil { return }
        var changed = false
        if getenv("OPENBLAS_CORETYPE") == nil && cpuISA == "avx512" {
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
            changed = true
        }
        if getenv("OPENBLAS_NUM_THREADS") == nil && getenv("OMP_NUM_THREADS") == nil {
            setenv("OPENBLAS_NUM_THREADS", String(max(1, blasThreads)), 1)
            changed = true
        }
        guard changed else { return }
        setenv(marker, "1", 1)
        // Re-exec /proc/self/exe with the original argv; the pid stays, so mpirun keeps tracking it.
        let args = CommandLine.arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cArgs.append(nil)
        execv("/proc/self/exe", &cArgs)
        // execv only returns on failure: continue with the current settings.
        for p in cArgs { free(p) }
        BLAS.setThreads(max(1, blasThreads))
    }

    /// One line describing the BLAS in use, for start-up logs.
    public static var summary: String {
        let core = BLAS.coreName
        var line = "BLAS: OpenBLAS core \(core), \(BLAS.threads) thread(s), CPU ISA \(cpuISA)"
        if cpuISA == "avx512" && !core.lowercased().contains("skylakex") && !core.lowercased().contains("cooperlake")
            && !core.lowercased().contains("sapphire") {
            line += " (AVX-512 kernels not in use: set OPENBLAS_CORETYPE=SkylakeX)"
        }
        return line
    }
}
