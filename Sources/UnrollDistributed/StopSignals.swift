// SIGTERM/SIGINT for a long-running job: the first signal only raises a flag that the trainer
// checks between steps (finish the step, save, exit 0); a watchdog thread ends the process with a
// non-zero status if it is still running a grace period later (stuck in a collective or in I/O),
// or at once on a second signal. The handler and thread are C (MPIShim/ProcessGuards.c).
#if canImport(Glibc)
import Glibc
#endif
import MPIShim

/// SIGTERM/SIGINT handling shared by every rank of a job.
public enum StopSignals {
    /// Seconds a process may take to stop cleanly after the first signal (default of `install`).
    /// Matches Slurm's default KillWait between its SIGTERM and SIGKILL.
    public static let defaultGrace = 30.0

    /// Installs the handlers (sigaction with SA_RESTART, so interrupted I/O carries on) and starts the
    /// watchdog thread. After the first SIGTERM/SIGINT `count` becomes non-zero; if the process is
    /// still alive `grace` seconds later, or when a second signal arrives, it prints one line naming
    /// what it was waiting in and exits with status 128 + signal, without running atexit handlers.
    /// Calling it again only changes the grace.
    /// - Parameter grace: seconds, > 0.
    /// - Throws: `DistributedError.unavailable` if the thread or the handlers cannot be set up.
    public static func install(grace: Double = defaultGrace) throws {
        precondition(grace > 0 && grace.isFinite, "stop grace must be a positive number of seconds, got \(grace)")
        let names = ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        let rank = names.lazy.compactMap { name in getenv(name).map { String(cString: $0) } }.first
        let prefix = rank.map { "[rank \($0)] " } ?? ""
        let rc = unroll_install_stop_signals(grace, prefix)
        if rc != 0 {
            throw DistributedError.unavailable("cannot install SIGTERM/SIGINT handling: \(String(cString: strerror(rc)))")
        }
    }

    /// Number of SIGTERM/SIGINT received since `install` (0 = no stop requested).
    public static var count: Int { Int(unroll_stop_signal_count()) }
}
