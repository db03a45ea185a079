// AtomicFile: write a file so that its final name only ever shows complete content.
// The content goes to `NAME.tmp.<pid>` in the same directory; that file is closed by the writer,
// fsynced, renamed over NAME, and the directory is fsynced so the rename survives a crash. On any
// error before the rename the temporary file is removed and the error rethrown; an existing NAME is
// left untouched. When the storage runs out (no space, quota, file-size limit) the error becomes
// one `DataError.storageExhausted` saying how much was written of how much. A failure hook lets
// tests simulate errors (e.g. a full disk) at each stage.
import Foundation

/// Crash-safe "write to temp, fsync, rename" for whole files.
public enum AtomicFile {
    /// Points at which the failure hook is called.
    public enum Stage: Sendable, Equatable {
        /// The writer returned; the temporary file holds the full content but is not yet synced.
        case contentWritten
        /// The temporary file is synced to disk; the rename comes next.
        case synced
    }

    /// Called at each `Stage`; throwing there behaves exactly like an I/O error at that point.
    /// Tests use it to simulate a full disk. `nil` in production.
    public typealias FailureHook = @Sendable (Stage) throws -> Void

    /// Temporary path used for `path` by this process.
    public static func temporaryPath(for path: String) -> String {
        "\(path).tmp.\(getpid())"
    }

    /// Writes the file at `path` atomically. `body` receives the temporary path, must create and
    /// fully write the file there, and must close it (release every handle) before returning.
    /// - Parameter expectedBytes: about how large the file will be; only for the message when the
    ///   storage runs out.
    /// - Throws: `DataError.storageExhausted` (for `path`) when a write, flush or fsync failed for
    ///   lack of space, quota or the file-size limit; otherwise `DataError.io` naming the path and
    ///   operation that failed, or whatever `body` or `failureHook` throw. After a throw, neither
    ///   the temporary file nor a new `path` exists.
    @discardableResult
    public static func write<R>(to path: String, expectedBytes: Int? = nil, failureHook: FailureHook? = nil,
                                _ body: (_ temporaryPath: String) throws -> R) throws -> R {
        let tmp = temporaryPath(for: path)
        let directory = (path as NSString).deletingLastPathComponent
        // Creating the temporary file ourselves gives a clear errno message (missing directory,
        // permission, a regular file used as a directory) instead of an HDF5 error stack.
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            let code = errno
            if code == EEXIST {
                throw DataError.io(path: tmp, operation: "create temporary file",
                                   reason: "it already exists (another writer in this process, or left over from a crashed run: remove it)")
            }
            throw DataError.posix(tmp, "create temporary file", errno: code)
        }
        close(fd)
        do {
            let result = try body(tmp)
            try failureHook?(.contentWritten)
            try syncFile(tmp)
            try failureHook?(.synced)
            if rename(tmp, path) != 0 {
                throw DataError.posix(path, "rename \(tmp) to it")
            }
            // The content is complete under its final name from here on; only durability of the
            // rename itself can still fail.
            try syncDirectory(directory.isEmpty ? "." : directory)
            return result
        } catch {
            // How far the writing got, before the partial file goes.
            var info = stat()
            let written = stat(tmp, &info) == 0 ? Int(info.st_size) : 0
            unlink(tmp)
            if let data = error as? DataError, let reason = data.storageExhaustionReason {
                throw DataError.storageExhausted(path: path, reason: reason, written: written, expected: expectedBytes)
            }
            throw error
        }
    }

    private static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError.posix(path, "open for fsync") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw DataError.posix(path, "fsync") }
    }

    private static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError.posix(path, "open directory for fsync") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw DataError.posix(path, "fsync directory") }
    }
}
