// The swift-log handler (level filtering, rank prefix, level tags) and the Codable metrics
// records (escaping of quotes and backslashes, null for non-finite numbers, the keys of the old
// hand-built lines).
import Foundation
import Logging
import Testing
import UnrollTraining

/// Collects the lines a handler writes.
final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var all: [String] { lock.lock(); defer { lock.unlock() }; return stored }
    func append(_ s: String) { lock.lock(); stored.append(s); lock.unlock() }
}

@Suite struct LogHandlerTests {
    func logger(_ level: Logger.Level, rank: Int = 0, worldSize: Int = 1) -> (Logger, Lines) {
        let lines = Lines()
        let logger = Logger(label: "test") { _ in
            UnrollLogHandler(level: level, rank: rank, worldSize: worldSize, write: { lines.append($0) })
        }
        return (logger, lines)
    }

    @Test func levelFiltersMessages() {
        let (log, lines) = logger(.warning)
        log.debug("d")
        log.info("checkpoint x")
        log.notice("notice: n")
        log.warning("w")
        log.error("e")
        #expect(lines.all == ["warning: w\n", "error: e\n"])
    }

    @Test func infoIsWrittenWithoutTagAndTraceNeedsTrace() {
        let (log, lines) = logger(.info)
        log.trace("t")
        log.info("checkpoint a.h5 in 0.01 s")
        log.notice("notice: --lr changed")
        #expect(lines.all == ["checkpoint a.h5 in 0.01 s\n", "notice: --lr changed\n"])
        let (verbose, all) = logger(.trace)
        verbose.trace("t")
        #expect(all.all == ["debug: t\n"])
    }

    @Test func otherRanksOfAJobArePrefixed() {
        let (log1, lines1) = logger(.info, rank: 1, worldSize: 2)
        log1.error("boom")
        #expect(lines1.all == ["[rank 1] error: boom\n"])
        let (log0, lines0) = logger(.info, rank: 0, worldSize: 2)
        log0.info("x")
        #expect(lines0.all == ["x\n"])
    }
}

@Suite struct MetricsRecordTests {
    func object(_ line: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func trainRecordHasTheOldKeysAndNullForNaN() throws {
        let r = TrainRecord(step: 3, epoch: 1, loss: .init(2.5), gradNorm: .init(.nan), clipped: false, skipped: true,
                            lr: .init(0.1), tokens: 512, stepSeconds: .init(0.25), computeSeconds: .init(0.2),
                            communicationSeconds: .init(0.04), ioSeconds: .init(.infinity))
        let line = try JSONLines.line(r)
        #expect(!line.contains("\n"))
        let o = try object(line)
        #expect(Set(o.keys) == ["kind", "step", "epoch", "loss", "grad_norm", "clipped", "skipped", "lr", "tokens",
                                "step_s", "compute_s", "comm_s", "io_s"])
        #expect(o["kind"] as? String == "train")
        #expect(o["grad_norm"] is NSNull && o["io_s"] is NSNull)
        #expect(o["loss"] as? Double == 2.5)
        let back = try JSONDecoder().decode(TrainRecord.self, from: Data(line.utf8))
        #expect(back.step == 3 && back.skipped && back.gradNorm.value.isNaN && back.loss.value == 2.5)
    }

    @Test func validRecordEscapesFigureNamesAndKeepsFigures() throws {
        let weird = #"acc "quoted" \ back"#
        let r = ValidRecord(step: 10, epoch: 2, loss: 1.25, figures: [("perplexity", 3.49), (weird, 0.5)], tokens: 99, best: true)
        let o = try object(try JSONLines.line(r))
        #expect(o["kind"] as? String == "valid")
        #expect(o["perplexity"] as? Double == 3.49)
        #expect(o[weird] as? Double == 0.5)
        #expect(o["best"] as? Bool == true && o["tokens"] as? Int == 99)
    }

    @Test func pathsWithQuotesAndBackslashesRoundTrip() throws {
        struct Report: Codable, Equatable { var checkpoint: String; var data: String }
        let r = Report(checkpoint: #"/tmp/we"ird\dir/c/latest.h5"#, data: "/tmp/x\"\\\n.h5")
        let line = try JSONLines.line(r)
        #expect(!line.contains("\n"))
        #expect(try JSONDecoder().decode(Report.self, from: Data(line.utf8)) == r)
    }
}
