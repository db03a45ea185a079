// `--log-level`, shared by the commands that run the library at length (train, eval, prepare):
// installs the swift-log handler that writes the library's messages to standard error.
import ArgumentParser
import Logging
import UnrollTraining

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Least severe library message written to standard error: trace, debug, info, notice, warning, error or critical. Progress lines are not messages.")
    var logLevel: Logger.Level = .info

    /// Installs the handler; call it once the rank is known.
    func install(rank: Int = 0, worldSize: Int = 1) {
        UnrollLog.bootstrap(level: logLevel, rank: rank, worldSize: worldSize)
    }
}
