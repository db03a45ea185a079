// The checkpoint directory of a run and who owns it.
// Files: `step-NNNNNNNN.h5` checkpoints, `latest.h5` and `best.h5` links, `unroll.lock` (the
// owner), `*.tmp.<pid>` temporaries of writers in progress, and `*.h5.damaged` / `*.h5.abandoned`
// checkpoints set aside (never deleted) at resume. One run owns a directory at a time: rank 0
// holds an exclusive `flock` on `unroll.lock` for the life of the process, so the lock of a run
// that died (however it died) is free again and is taken over with a notice; the file's text names
// the owner (host, pid, run id) for the message a second run gets. Every checkpoint carries its
// run's id, so a directory that mixes runs is recognised and refused.
import Foundation
import UnrollData
import UnrollDistributed

/// Checkpoint files of a run directory: `step-NNNNNNNN.h5`, with `latest.h5` and `best.h5` links.
public enum CheckpointDirectory {
    public static func fileName(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".h5"
    }

    /// Checkpoints in `dir` by ascending step.
    public static func list(_ dir: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".h5"), let step = Int(name.dropFirst(5).dropLast(3)) else { return nil }
            return (step, (dir as NSString).appendingPathComponent(name))
        }.sorted { $0.0 < $1.0 }
    }

    /// The newest checkpoint file in `dir` (not verified), or nil.
    public static func latest(_ dir: String) -> String? { list(dir).last?.path }

    /// Points `link` (in `dir`) at `target` atomically (symlink to a temp name, then rename).
    static func setLink(_ link: String, to target: String, in dir: String) throws {
        let path = (dir as NSString).appendingPathComponent(link)
        let tmp = path + ".tmp.\(getpid())"
        unlink(tmp)
        guard symlink((target as NSString).lastPathComponent, tmp) == 0, rename(tmp, path) == 0 else {
            throw TrainingError.checkpoint("\(path): cannot update link: \(String(cString: strerror(errno)))")
        }
    }

    /// The file name `link` in `dir` points at, or nil.
    static func linkTarget(_ link: String, in dir: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: (dir as NSString).appendingPathComponent(link))
    }

    /// Deletes all but the newest `keep` checkpoints, never the one `best.h5` points at and never
    /// `protected` (the newest checkpoint known to be good: the one just written).
    static func prune(_ dir: String, keep: Int, protected: String? = nil) {
        let best = linkTarget("best.h5", in: dir)
        let kept = Set([best, protected.map { ($0 as NSString).lastPathComponent }].compactMap { $0 })
        for entry in list(dir).dropLast(keep) where !kept.contains((entry.path as NSString).lastPathComponent) {
            unlink(entry.path)
        }
    }

    /// Removes the temporary files (`NAME.tmp.<pid>`) that writers left behind when they died.
    /// Only safe while holding the directory's lock: then no other writer can be at work there.
    /// - Returns: the names removed.
    static func removeStaleTemporaries(_ dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var removed: [String] = []
        for name in names.sorted() {
            guard let range = name.range(of: ".tmp.", options: .backwards),
                  !name[range.upperBound...].isEmpty, name[range.upperBound...].allSatisfy(\.isNumber) else { continue }
            if unlink((dir as NSString).appendingPathComponent(name)) == 0 { removed.append(name) }
        }
        return removed
    }

    /// Renames `path` to `path.SUFFIX` (out of the listing, kept for inspection), or to
    /// `path.SUFFIX.N` if that exists. Returns the new name.
    static func setAside(_ path: String, suffix: String) throws -> String {
        var target = path + "." + suffix, n = 1
        while FileManager.default.fileExists(atPath: target) {
            target = path + "." + suffix + ".\(n)"
            n += 1
        }
        guard rename(path, target) == 0 else {
            throw TrainingError.checkpoint("\(path): cannot rename to \(target): \(String(cString: strerror(errno)))")
        }
        return target
    }
}

/// Who holds a run directory (the text of `unroll.lock`).
public struct DirectoryOwner: Codable, Equatable, Sendable {
    public var host: String
    public var pid: Int32
    public var runId: String
    public var since: String

    public var summary: String { "run \(runId) (host \(host), pid \(pid), since \(since))" }
}

/// Exclusive ownership of a checkpoint directory, held by rank 0 for the life of the process.
public final class RunDirectoryLock {
    public static let fileName = "unroll.lock"
    public let directory: String
    /// The owner whose lock was taken over because its process was gone, if any.
    public let previousOwner: DirectoryOwner?
    private var fd: Int32

    /// Takes the lock of `directory` (created if missing) for run `runId`.
    /// - Throws: `TrainingError.checkpoint` naming the live owner's host and pid if another
    ///   process holds it, or the path and errno if the lock file cannot be used.
    public init(directory: String, runId: String) throws {
        self.directory = directory
        if let failure = Self.createDirectories(directory) {
            // Foundation's createDirectory would report an NSCocoaErrorDomain dump here; this says
            // which path was in the way and why, in one line.
            let place = failure.path == directory
                ? (failure.reason.hasPrefix("not a directory") ? "" : "cannot create the directory: ")
                : "cannot create the directory: \(failure.path): "
            throw TrainingError.checkpoint("--checkpoint-dir \(directory): \(place)\(failure.reason)")
        }
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        // O_CLOEXEC: a child forked later (MPI's orted) must not inherit the descriptor, and
        // with it the lock, outliving this run.
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError.checkpoint("\(path): cannot open the lock file: \(String(cString: strerror(errno)))") }
        let existing = Self.readOwner(fd)
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                let who = existing.map { "\($0.summary)" } ?? "another process"
                throw TrainingError.checkpoint("--checkpoint-dir \(directory): in use by \(who); "
                                               + "stop that run or choose another directory")
            }
            throw TrainingError.checkpoint("\(path): cannot lock: \(String(cString: strerror(code)))")
        }
        previousOwner = existing
        let owner = DirectoryOwner(host: Self.hostName(), pid: getpid(), runId: runId, since: Checkpoint.utcTimestamp())
        do {
            try write(owner)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { release() }

    /// `mkdir -p path` with POSIX calls. Returns nil when `path` is (now) a directory, else the
    /// path that could not be made a directory and why: "not a directory (a regular file is
    /// there)" when something else already has the name, or the `strerror` text of `mkdir`.
    /// The directory above `path` ("a/b/" → "a", "/a" → "/"), or nil for a bare name or the root.
    /// (Foundation's `deletingLastPathComponent` traps on some one-character names on Linux.)
    static func parentDirectory(_ path: String) -> String? {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return nil }
        if slash == p.startIndex { return p.count > 1 ? "/" : nil }
        var parent = p[..<slash]
        while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }

    static func createDirectories(_ path: String) -> (path: String, reason: String)? {
        var info = stat()
        if stat(path, &info) == 0 {
            return (info.st_mode & S_IFMT) == S_IFDIR ? nil : (path, "not a directory (\(kindOf(info.st_mode)) is there)")
        }
        if let parent = parentDirectory(path), let failure = createDirectories(parent) { return failure }
        guard mkdir(path, 0o777) != 0 else { return nil }
        let code = errno
        if code == EEXIST {
            // Made by someone else meanwhile (fine if a directory), or a dangling symbolic link.
            if stat(path, &info) == 0 {
                return (info.st_mode & S_IFMT) == S_IFDIR ? nil : (path, "not a directory (\(kindOf(info.st_mode)) is there)")
            }
            return (path, "not a directory (a dangling symbolic link is there)")
        }
        return (path, String(cString: strerror(code)))
    }

    /// "a regular file", "a FIFO", ... for a `stat` mode.
    static func kindOf(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "something that is not a directory"
        }
    }

    /// Marks the directory free (empties the lock file) and drops the lock. Idempotent.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)
        fd = -1
    }

    /// Records `runId` as the owner (after a resume adopts the checkpoint's run id).
    public func update(runId: String) throws {
        try write(DirectoryOwner(host: Self.hostName(), pid: getpid(), runId: runId, since: Checkpoint.utcTimestamp()))
    }

    private func write(_ owner: DirectoryOwner) throws {
        let text = Array((String(decoding: (try? JSONEncoder().encode(owner)) ?? Data(), as: UTF8.self) + "\n").utf8)
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        let ok = ftruncate(fd, 0) == 0 && text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } == text.count
        guard ok else { throw TrainingError.checkpoint("\(path): cannot write the lock file: \(String(cString: strerror(errno)))") }
    }

    private static func readOwner(_ fd: Int32) -> DirectoryOwner? {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return try? JSONDecoder().decode(DirectoryOwner.self, from: Data(bytes[0..<n]))
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "?" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A fresh run id: UTC time and 32 random bits, e.g. `20261130T031500Z-3f9a2c1d`.
public func makeRunId() -> String {
    let stamp = Checkpoint.utcTimestamp().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
    return stamp + "-" + String(format: "%08x", UInt32.random(in: 0...UInt32.max))
}

/// A checkpoint directory owned by this run (rank 0 holds the lock; other ranks hold nothing).
/// Every method is collective: rank 0 looks at the files and every rank gets its verdict, so all
/// ranks succeed or throw the same message together.
public final class RunDirectory {
    public let path: String
    let communicator: any Communicator
    let log: LogSink
    /// Rank 0's lock.
    public private(set) var lock: RunDirectoryLock?

    /// Takes the directory for a run: rank 0 locks it (refusing a live owner, taking over a dead
    /// one with a notice) and removes temporary files of dead writers. Collective.
    public init(path: String, runId: String, communicator: any Communicator, log: @escaping LogSink) throws {
        self.path = path
        self.communicator = communicator
        self.log = log
        let isRoot = communicator.rank == 0
        var taken: RunDirectoryLock?
        try rootDecides(communicator) {
            let lock = try RunDirectoryLock(directory: path, runId: runId)
            taken = lock
            if let old = lock.previousOwner {
                log("--checkpoint-dir \(path): taking over the lock of \(old.summary), whose process is gone")
            }
            for name in CheckpointDirectory.removeStaleTemporaries(path) {
                log("--checkpoint-dir \(path): removed \(name), left by a writer that died")
            }
            return true
        }
        lock = isRoot ? taken : nil
    }

    /// Run ids of the checkpoints in the directory, with their steps (files that cannot be read
    /// are left out; files written before run ids existed count as run "").
    public static func runsOfCheckpoints(_ dir: String) -> [String: [Int]] {
        var runs: [String: [Int]] = [:]
        for entry in CheckpointDirectory.list(dir) {
            let id: String?
            do { id = try Checkpoint.runId(entry.path) } catch { continue }
            runs[id ?? "", default: []].append(entry.step)
        }
        return runs
    }

    /// One-line description of the runs in a directory, e.g. `run A (steps 10–40), run B (step 5)`.
    static func describe(_ runs: [String: [Int]]) -> String {
        runs.sorted { $0.key < $1.key }.map { id, steps in
            let name = id.isEmpty ? "a run without id" : "run \(id)"
            let s = steps.sorted()
            return s.count == 1 ? "\(name) (step \(s[0]))" : "\(name) (steps \(s.first!)–\(s.last!))"
        }.joined(separator: ", ")
    }

    /// For a new run: the directory must hold no checkpoints (they belong to another run).
    public func requireNoCheckpoints() throws {
        try rootDecides(communicator) {
            let runs = Self.runsOfCheckpoints(path)
            if !runs.isEmpty || !CheckpointDirectory.list(path).isEmpty {
                let what = runs.isEmpty ? "checkpoint files" : Self.describe(runs)
                throw TrainingError.checkpoint("--checkpoint-dir \(path): already holds checkpoints of \(what); "
                                               + "continue that run with --resume latest, or choose another directory")
            }
            return true
        }
    }

    /// The checkpoint to resume from: `spec` is "latest" (the newest checkpoint of the directory
    /// that passes complete verification; damaged newer ones are set aside as `*.damaged` with a
    /// line naming each and why) or a file. Refuses a directory whose checkpoints belong to several
    /// runs. Points `latest.h5` at the chosen file. Collective.
    /// Selecting the checkpoint already selected returns it without reading it again.
    /// - Returns: the verified checkpoint's path (the same on every rank).
    public func selectResume(_ spec: String, verify: @escaping (String) throws -> Void) throws -> String {
        if let selected, spec == selected { return selected }
        let chosen = try choose(spec, verify: verify)
        selected = chosen
        return chosen
    }

    /// The checkpoint `selectResume` returned last (every rank holds it).
    public private(set) var selected: String?

    private func choose(_ spec: String, verify: @escaping (String) throws -> Void) throws -> String {
        try rootDecides(communicator) { [path, log] in
            let chosen: String
            if spec == "latest" {
                var found: String?
                for entry in CheckpointDirectory.list(path).reversed() {
                    do {
                        try verify(entry.path)
                        found = entry.path
                        break
                    } catch {
                        let aside = try CheckpointDirectory.setAside(entry.path, suffix: "damaged")
                        var why = "\(error)"
                        if why.hasPrefix(entry.path + ": ") { why.removeFirst(entry.path.count + 2) }
                        log("--resume latest: skipping \(entry.path): \(why); renamed to \((aside as NSString).lastPathComponent)")
                    }
                }
                guard let found else {
                    throw TrainingError.checkpoint("--resume latest: no usable checkpoint in \(path)")
                }
                chosen = found
            } else {
                try verify(spec)
                chosen = spec
            }
            let runs = Self.runsOfCheckpoints(path)
            let ids = Set(runs.keys.filter { !$0.isEmpty })
            if ids.count > 1 {
                throw TrainingError.checkpoint("--resume: \(path) holds checkpoints of several runs: \(Self.describe(runs)); "
                                               + "move the other runs' files away or resume into another --checkpoint-dir")
            }
            let chosenId = (try Checkpoint.runId(chosen)) ?? ""
            if let other = ids.first, !chosenId.isEmpty, other != chosenId {
                throw TrainingError.checkpoint("--resume \(chosen): --checkpoint-dir \(path) holds checkpoints of another run: "
                                               + "\(Self.describe(runs)); resume into another --checkpoint-dir")
            }
            // Checkpoints newer than the one resumed from (resuming an earlier file on purpose)
            // belong to a future this run abandons: set them aside so they are neither pruned
            // into nor mistaken for the newest.
            if let chosenStep = CheckpointDirectory.list(path).first(where: { samePath($0.path, chosen) })?.step {
                for entry in CheckpointDirectory.list(path) where entry.step > chosenStep {
                    let aside = try CheckpointDirectory.setAside(entry.path, suffix: "abandoned")
                    log("--resume: \(entry.path) is newer than the checkpoint resumed from; renamed to "
                        + "\((aside as NSString).lastPathComponent)")
                }
                try CheckpointDirectory.setLink("latest.h5", to: chosen, in: path)
            }
            return chosen
        }
    }

    /// Records the run id after a resume adopted the checkpoint's (rank 0).
    public func adopt(runId: String) throws {
        try lock?.update(runId: runId)
    }
}

/// True if both paths name the same file.
func samePath(_ a: String, _ b: String) -> Bool {
    var sa = stat(), sb = stat()
    guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return a == b }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
}

/// Runs `body` on rank 0 only and gives every rank its outcome: the value (JSON-encoded and
/// broadcast) or the error, thrown on every rank together as an `AgreedError` carrying rank 0's
/// message (so only rank 0 prints it and the job ends without MPI_Abort). Collective.
@discardableResult
public func rootDecides<T: Codable>(_ communicator: any Communicator, _ body: () throws -> T) throws -> T {
    var outcome: Result<T, any Error> = .failure(TrainingError.config("not decided"))
    var bytes: [UInt8] = []
    if communicator.rank == 0 {
        do {
            let value = try body()
            outcome = .success(value)
            bytes = [1] + Array(try JSONEncoder().encode([value]))
        } catch {
            outcome = .failure(error)
            bytes = [0] + Array("\(error)".utf8)
        }
    }
    try communicator.broadcast(&bytes, root: 0)
    if communicator.rank == 0 {
        do { return try outcome.get() } catch { throw AgreedError(error) }
    }
    guard let first = bytes.first else { throw TrainingError.config("rank 0 sent no decision") }
    let payload = Data(bytes.dropFirst())
    if first == 1 {
        guard let value = try JSONDecoder().decode([T].self, from: payload).first else {
            throw TrainingError.config("rank 0 sent an empty decision")
        }
        return value
    }
    throw AgreedError(TrainingError.checkpoint(String(decoding: payload, as: UTF8.self)))
}
