// What a task keeps in a checkpoint beside the parameters, the optimizer state and the progress:
// named arrays (a language model's carried hidden state of every global stream and its cursor, a
// vocabulary, class names, normalisation statistics). The checkpoint code writes and validates
// them without knowing what they mean; each task says which entries it writes (`TaskStateSchema`)
// and fills and reads them itself.
import UnrollData

/// A task's part of a checkpoint: arrays under slash-separated paths (`hidden/l0/h`, `vocab`).
public struct TaskState: Sendable, Equatable {
    /// The values of one entry.
    public enum Values: Sendable, Equatable {
        case floats([Float])
        case int64s([Int64])
        case strings([String])
    }

    /// One array and its row-major shape (`[count]` for strings).
    public struct Entry: Sendable, Equatable {
        public var path: String
        public var shape: [Int]
        public var values: Values

        public init(path: String, shape: [Int], values: Values) {
            self.path = path
            self.shape = shape
            self.values = values
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry] = []) { self.entries = entries }

    public mutating func append(_ path: String, floats: [Float], shape: [Int]) {
        entries.append(Entry(path: path, shape: shape, values: .floats(floats)))
    }

    public mutating func append(_ path: String, int64s: [Int64]) {
        entries.append(Entry(path: path, shape: [int64s.count], values: .int64s(int64s)))
    }

    public mutating func append(_ path: String, strings: [String]) {
        entries.append(Entry(path: path, shape: [strings.count], values: .strings(strings)))
    }

    public func floats(_ path: String) -> [Float]? {
        guard case .floats(let v)? = entries.first(where: { $0.path == path })?.values else { return nil }
        return v
    }

    public func int64s(_ path: String) -> [Int64]? {
        guard case .int64s(let v)? = entries.first(where: { $0.path == path })?.values else { return nil }
        return v
    }

    public func strings(_ path: String) -> [String]? {
        guard case .strings(let v)? = entries.first(where: { $0.path == path })?.values else { return nil }
        return v
    }

    /// Bytes the entries take on disk (about; for the message when the disk is full).
    var approximateBytes: Int {
        entries.reduce(0) { sum, entry in
            switch entry.values {
            case .floats(let v): sum + 4 * v.count
            case .int64s(let v): sum + 8 * v.count
            case .strings(let v): sum + v.reduce(0) { $0 + $1.utf8.count + 16 }
            }
        }
    }
}

extension TaskState {
    /// Throws unless the saved string list `name` (a vocabulary, class names; empty if absent)
    /// equals `ours` entry for entry; the message starts with `label` and names the first entry
    /// that differs.
    func requireSameStrings(_ name: String, as ours: [String], label: String, data: String) throws {
        let theirs = strings(name) ?? []
        guard ours != theirs else { return }
        let i = zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ours.count, theirs.count)
        let a = i < ours.count ? quoted(ours[i]) : "nothing", b = i < theirs.count ? quoted(theirs[i]) : "nothing"
        throw TrainingError.checkpoint("\(label): /\(name) entry \(i): expected \(a) as in the dataset \(data), found \(b)")
    }
}

/// The entries a task's checkpoint part must hold, so that `Checkpoint.load` can read and check
/// them before any task exists.
public struct TaskStateSchema: Sendable {
    public enum Kind: Sendable { case floats, int64s, strings }

    public struct Field: Sendable {
        public var path: String
        public var kind: Kind
        /// The expected shape; nil where only the task can tell (checked by `check`).
        public var shape: [Int]?
    }

    public var fields: [Field] = []
    /// Checks the values read against each other and the configuration; returns the first
    /// problem as "field: expected …, found …", or nil.
    public var check: @Sendable (_ state: TaskState, _ progress: TrainingProgress) -> String? = { _, _ in nil }

    public init() {}

    public mutating func add(_ path: String, _ kind: Kind, shape: [Int]? = nil) {
        fields.append(Field(path: path, kind: kind, shape: shape))
    }
}
