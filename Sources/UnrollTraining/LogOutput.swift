// Leveled messages of the library (notices, checkpoints written, resumes, run-directory repairs)
// go through swift-log loggers labelled `unroll.*`; the CLI installs `UnrollLogHandler` once
// with the level of `--log-level`. The rank-0 progress and `valid |` lines are not log messages:
// they stay on standard output through `LogSink`, byte for byte as before.
import Foundation
import Logging

/// Writes each message as one line: `[rank R] ` on ranks other than 0 of a multi-rank job,
/// `warning: `/`error: `/`debug: ` before messages of those levels, nothing before info and notice.
public struct UnrollLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let rankPrefix: String
    private let write: @Sendable (String) -> Void

    /// - Parameters:
    ///   - level: the least severe level written.
    ///   - rank, worldSize: where the process runs (a prefix names the rank when `worldSize > 1`).
    ///   - write: receives each line with its newline (default: standard error).
    public init(level: Logger.Level, rank: Int = 0, worldSize: Int = 1,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        logLevel = level
        rankPrefix = worldSize > 1 && rank != 0 ? "[rank \(rank)] " : ""
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The line for `message` at `level`, without the newline.
    public func format(level: Logger.Level, message: Logger.Message) -> String {
        let tag: String
        switch level {
        case .trace, .debug: tag = "debug: "
        case .info, .notice: tag = ""
        case .warning: tag = "warning: "
        case .error, .critical: tag = "error: "
        }
        return rankPrefix + tag + message.description
    }

    public func log(event: LogEvent) {
        // Levels are filtered by Logger before this is called.
        fflush(nil)  // keep the order of progress lines (stdout) and messages in a shared log
        write(format(level: event.level, message: event.message) + "\n")
    }
}

/// The library's loggers.
public enum UnrollLog {
    /// Training runs: checkpoints, resumes, notices.
    public static var training: Logger { Logger(label: "unroll.training") }

    /// Installs `UnrollLogHandler` for every logger of the process (once; later calls do nothing).
    public static func bootstrap(level: Logger.Level, rank: Int, worldSize: Int) {
        bootstrapOnce.withLock { done in
            guard !done else { return }
            done = true
            LoggingSystem.bootstrap { _ in UnrollLogHandler(level: level, rank: rank, worldSize: worldSize) }
        }
    }

    private static let bootstrapOnce = NSLockedBool()
}

/// A Bool behind a lock (Foundation's `NSLock`), for the one-time bootstrap.
final class NSLockedBool: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func withLock(_ body: (inout Bool) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        body(&value)
    }
}
