// Progress of long `prepare` and `eval` runs on standard error: a bar redrawn in place when
// standard error is a terminal, otherwise a plain line every 10 % (log files and pipes stay
// readable). Rank 0 only; standard output keeps the results (and `--json`) clean.
import Foundation

/// Shows how far a task of known size has got.
final class ProgressDisplay {
    private let label: String
    private let unit: String
    private let terminal: Bool
    private var lastShown = -1
    private var lastDraw = 0.0

    /// - Parameters:
    ///   - label: what runs (`eval valid`).
    ///   - unit: what is counted (`windows`).
    ///   - enabled: false shows nothing (ranks other than 0).
    init(_ label: String, unit: String, enabled: Bool = true) {
        self.label = label
        self.unit = unit
        terminal = enabled && isatty(STDERR_FILENO) == 1
        self.enabled = enabled
    }

    private let enabled: Bool
    private var lastWidth = 0

    /// Reports `done` of `total`; `note` (e.g. the step just finished) follows the count.
    func update(_ done: Int, of total: Int, note: String = "") {
        guard enabled, total > 0 else { return }
        let percent = min(100, done * 100 / total)
        if terminal {
            let now = Date().timeIntervalSinceReferenceDate
            guard done == total || now - lastDraw >= 0.1 else { return }
            lastDraw = now
            let width = 30, filled = width * percent / 100
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = "\(label) \(bar) \(percent)% (\(done)/\(total) \(unit))" + (note.isEmpty ? "" : " \(note)")
            let pad = String(repeating: " ", count: max(0, lastWidth - line.count))
            lastWidth = line.count
            write("\r" + line + pad + (done == total ? "\n" : ""))
        } else if percent / 10 > lastShown / 10 || (done == total && lastShown < 100) {
            lastShown = percent
            write("\(label): \(percent)% (\(done)/\(total) \(unit))" + (note.isEmpty ? "" : " \(note)") + "\n")
        }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
