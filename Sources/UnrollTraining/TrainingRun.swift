// A whole training run, read top to bottom: set up (agree across ranks, resume), then
// step → log → validate/checkpoint when due → until the step budget is spent or a signal asks to
// stop; always a final checkpoint and a summary. Rank 0 prints; every rank runs the same sequence
// of collectives.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels
import Logging
import UnrollTensorBoard

/// Receives progress lines (rank 0 only).
public typealias LogSink = @Sendable (String) -> Void

/// Final figures of a run.
public struct RunSummary: Sendable {
    public var steps: Int
    public var finalTrainLoss: Double
    public var bestValidLoss: Double
    public var lastCheckpoint: String?
    public var stoppedBySignal: Bool
    public var skippedSteps: Int
    public var seconds: Double
}

public final class TrainingRun {
    public let trainer: Trainer
    let logLine: LogSink
    /// Checkpoints written, resumes, notices (rank 0; see `UnrollLog`).
    let logger = UnrollLog.training
    let isRoot: Bool
    let dataSHA256: String
    var metrics: FileHandle?
    /// TensorBoard event file of this run (rank 0, with `config.tensorboard`); nil after a failed
    /// write (the run goes on without it, having said so once).
    var tensorBoard: TensorBoardWriter?
    /// Non-zero once SIGTERM/SIGINT arrived (see `installSignalHandlers`).
    static var signalled: sig_atomic_t { sig_atomic_t(StopSignals.count) }

    /// The run's id, stored in every checkpoint it writes (a resumed run keeps its checkpoint's).
    public let runId: String
    /// The checkpoint directory this run owns (nil without --checkpoint-dir).
    public let directory: RunDirectory?

    /// Sets up a run: every rank checks that the configuration, dataset and binary agree, the
    /// checkpoint directory is taken (see `RunDirectory`), the trainer is built and then
    /// - with `resume` ("latest" or a file): restored from the newest verified checkpoint or that
    ///   file, keeping its run id; `overrides` (from `ConfigMerge.resume`) are recorded;
    /// - with `initFrom` (a checkpoint file): a new run whose parameters are that checkpoint's
    ///   (same shapes), with a fresh optimizer at step 0;
    /// - otherwise a new run, in a directory that must hold no checkpoints.
    /// `directory`, if given, must be the one of `config.checkpointDir`, already taken.
    public init(config: TrainingConfig, communicator: any Communicator, resume: String?, initFrom: String? = nil,
                directory: RunDirectory? = nil, overrides: [ConfigOverride] = [], log: @escaping LogSink) throws {
        isRoot = communicator.rank == 0
        self.logLine = log
        try communicator.checkIdentical(UnrollVersion.string, what: "binary version")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]   // key order must not depend on the process
        let configText = String(decoding: try encoder.encode(config), as: UTF8.self)
        try communicator.checkIdentical(configText, what: "configuration")
        if resume != nil, initFrom != nil {
            throw TrainingError.config("--resume and --init-from exclude each other")
        }
        var sha = ""
        var failure: (any Error)?
        do { sha = try fileSHA256(config.data) } catch { failure = error }
        guard try communicator.allAgree(failure == nil) else {
            throw failure ?? TrainingError.data("\(config.data): unreadable on another rank")
        }
        try communicator.checkIdentical(sha, what: "dataset SHA-256 of \(config.data)")
        dataSHA256 = sha
        var built: Trainer?
        do { built = try Trainer(config: config, communicator: communicator) } catch { failure = error }
        guard try communicator.allAgree(failure == nil), let trainer = built else {
            throw failure ?? TrainingError.config("set-up failed on another rank")
        }
        self.trainer = trainer
        var runId = try rootDecides(communicator) { makeRunId() }
        if let dir = config.checkpointDir {
            self.directory = try directory ?? RunDirectory(path: dir, runId: runId, communicator: communicator, log: log)
        } else {
            self.directory = nil
        }
        if let resume {
            let path: String
            if let directory = self.directory {
                path = try directory.selectResume(resume, verify: Checkpoint.verify)
            } else if resume == "latest" {
                throw TrainingError.checkpoint("--resume latest: needs --checkpoint-dir (the directory to resume from)")
            } else {
                path = resume
            }
            do {
                let content = try Checkpoint.load(path)
                if content.dataSHA256 != sha {
                    throw TrainingError.checkpoint("\(path): data_sha256 \(content.dataSHA256.prefix(12))… differs from \(config.data) (\(sha.prefix(12))…)")
                }
                try Checkpoint.restore(content, into: trainer, file: path)
                if let id = content.runId { runId = id }
            } catch { failure = error }
            guard try communicator.allAgree(failure == nil) else {
                throw failure ?? TrainingError.checkpoint("\(path): restoring failed on another rank")
            }
            try self.directory?.adopt(runId: runId)
            if !overrides.isEmpty { trainer.progress.overrides = (trainer.progress.overrides ?? []) + overrides }
            if isRoot {
                logger.info("resumed from \(path) at step \(trainer.progress.step), epoch \(trainer.progress.epoch) (run \(runId))")
                for o in overrides { logger.notice("notice: \(o.flag) changed from \(o.from) to \(o.to) at step \(o.step) (recorded in the checkpoints)") }
            }
        } else {
            try self.directory?.requireNoCheckpoints()
            if let initFrom, SafeTensors.isSafeTensors(initFrom) && !H5File.isHDF5(initFrom) {
                // Weights from elsewhere: the shapes come from the run's configuration, the file
                // must hold every parameter of the layout (names, shapes checked; all mismatches listed).
                var metadata: [String: String] = [:]
                do { metadata = try ModelExport.initialize(trainer.task.arena, fromSafeTensors: initFrom) } catch { failure = error }
                guard try communicator.allAgree(failure == nil) else {
                    // Every rank read the same file and is here together: one message, no abort.
                    throw AgreedError(failure ?? TrainingError.checkpoint("--init-from \(initFrom): failed on another rank"))
                }
                if isRoot {
                    let origin = metadata["unroll.step"].map { " (exported by Unroll at step \($0))" } ?? ""
                    log("initialised from \(initFrom)\(origin): \(trainer.task.arena.layout.views.count) tensors; "
                        + "new run \(runId) at step 0 with a fresh optimizer (the vocabulary order is not checked: "
                        + "it must be the dataset's)")
                }
            } else if let initFrom {
                do {
                    let content = try Checkpoint.load(initFrom)
                    try ConfigMerge.checkShapes(config.model, against: content.config.model, file: initFrom)
                    try Checkpoint.restoreParameters(content, into: trainer, file: initFrom)
                    if isRoot {
                        let message = "initialised from \(initFrom) (step \(content.progress.step) of run \(content.runId ?? "?")): "
                            + "new run \(runId) at step 0 with a fresh optimizer"
                        logger.info("\(message)")
                    }
                } catch { failure = error }
                guard try communicator.allAgree(failure == nil) else {
                    throw failure ?? TrainingError.checkpoint("--init-from \(initFrom): failed on another rank")
                }
            }
        }
        self.runId = runId
        if let path = config.metrics {
            // Checked before opening: opening a FIFO for writing blocks until a reader appears.
            try rootDecides(communicator) {
                if let kind = H5File.nonRegularKind(path) {
                    throw TrainingError.config("--metrics \(path): expected a regular file, found \(kind)")
                }
                return true
            }
        }
        if isRoot, let path = config.metrics {
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw TrainingError.config("--metrics \(path): cannot open for writing")
            }
            handle.seekToEndOfFile()
            metrics = handle
        }
        if let dir = config.tensorboard {
            // Rank 0 creates the file; every rank learns whether it could.
            var failure: (any Error)?
            if isRoot {
                do { tensorBoard = try TensorBoardWriter(directory: dir) } catch { failure = error }
            }
            guard try communicator.allAgree(failure == nil) else {
                throw AgreedError(TrainingError.config("--tensorboard \(failure.map { "\($0)" } ?? "\(dir): failed on rank 0")"))
            }
        }
    }

    /// SIGTERM/SIGINT finish the current step, save a checkpoint and end the run normally. A rank
    /// still running `stopGrace` seconds after the first signal (stuck in a collective or in I/O),
    /// or given a second signal, is ended with status 128 + signal (see `StopSignals`).
    /// - Throws: `DistributedError.unavailable` if the handlers cannot be installed.
    public static func installSignalHandlers(stopGrace: Double = StopSignals.defaultGrace) throws {
        try StopSignals.install(grace: stopGrace)
    }

    /// Appends one record to the metrics file (rank 0, with --metrics).
    private func emit<Record: Encodable>(_ record: Record) throws {
        guard let metrics else { return }
        metrics.write(Data((try JSONLines.line(record) + "\n").utf8))
    }

    /// Appends `scalars` at `step` to the TensorBoard file (rank 0, with --tensorboard). A failed
    /// write is reported once and ends TensorBoard output, not the run (other ranks know nothing of it).
    private func board(_ step: Int, _ scalars: [(tag: String, value: Double)]) {
        guard let writer = tensorBoard else { return }
        do {
            try writer.add(step: step, scalars: scalars)
        } catch {
            logLine("warning: --tensorboard: \(error); no more TensorBoard events in this run")
            writer.close()
            tensorBoard = nil
        }
    }

    /// The TensorBoard tag of a throughput in `unit`s per second: "tokens_per_s", "sequences_per_s".
    static func rateName(_ unit: String) -> String {
        (["tok": "tokens", "seq": "sequences", "step": "steps"][unit] ?? unit) + "_per_s"
    }

    /// Validates on the valid split (collective) and feeds the schedule and best-loss tracking.
    @discardableResult
    public func validate() throws -> EvaluationResult {
        let c = trainer.config
        let result = try trainer.task.evaluate(split: "valid")
        c.schedule.observeValidation(result.meanLoss, state: &trainer.progress.scheduleState)
        let improved = result.meanLoss < trainer.progress.bestValidLoss
        if improved { trainer.progress.bestValidLoss = result.meanLoss }
        if isRoot {
            var line = "valid | epoch \(trainer.progress.epoch) step \(trainer.progress.step) | loss \(f(result.meanLoss, 4))"
            for m in result.metrics { line += " \(m.name) \(f(m.value, m.digits))" }
            line += " | \(result.tokens) \(trainer.task.targetUnit)" + (improved ? " | best" : "")
            logLine(line)
            try emit(ValidRecord(step: trainer.progress.step, epoch: trainer.progress.epoch, loss: result.meanLoss,
                                 figures: result.metrics.map { ($0.name, $0.value) }, tokens: result.tokens,
                                 best: improved))
            board(trainer.progress.step, [("valid/loss", result.meanLoss)] + result.metrics.map { ("valid/\($0.name)", $0.value) })
        }
        lastValidationImproved = improved
        return result
    }

    private var lastValidationImproved = false

    /// Writes the checkpoints on a background thread (rank 0), one at a time.
    let writer = CheckpointWriter()
    /// Test hook (rank 0's checkpoint writes): called at each stage of `AtomicFile.write`, e.g. to
    /// make a save slow so that a test can kill the job while one is in flight. Not configuration.
    public var checkpointFailureHook: AtomicFile.FailureHook?
    /// Seconds the training loop was held up by each save of this run (waiting for the previous
    /// write, the collectives and the copy into the staging buffers; not the write itself).
    public private(set) var checkpointStalls: [Double] = []

    /// Starts a checkpoint of the current state as `step-N.h5` (collective): waits for the previous
    /// save to be complete (reporting its failure on every rank), copies the state, and has rank 0
    /// write it in the background; once it is on disk, `latest.h5` (and `best.h5` if `best`) name
    /// it and old ones are pruned. `finishCheckpoints` waits for the last one.
    /// - Throws: `AgreedError` on every rank when the previous write failed (its one-line message).
    @discardableResult
    public func saveCheckpoint(best: Bool) throws -> String? {
        guard let dir = trainer.config.checkpointDir else { return nil }
        let path = (dir as NSString).appendingPathComponent(CheckpointDirectory.fileName(step: trainer.progress.step))
        let t0 = monotonicSeconds()
        try finishCheckpoints()
        let snapshot = try Checkpoint.snapshot(trainer, dataSHA256: dataSHA256, runId: runId, staging: writer.takeStaging())
        // Training resumes now: what it was held up is the wait, the collectives and the copy.
        let stall = monotonicSeconds() - t0
        checkpointStalls.append(stall)
        if isRoot {
            let keep = trainer.config.keep, logger = self.logger
            writer.start(snapshot, to: path, failureHook: checkpointFailureHook) {
                try CheckpointDirectory.setLink("latest.h5", to: path, in: dir)
                if best { try CheckpointDirectory.setLink("best.h5", to: path, in: dir) }
                CheckpointDirectory.prune(dir, keep: keep, protected: path)
                let message = "checkpoint \(path)\(best ? " (best)" : "") in \(f(monotonicSeconds() - t0, 2)) s "
                    + "(training held up \(f(stall * 1000, 1)) ms)"
                logger.info("\(message)")
            }
        }
        return path
    }

    /// Waits until the checkpoint being written (if any) is complete under its name (collective).
    /// - Throws: `AgreedError` on every rank, with rank 0's one-line message, if that write failed.
    public func finishCheckpoints() throws {
        let failure = isRoot ? writer.wait() : nil
        guard try trainer.communicator.allAgree(failure == nil) else {
            throw AgreedError(failure ?? TrainingError.checkpoint("rank 0 failed to write a checkpoint"))
        }
    }

    /// Trains until the step budget is spent or a signal asks to stop.
    public func run() throws -> RunSummary {
        let c = trainer.config
        let start = monotonicSeconds()
        if c.model.cell == .esn, let task = trainer.task as? SequenceTask { return try runEchoState(task, start: start) }
        if isRoot {
            logLine("training: \(trainer.task.setupDescription), steps \(trainer.progress.step)→\(trainer.totalSteps), "
                + "\(trainer.task.arena.layout.parameterCount) parameters")
        }
        var lastCheckpoint: String?, lastLoss = Double.nan, stopped = false
        var windowTokens = 0, windowSeconds = 0.0, windowLoss = 0.0, windowSteps = 0
        var savedAtStep = -1
        // If an error ends the run, a write in flight still completes (no collective: the other
        // ranks may be elsewhere); its own error, if any, is secondary to the one being thrown.
        defer { writer.wait() }
        while !trainer.isFinished {
            trainer.stopRequested = TrainingRun.signalled != 0
            let r = try trainer.step()
            lastLoss = r.loss
            windowTokens += r.tokens
            windowSeconds += r.stepSeconds
            windowLoss += r.loss
            windowSteps += 1
            if r.skipped && isRoot {
                logger.warning("step \(r.step): gradient norm \(r.gradNorm) — update skipped on every rank (\(trainer.progress.skippedSteps) so far)")
            }
            let step = trainer.progress.step
            if isRoot {
                try emit(TrainRecord(step: step, epoch: r.epoch, loss: .init(r.loss), gradNorm: .init(r.gradNorm),
                                     clipped: r.clipped, skipped: r.skipped, lr: .init(r.learningRate), tokens: r.tokens,
                                     stepSeconds: .init(r.stepSeconds), computeSeconds: .init(r.computeSeconds),
                                     communicationSeconds: .init(r.communicationSeconds), ioSeconds: .init(r.ioSeconds)))
                board(step, [("train/loss", r.loss)]
                      + trainer.task.lossFigures(meanLoss: r.loss).map { ("train/\($0.name)", $0.value) }
                      + [("train/grad_norm", r.gradNorm), ("train/lr", r.learningRate),
                         ("train/\(Self.rateName(trainer.task.targetUnit))", Double(r.tokens) / max(r.stepSeconds, 1e-9)),
                         ("train/skipped_steps", Double(trainer.progress.skippedSteps)),
                         ("time/step_s", r.stepSeconds), ("time/compute_s", r.computeSeconds),
                         ("time/communication_s", r.communicationSeconds), ("time/io_s", r.ioSeconds)])
                if step % c.logEvery == 0 || step == trainer.totalSteps || r.stopRequested {
                    let mean = windowLoss / Double(max(windowSteps, 1))
                    let tps = Double(windowTokens) / max(windowSeconds, 1e-9)
                    let eta = Double(trainer.totalSteps - step) * windowSeconds / Double(max(windowSteps, 1))
                    var line = "epoch \(r.epoch) | step \(step)/\(trainer.totalSteps) | loss \(f(mean, 4))"
                    for m in trainer.task.lossFigures(meanLoss: mean) { line += " \(m.name) \(f(m.value, m.digits))" }
                    line += " | grad \(f(r.gradNorm, 3)) | lr \(f(r.learningRate, 5)) | \(Int(tps)) \(trainer.task.targetUnit)/s"
                    if let extra = trainer.task.progressNote() { line += " | \(extra)" }
                    line += " | ETA \(duration(eta))"
                    logLine(line)
                    windowTokens = 0; windowSeconds = 0; windowLoss = 0; windowSteps = 0
                }
            }
            let evalDue = c.evalEvery > 0 ? step % c.evalEvery == 0 : r.endedEpoch
            if evalDue || trainer.isFinished {
                try validate()
                if lastValidationImproved || (c.checkpointEvery == 0 && r.endedEpoch) {
                    lastCheckpoint = try saveCheckpoint(best: lastValidationImproved) ?? lastCheckpoint
                    savedAtStep = step
                }
            }
            if c.checkpointEvery > 0 && step % c.checkpointEvery == 0 && savedAtStep != step {
                lastCheckpoint = try saveCheckpoint(best: false) ?? lastCheckpoint
                savedAtStep = step
            }
            if r.stopRequested {
                stopped = true
                break
            }
        }
        if savedAtStep != trainer.progress.step {
            lastCheckpoint = try saveCheckpoint(best: false) ?? lastCheckpoint
        }
        // The last save (the final one, or the one a signal asked for) is on disk before the run
        // reports anything or the process can exit.
        try finishCheckpoints()
        let summary = RunSummary(steps: trainer.progress.step, finalTrainLoss: lastLoss,
                                 bestValidLoss: trainer.progress.bestValidLoss, lastCheckpoint: lastCheckpoint,
                                 stoppedBySignal: stopped, skippedSteps: trainer.progress.skippedSteps,
                                 seconds: monotonicSeconds() - start)
        if isRoot {
            if stopped {
                let how = trainer.config.checkpointDir.map { "unroll train --checkpoint-dir \($0) --resume latest" }
                    ?? "unroll train … (no --checkpoint-dir: nothing was saved)"
                logger.notice("stopped by signal at step \(summary.steps); resume with: \(how)")
            }
            let figures = trainer.task.lossFigures(meanLoss: summary.bestValidLoss)
                .map { "\($0.name) \(f($0.value, $0.digits))" }.joined(separator: " ")
            logLine("done: \(summary.steps) steps in \(duration(summary.seconds)), best valid loss \(f(summary.bestValidLoss, 4))"
                + (figures.isEmpty ? "" : " (\(figures))") + ", skipped \(summary.skippedSteps)"
                + (lastCheckpoint.map { ", last checkpoint \($0)" } ?? ""))
        }
        try? metrics?.close()
        tensorBoard?.close()
        directory?.lock?.release()
        return summary
    }
}

extension TrainingRun {
    /// `--cell esn`: one pass of the reservoir over the train split, the readout solved in closed
    /// form (`SequenceTask.fitEchoStateReadout`), validation, and one checkpoint at step 1 (best).
    func runEchoState(_ task: SequenceTask, start: Double) throws -> RunSummary {
        defer { writer.wait() }
        if isRoot {
            logLine("training: echo state network, \(task.setupDescription.components(separatedBy: ", ").prefix(2).joined(separator: ", ")); "
                + "one pass, readout by ridge regression (λ = \(task.model.config.effectiveEchoState?.ridge ?? 0))")
        }
        let fit = try task.fitEchoStateReadout()
        trainer.progress.step = 1
        trainer.progress.window = 0
        trainer.progress.epoch = 1
        if isRoot {
            let radii = fit.radii.map { f($0, 4) }.joined(separator: ", ")
            logLine("readout: \(fit.outputs) output(s) × \(fit.features) features (state + bias) solved from \(fit.rows) "
                + "\(task.targetUnit) rows in \(f(fit.seconds, 2)) s; reservoir spectral radius \(radii)")
        }
        try validate()
        let last = try saveCheckpoint(best: true)
        try finishCheckpoints()
        let summary = RunSummary(steps: 1, finalTrainLoss: .nan, bestValidLoss: trainer.progress.bestValidLoss,
                                 lastCheckpoint: last, stoppedBySignal: false, skippedSteps: 0,
                                 seconds: monotonicSeconds() - start)
        if isRoot {
            logLine("done: echo state readout in \(duration(summary.seconds)), valid loss \(f(summary.bestValidLoss, 4))"
                + (last.map { ", checkpoint \($0)" } ?? ""))
        }
        try? metrics?.close()
        tensorBoard?.close()
        directory?.lock?.release()
        return summary
    }
}

/// Fixed-point formatting.
func f(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    return String(format: "%.\(digits)f", x)
}

/// "1h02m", "3m05s", "12s".
func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h" + String(format: "%02dm", (s % 3600) / 60) }
    if s >= 60 { return "\(s / 60)m" + String(format: "%02ds", s % 60) }
    return "\(s)s"
}
