// Progress of `unroll prepare`: the preparers count their steps (reading an input file, tokenizing
// or generating a split, writing the file) and hand each one to a caller's handler, which the CLI
// draws as a bar on a terminal or as plain lines. Nothing is printed here.

/// Receives how far a preparation has got, in steps; called on the preparing thread.
public final class PrepareProgress {
    /// `done` of `total` steps are finished; `stage` names the step just finished.
    public typealias Handler = (_ done: Int, _ total: Int, _ stage: String) -> Void

    private let handler: Handler
    private(set) var done = 0
    private(set) var total = 0

    /// - Parameter handler: called once when the steps are known (0 done) and after every step.
    public init(_ handler: @escaping Handler) {
        self.handler = handler
    }

    /// Announces `steps` more steps still to come (a preparer learns some counts only as it reads).
    func expect(_ steps: Int) {
        total += steps
        handler(done, total, "")
    }

    /// Marks one step finished.
    func step(_ stage: String) {
        done += 1
        total = max(total, done)
        handler(done, total, stage)
    }
}

extension Optional where Wrapped == PrepareProgress {
    /// `expect` on a progress that may be absent.
    func expect(_ steps: Int) { self?.expect(steps) }
    /// `step` on a progress that may be absent.
    func step(_ stage: String) { self?.step(stage) }
}
