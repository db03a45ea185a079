// Checkpoint format v2 (`unroll.checkpoint`; v1 files are still read): one HDF5 file holding everything needed to continue
// a run exactly — parameters under PyTorch state-dict names, optimizer moments, the run's
// progress and schedule state, the carried state of every GLOBAL stream (so a run can resume on a
// different number of ranks), the vocabulary, and the full configuration as JSON. Written by rank
// 0 through AtomicFile (temp name, fsync, rename, fsync dir): a crash leaves the previous
// checkpoint or the new one, never a broken one. Float datasets go straight from the flat buffers
// into checksummed chunks (`writeChecksummed`) while the kernel already writes earlier ones to
// disk, so a save costs about as much as writing and fsyncing the same bytes. Every group, dataset
// and attribute is documented in CheckpointFormat.md; `load` checks all of them
// and names the first that does not fit.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels

/// Names and version of the checkpoint format.
public enum CheckpointFormat {
    public static let name = "unroll.checkpoint"
    /// Version written: 2 = HDF5 1.10 format (checksummed metadata), strings off the global heap.
    public static let version = 2
    /// Versions read: 1 (variable-length strings, original HDF5 format) and 2.
    public static let readableVersions = 1...version
}

/// A checkpoint read into memory (parameters, optimizer, progress, global hidden state).
public struct CheckpointContent {
    public var config: TrainingConfig
    public var progress: TrainingProgress
    public var optimizerSteps: Int
    /// Parameter values by state-dict name (row-major).
    public var parameters: [String: [Float]]
    /// Optimizer slot → parameter name → values.
    public var optimizerSlots: [String: [String: [Float]]]
    /// The task's own part (carried state, vocabulary, classes, …; see `TaskState`).
    public var taskState: TaskState
    /// The vocabulary stored with the task's state (empty for tasks without one).
    public var vocabulary: [String] { taskState.strings("vocab") ?? [] }
    public var worldSize: Int
    public var dataFile: String
    public var dataSHA256: String
    /// The id of the run that wrote it (nil in files written before run ids existed).
    public var runId: String?
}

/// Everything one checkpoint holds, copied out of a trainer by `Checkpoint.snapshot` so that
/// `Checkpoint.write` can run while training goes on. On ranks other than 0 the parameter and
/// optimizer copies are empty (only rank 0 writes).
public struct CheckpointSnapshot: Sendable {
    public var config: TrainingConfig
    public var worldSize: Int
    public var dataSHA256: String
    public var runId: String?
    /// The `created` attribute (UTC, to the second).
    public var created: String
    public var layout: ParameterLayout
    public var optimizerStep: Int
    /// The flat parameter buffer, arena order.
    public var parameters: [Float]
    /// Optimizer slots by name (sorted), each laid out like `parameters`.
    public var slots: [(name: String, values: [Float])]
    public var progress: TrainingProgress
    public var taskState: TaskState
}

/// SHA-256 of a whole file, hex (swift-crypto; see `SHA256Hex`).
/// - Throws: `TrainingError.data` naming the file when it cannot be opened or read.
public func fileSHA256(_ path: String) throws -> String {
    do {
        return try SHA256Hex.file(path)
    } catch let error as DataError {
        throw TrainingError.data("\(error)")
    }
}

public enum Checkpoint {
    /// Writes the trainer's state to `path` (collective: every rank calls it; rank 0 writes), in
    /// the foreground: `snapshot`, then `write` on this thread. The global hidden state is
    /// gathered from all ranks first. On failure every rank throws. `TrainingRun` writes in the
    /// background instead (`CheckpointWriter`); the file's bytes are the same.
    public static func save(_ trainer: Trainer, to path: String, dataSHA256: String, runId: String? = nil,
                            failureHook: AtomicFile.FailureHook? = nil) throws {
        let comm = trainer.communicator
        let snapshot = try self.snapshot(trainer, dataSHA256: dataSHA256, runId: runId)
        var failure: (any Error)?
        if comm.rank == 0 {
            do { try write(snapshot, to: path, failureHook: failureHook) } catch { failure = error }
        }
        guard try comm.allAgree(failure == nil) else {
            // Every rank throws here together, so the job can end without MPI_Abort (AgreedError).
            throw AgreedError(failure ?? TrainingError.checkpoint("\(path): rank 0 failed to write the checkpoint"))
        }
    }

    /// Copies everything a checkpoint of `trainer` holds into memory (collective: the task's
    /// state is gathered from every rank). Only rank 0's copy of the parameters and optimizer
    /// slots is taken (other ranks get empty buffers: they write nothing). After it returns,
    /// training may change the trainer while `write` runs on another thread.
    /// - Parameters:
    ///   - staging: the buffers of an earlier snapshot whose write has finished (from
    ///     `CheckpointWriter.takeStaging`, so that nothing else references them), reused to avoid
    ///     allocating, faulting in and copying the parameter-sized buffers at every save.
    ///   - created: the `created` timestamp (seconds since 1970; now if nil).
    public static func snapshot(_ trainer: Trainer, dataSHA256: String, runId: String? = nil,
                                staging: consuming CheckpointSnapshot? = nil, created: time_t? = nil) throws -> CheckpointSnapshot {
        let comm = trainer.communicator, arena = trainer.task.arena
        let taskState = try trainer.task.checkpointState(progress: trainer.progress)
        // Taken apart (the snapshot consumed, then dropped) so that each array is uniquely
        // referenced: writing into it then reuses its storage instead of copying it first.
        var parameters = staging?.parameters ?? []
        var reused = staging?.slots ?? []
        staging = nil
        var slots: [(name: String, values: [Float])] = []
        if comm.rank == 0 {
            copy(UnsafePointer(arena.parameters.pointer), count: arena.count, into: &parameters)
            for (slot, buffer) in trainer.optimizer.slots.sorted(by: { $0.key < $1.key }) {
                var values: [Float] = []
                if let i = reused.firstIndex(where: { $0.name == slot }) { values = reused.remove(at: i).values }
                copy(UnsafePointer(buffer.pointer), count: arena.count, into: &values)
                slots.append((slot, values))
            }
        } else {
            parameters = []
        }
        return CheckpointSnapshot(config: trainer.config, worldSize: comm.size, dataSHA256: dataSHA256, runId: runId,
                                  created: utcTimestamp(created ?? time(nil)), layout: arena.layout,
                                  optimizerStep: trainer.optimizer.stepCount, parameters: parameters, slots: slots,
                                  progress: trainer.progress, taskState: taskState)
    }

    /// `values` = the `count` floats at `source`, reusing `values`' storage when it fits.
    private static func copy(_ source: UnsafePointer<Float>, count: Int, into values: inout [Float]) {
        if values.count != count { values = [Float](repeating: 0, count: count) }
        values.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: source, count: count) }
    }

    /// Writes `snapshot` (rank 0's) to `path` through AtomicFile: temporary file, fsync, rename,
    /// fsync of the directory. Safe on any thread, provided libhdf5 serialises calls
    /// (`HDF5Library.isThreadSafe`) or no other thread uses HDF5 meanwhile.
    /// - Throws: `TrainingError.checkpoint` with one line "checkpoint PATH: no space left …" when
    ///   storage runs out; the other errors of `AtomicFile.write` and the HDF5 layer otherwise.
    public static func write(_ snapshot: CheckpointSnapshot, to path: String,
                             failureHook: AtomicFile.FailureHook? = nil) throws {
        let s = snapshot, config = snapshot.config
        do {
            try AtomicFile.write(to: path, expectedBytes: expectedSize(s), failureHook: failureHook) { tmp in
                // Writeback starts every 4 MiB of parameters (see H5File.create), so the device
                // writes while the rest is produced and the final fsync finds little left.
                let file = try H5File.create(tmp, writebackBytes: 4 << 20)
                try file.setAttribute("format", string: CheckpointFormat.name)
                try file.setAttribute("version", Int64(CheckpointFormat.version))
                try file.setAttribute("unroll_version", string: UnrollVersion.string)
                try file.setAttribute("config", string: try jsonString(config))
                try file.setAttribute("world_size", Int64(s.worldSize))
                try file.setAttribute("created", string: s.created)
                try file.setAttribute("data_file", string: config.data)
                try file.setAttribute("data_sha256", string: s.dataSHA256)
                if let runId = s.runId { try file.setAttribute("run_id", string: runId) }
                let params = try file.createGroup("params")
                try s.parameters.withUnsafeBufferPointer { p in
                    for view in s.layout.views { try writeView(params, view, p.baseAddress! + view.offset) }
                }
                let opt = try file.createGroup("optimizer")
                try opt.setAttribute("kind", string: config.optimizer.kind.rawValue)
                try opt.setAttribute("step", Int64(s.optimizerStep))
                for (slot, values) in s.slots {
                    let g = try opt.createGroup(slot)
                    try values.withUnsafeBufferPointer { p in
                        for view in s.layout.views { try writeView(g, view, p.baseAddress! + view.offset) }
                    }
                }
                // The rest is small (progress, the task's state, HDF5 metadata).
                file.startWriteback()
                let st = try file.createGroup("state")
                let p = s.progress
                try st.setAttribute("step", Int64(p.step))
                try st.setAttribute("epoch", Int64(p.epoch))
                try st.setAttribute("best_valid_loss", p.bestValidLoss)
                try st.setAttribute("seed", Int64(bitPattern: config.seed))
                try st.setAttribute("progress", string: try jsonString(p))
                try writeTaskState(s.taskState, to: file)
                try file.close()
            }
        } catch let error as DataError {
            // Out of space or over the file-size limit: one line saying so, for the final path
            // (AtomicFile removed the temporary file; earlier checkpoints are untouched).
            if case .storageExhausted = error { throw TrainingError.checkpoint("checkpoint \(error)") }
            throw error
        }
    }

    /// About how many bytes a checkpoint takes: every float dataset, the task's state and HDF5's
    /// metadata (about 2 KiB per dataset and group, measured on small checkpoints). Only for the
    /// message when the disk is full.
    private static func expectedSize(_ s: CheckpointSnapshot) -> Int {
        let slots = s.slots.count
        let objects = s.layout.views.count * (1 + slots) + 2 * s.taskState.entries.count + slots + 8
        return 4 * s.layout.parameterCount * (1 + slots) + s.taskState.approximateBytes + 2048 * objects
    }

    /// Writes every entry of a task's state under its path, creating the groups on the way.
    /// Float arrays get one checksummed chunk each, like the parameters.
    private static func writeTaskState(_ state: TaskState, to file: H5File) throws {
        for entry in state.entries {
            var parts = entry.path.split(separator: "/").map(String.init)
            let name = parts.removeLast()
            var group: any H5Location = file
            for part in parts {
                group = try group.contains(part) ? try group.openGroup(part) : try group.createGroup(part)
            }
            switch entry.values {
            case .floats(let values):
                try values.withUnsafeBufferPointer {
                    _ = try group.writeChecksummed(name, $0, shape: entry.shape, rowsPerChunk: max(1, entry.shape.first ?? 1))
                }
            case .int64s(let values): try group.write(name, values)
            case .strings(let values): _ = try group.writeStrings(name, values)
            }
        }
    }

    /// Writes one parameter-shaped dataset straight from the flat buffer, in chunks of about
    /// 1 MiB of rows, each with a Fletcher32 checksum.
    private static func writeView(_ group: H5Group, _ view: ParameterView, _ p: UnsafePointer<Float>) throws {
        let rowLength = view.shape.dropFirst().reduce(1, *)
        try group.writeChecksummed(view.name, UnsafeBufferPointer(start: p, count: view.count), shape: view.shape,
                                   rowsPerChunk: max(1, (1 << 18) / max(1, rowLength)))
    }

    /// The current time as ISO 8601 in UTC to the second (`2024-05-01T12:34:56Z`), the form
    /// ISO8601DateFormatter gives, without building a formatter (about 0.4 ms) at every save.
    static func utcTimestamp(_ seconds: time_t = time(nil)) -> String {
        var t = seconds, parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    private static func jsonString<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                     nan: "nan")
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ text: String, file: String, field: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                       nan: "nan")
        do {
            return try decoder.decode(type, from: Data(text.utf8))
        } catch {
            let reason = String(describing: error).replacingOccurrences(of: "\n", with: " ")
            throw TrainingError.checkpoint("\(file): \(field): expected a JSON \(type), found unreadable text (\(reason))")
        }
    }

    /// Reads and validates a checkpoint: format and version, the configuration (readable and
    /// valid), every expected group, attribute and dataset present with the expected shape and
    /// dtype, Fletcher32 checksums, and the redundant copies of the progress agreeing.
    /// - Throws: `TrainingError.checkpoint` (or `DataError` for lower-level HDF5 failures) whose
    ///   message is one line naming the file and the object, with what was expected and found.
    public static func load(_ path: String) throws -> CheckpointContent {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError.checkpoint("\(path): no such checkpoint file")
        }
        if let kind = H5File.nonRegularKind(path) {
            throw TrainingError.checkpoint("\(path): expected a regular file (an Unroll checkpoint), found \(kind)")
        }
        // An empty file is what a crash between create and write, or a full disk, leaves.
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size == 0 {
            throw TrainingError.checkpoint("\(path): empty file (0 bytes; expected an Unroll checkpoint)")
        }
        guard H5File.isHDF5(path) else {
            throw TrainingError.checkpoint("\(path): not an HDF5 file (expected an Unroll checkpoint)")
        }
        let file: H5File
        do {
            file = try H5File.open(path)
        } catch let DataError.hdf5(_, _, _, detail) {
            throw TrainingError.checkpoint("\(path): cannot open as HDF5 (damaged or truncated file): \(innermost(detail))")
        }
        let r = Reader(path: path)
        guard try file.hasAttribute("format") else {
            throw TrainingError.checkpoint("\(path): attribute format: missing (expected \(CheckpointFormat.name))")
        }
        let format = try r.string(file, "format")
        guard format == CheckpointFormat.name else {
            throw TrainingError.checkpoint("\(path): attribute format: expected \(CheckpointFormat.name), found \(format)")
        }
        let version = try r.int(file, "version")
        guard CheckpointFormat.readableVersions.contains(version) else {
            throw TrainingError.checkpoint("\(path): attribute version: expected 1 or \(CheckpointFormat.version), found \(version)")
        }
        let config = try decode(TrainingConfig.self, try r.string(file, "config"), file: path, field: "attribute config")
        // A checkpoint edited by hand (or by a newer writer) must not reach a model precondition.
        if let problem = config.problem() {
            throw TrainingError.checkpoint("\(path): attribute config: expected a valid configuration, found \(problem)")
        }
        if let short = MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.checkpointBytes(config), processes: 1) {
            throw TrainingError.checkpoint("\(path): attribute config: the model it describes \(short)")
        }
        let worldSize = try r.int(file, "world_size")
        // Not returned, but `describe` shows them, so they are part of a valid file.
        _ = try r.string(file, "unroll_version")
        _ = try r.string(file, "created")
        let dataFile = try r.string(file, "data_file")
        let dataSHA256 = try r.string(file, "data_sha256")
        let runId = try file.hasAttribute("run_id") ? try r.string(file, "run_id") : nil

        let layout = TrainingTasks.type(for: config).parameterLayout(config)
        var parameters: [String: [Float]] = [:]
        let params = try r.group(file, "params")
        for view in layout.views { parameters[view.name] = try r.floats(params, view.name, shape: view.shape) }

        let opt = try r.group(file, "optimizer")
        let kind = try r.string(opt, "kind")
        guard kind == config.optimizer.kind.rawValue else {
            throw TrainingError.checkpoint("\(path): /optimizer attribute kind: expected \(config.optimizer.kind.rawValue) "
                                           + "(attribute config), found \(kind)")
        }
        let optimizerSteps = try r.int(opt, "step")
        var slots: [String: [String: [Float]]] = [:]
        for slot in config.optimizer.slotNames {
            let g = try r.group(opt, slot)
            var values: [String: [Float]] = [:]
            for view in layout.views { values[view.name] = try r.floats(g, view.name, shape: view.shape) }
            slots[slot] = values
        }

        let st = try r.group(file, "state")
        let progress = try decode(TrainingProgress.self, try r.string(st, "progress"), file: path,
                                  field: "/state attribute progress")
        let step = try r.int(st, "step"), epoch = try r.int(st, "epoch")
        guard step == progress.step, epoch == progress.epoch else {
            throw TrainingError.checkpoint("\(path): /state attributes step, epoch: expected \(progress.step), "
                                           + "\(progress.epoch) (as in attribute progress), found \(step), \(epoch)")
        }
        let schema = TrainingTasks.type(for: config).checkpointSchema(config)
        let taskState = try readTaskState(schema, from: file, reader: r)
        if let problem = schema.check(taskState, progress) { throw TrainingError.checkpoint("\(path): \(problem)") }
        return CheckpointContent(config: config, progress: progress, optimizerSteps: optimizerSteps,
                                 parameters: parameters, optimizerSlots: slots, taskState: taskState,
                                 worldSize: worldSize, dataFile: dataFile, dataSHA256: dataSHA256, runId: runId)
    }

    /// Reads every entry `schema` names, checking kind and shape.
    private static func readTaskState(_ schema: TaskStateSchema, from file: H5File, reader r: Reader) throws -> TaskState {
        var state = TaskState()
        for field in schema.fields {
            var parts = field.path.split(separator: "/").map(String.init)
            let name = parts.removeLast()
            var group: any H5Location = file
            for part in parts { group = try r.group(group, part) }
            switch field.kind {
            case .floats:
                let shape = try field.shape ?? r.dataset(group, name, shape: nil, type: .float32).shape
                state.append(field.path, floats: try r.floats(group, name, shape: shape), shape: shape)
            case .int64s:
                state.append(field.path, int64s: try r.dataset(group, name, shape: field.shape, type: .int64).read(as: Int64.self))
            case .strings:
                state.append(field.path, strings: try r.dataset(group, name, shape: field.shape, type: .string).readStrings())
            }
        }
        return state
    }

    /// Verifies a checkpoint completely without keeping it: everything `load` checks (format,
    /// configuration, every group, attribute and dataset with its shape and type, every chunk of
    /// every chunked dataset present, every Fletcher32 checksum). Reads the whole file, so its cost
    /// is that of reading the file once; meant for choosing the newest good checkpoint at resume.
    /// - Throws: the same one-line errors as `load`.
    public static func verify(_ path: String) throws {
        _ = try load(path)
    }

    /// The innermost entry of an HDF5 error stack (the one that says what actually went wrong).
    fileprivate static func innermost(_ stack: String) -> String {
        stack.components(separatedBy: " | ").last ?? stack
    }

    /// Reads the parts of one checkpoint file; every failure names the file and the object.
    private struct Reader {
        let path: String

        func group(_ parent: some H5Location, _ name: String) throws -> H5Group {
            guard try parent.contains(name) else {
                throw TrainingError.checkpoint("\(path): \(child(parent, name)): missing (expected a group)")
            }
            return try parent.openGroup(name)
        }

        private func child(_ parent: some H5AttributeHolder, _ name: String) -> String {
            parent.objectPath == "/" ? "/" + name : parent.objectPath + "/" + name
        }

        private func attributeField(_ holder: some H5AttributeHolder, _ name: String) -> String {
            holder.objectPath == "/" ? "attribute \(name)" : "\(holder.objectPath) attribute \(name)"
        }

        private func requireAttribute(_ holder: some H5AttributeHolder, _ name: String, _ what: String) throws {
            guard try holder.hasAttribute(name) else {
                throw TrainingError.checkpoint("\(path): \(attributeField(holder, name)): missing (expected \(what))")
            }
        }

        func string(_ holder: some H5AttributeHolder, _ name: String) throws -> String {
            try requireAttribute(holder, name, "a string")
            return try holder.stringAttribute(name)
        }

        func int(_ holder: some H5AttributeHolder, _ name: String) throws -> Int {
            try requireAttribute(holder, name, "an integer")
            return try holder.intAttribute(name)
        }

        /// Opens dataset `name` after checking its element type and (if given) its shape.
        func dataset(_ parent: some H5Location, _ name: String, shape: [Int]?, type: H5ElementType) throws -> H5Dataset {
            let field = child(parent, name)
            guard try parent.contains(name) else {
                throw TrainingError.checkpoint("\(path): \(field): missing (expected a dataset of \(type))")
            }
            let d: H5Dataset
            do {
                // Opening checks that every chunk is present: a missing one would read as zeros.
                d = try parent.openDataset(name)
            } catch let error as DataError {
                if case .invalid = error { throw TrainingError.checkpoint(error.description) }
                if case let .hdf5(_, _, operation, detail) = error {
                    throw TrainingError.checkpoint("\(path): \(field): \(operation) failed (damaged file): "
                                                   + Checkpoint.innermost(detail))
                }
                throw error
            }
            if let shape, d.shape != shape {
                throw TrainingError.checkpoint("\(path): \(field): expected shape \(shape), found \(d.shape)")
            }
            guard d.elementType == type else {
                throw TrainingError.checkpoint("\(path): \(field): expected \(type), found \(d.elementType)")
            }
            return d
        }

        /// Reads a float32 dataset of `shape`, verifying its Fletcher32 checksums.
        func floats(_ parent: some H5Location, _ name: String, shape: [Int]) throws -> [Float] {
            let d = try dataset(parent, name, shape: shape, type: .float32)
            do {
                return try d.read(as: Float.self)
            } catch let DataError.hdf5(_, _, _, detail) {
                let cause = detail.contains("Fletcher32")
                    ? "Fletcher32 checksum mismatch: the stored data is corrupted"
                    : "read failed: \(Checkpoint.innermost(detail))"
                throw TrainingError.checkpoint("\(path): \(child(parent, name)): \(cause)")
            }
        }
    }

    /// Checks that a checkpoint's model can be used with `config` (cell kind, sizes, vocabulary).
    public static func checkCompatible(_ content: CheckpointContent, with config: ModelConfig, file: String) throws {
        let c = content.config.model
        func mismatch(_ what: String, _ expected: Any, _ found: Any) -> TrainingError {
            .checkpoint("\(file): \(what): the run expects \(expected), the checkpoint has \(found)")
        }
        if c.cell != config.cell { throw mismatch("cell", config.cell.rawValue, c.cell.rawValue) }
        if c.layers != config.layers { throw mismatch("layers", config.layers, c.layers) }
        if c.hiddenSize != config.hiddenSize { throw mismatch("hidden size", config.hiddenSize, c.hiddenSize) }
        if c.embeddingSize != config.embeddingSize { throw mismatch("embedding size", config.embeddingSize, c.embeddingSize) }
        if c.vocabSize != config.vocabSize { throw mismatch("vocabulary size", config.vocabSize, c.vocabSize) }
        func list(_ values: [Int]?) -> String { values.map { $0.map(String.init).joined(separator: ",") } ?? "none" }
        if (c.skipSteps ?? []) != (config.skipSteps ?? []) {
            throw mismatch("skip steps", list(config.skipSteps), list(c.skipSteps))
        }
        if c.effectiveClockPeriods != config.effectiveClockPeriods {
            throw mismatch("clock periods", list(config.effectiveClockPeriods), list(c.effectiveClockPeriods))
        }
    }

    /// Restores parameters, optimizer state, progress and the task's state (this rank's part of
    /// the global carried state) into `trainer`, whose world size may differ from the one that saved.
    public static func restore(_ content: CheckpointContent, into trainer: Trainer, file: String) throws {
        try checkCompatible(content, with: trainer.config.model, file: file)
        try trainer.task.checkSameData(content.taskState, label: file)
        guard content.config.batchSize == trainer.config.batchSize else {
            throw TrainingError.checkpoint("\(file): batch size: the run expects \(trainer.config.batchSize) global streams, the checkpoint has \(content.config.batchSize)")
        }
        // The data cursor counts windows of `bptt` tokens: another window length would resume
        // every stream at another position of the data.
        guard content.config.bptt == trainer.config.bptt else {
            throw TrainingError.checkpoint("\(file): bptt: the run expects windows of \(trainer.config.bptt) tokens, the checkpoint's data cursor counts windows of \(content.config.bptt)")
        }
        try copyParameters(content, into: trainer, named: file)
        let arena = trainer.task.arena
        for (slot, buffer) in trainer.optimizer.slots {
            guard let values = content.optimizerSlots[slot] else {
                throw TrainingError.checkpoint("\(file): /optimizer/\(slot): missing for optimizer \(trainer.config.optimizer.kind.rawValue)")
            }
            for view in arena.layout.views {
                if let v = values[view.name] { (buffer.pointer + view.offset).update(from: v, count: view.count) }
            }
        }
        trainer.optimizer.stepCount = content.optimizerSteps
        trainer.progress = content.progress
        try trainer.task.restore(content.taskState, file: file)
    }
}

extension Checkpoint {
    /// The run id stored in checkpoint `path` (nil for files written before run ids existed),
    /// read without loading the rest. Throws if the file cannot be opened as HDF5.
    public static func runId(_ path: String) throws -> String? {
        let file = try H5File.open(path)
        return try file.hasAttribute("run_id") ? try file.stringAttribute("run_id") : nil
    }

    /// True if `path` is an HDF5 file whose `format` attribute names a checkpoint.
    public static func isCheckpoint(_ path: String) -> Bool {
        guard H5File.isHDF5(path), let file = try? H5File.open(path), (try? file.hasAttribute("format")) == true,
              let format = try? file.stringAttribute("format") else { return false }
        return format == CheckpointFormat.name
    }

    /// A validated, human-readable summary of a checkpoint (for `unroll inspect`).
    public static func describe(_ path: String) throws -> String {
        let c = try load(path)
        let file = try H5File.open(path)
        let m = c.config.model
        let layout = TrainingTasks.type(for: c.config).parameterLayout(c.config)
        var lines = ["\(path): checkpoint, format \(CheckpointFormat.name) v\(try file.intAttribute("version")), "
                     + "written by Unroll \(try file.stringAttribute("unroll_version")) on \(try file.stringAttribute("created"))"]
        lines.append("  model: \(m.cell.rawValue), \(m.layers) layer(s) × \(m.hiddenSize), embedding \(m.embeddingSize), "
                     + "vocabulary \(m.vocabSize), dropout \(m.dropout), init \(m.initScheme.name)"
                     + (m.effectiveLeak.map { ", leak \($0)" } ?? "")
                     + (m.skipSteps.map { ", skip steps \($0.map(String.init).joined(separator: ","))" } ?? "")
                     + (m.effectiveClockPeriods.map { ", clock periods \($0.map(String.init).joined(separator: ","))" } ?? "")
                     + (m.effectiveEchoState.map { e in
                         ", reservoir radius \(e.radius) density \(e.density) input scale \(e.inputScale), ridge \(e.ridge)"
                     } ?? ""))
        lines.append("  parameters: \(layout.parameterCount)")
        for view in layout.views { lines.append("    /params/\(view.name) \(view.shape)") }
        let p = c.progress
        lines.append("  state: step \(p.step), epoch \(p.epoch), next window \(p.window), best valid loss \(p.bestValidLoss), "
                     + "skipped steps \(p.skippedSteps)")
        lines.append("  optimizer: \(c.config.optimizer.kind.rawValue), \(c.optimizerSteps) updates, slots \(c.config.optimizer.slotNames)")
        lines.append("  hidden: \(m.layers) layer(s) × \(c.config.batchSize) global streams × \(m.hiddenSize)"
                     + (m.cell.hasCellState ? " (h and c)" : " (h)"))
        lines.append("  data: \(c.dataFile) sha256 \(c.dataSHA256), saved by \(c.worldSize) rank(s)")
        lines.append("  training: batch \(c.config.batchSize) bptt \(c.config.bptt) lr \(c.config.learningRate) "
                     + "schedule \(c.config.schedule) clip \(c.config.clip) seed \(c.config.seed)")
        if let overrides = p.overrides, !overrides.isEmpty {
            lines.append("  overrides: " + overrides.map { "\($0.flag) \($0.from) → \($0.to) at step \($0.step)" }
                .joined(separator: ", "))
        }
        lines.append("  run: \(c.runId ?? "(no id: written before run ids)")")
        return lines.joined(separator: "\n")
    }
}

extension Checkpoint {
    /// Copies only the parameters of `content` into `trainer` (for `--init-from`: a new run from
    /// trained weights). The vocabulary must be the dataset's, entry for entry; the shapes must
    /// match (checked by `ConfigMerge.checkShapes` and again here, view by view).
    public static func restoreParameters(_ content: CheckpointContent, into trainer: Trainer, file: String) throws {
        try trainer.task.checkSameData(content.taskState, label: "--init-from \(file)")
        try copyParameters(content, into: trainer, named: "--init-from \(file)")
    }

    /// Copies every parameter view of `content` into the trainer's arena.
    private static func copyParameters(_ content: CheckpointContent, into trainer: Trainer, named label: String) throws {
        let arena = trainer.task.arena
        for view in arena.layout.views {
            guard let values = content.parameters[view.name], values.count == view.count else {
                throw TrainingError.checkpoint("\(label): /params/\(view.name): missing or of another shape "
                                               + "(expected \(view.shape))")
            }
            arena.parameters(view).update(from: values, count: view.count)
        }
    }

}
