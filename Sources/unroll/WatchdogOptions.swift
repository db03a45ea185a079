// `--collective-timeout`, shared by the commands that run collectives (train, eval): how long a
// rank waits in a collective that makes no progress before the job is ended with a message
// naming the ranks it waits for.
import ArgumentParser
import UnrollDistributed

struct WatchdogOptions: ParsableArguments {
    @Option(help: "Seconds a collective may make no progress before every waiting rank prints whom it waits for and the job ends with a non-zero status.")
    var collectiveTimeout: Double = 600

    func validate() throws {
        try Self.requirePositive(collectiveTimeout, "--collective-timeout")
    }

    /// Sets the timeout on `communicator`; call it right after `makeCommunicator()`.
    func apply(to communicator: any Communicator) {
        communicator.collectiveTimeout = collectiveTimeout
    }

    /// Throws a one-line `ValidationError` unless `seconds` is a finite number > 0.
    static func requirePositive(_ seconds: Double, _ option: String) throws {
        guard seconds > 0, seconds.isFinite else {
            throw ValidationError("\(option) must be a number of seconds > 0, got \(seconds)")
        }
    }
}
