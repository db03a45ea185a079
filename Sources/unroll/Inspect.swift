// `unroll inspect`: validates a dataset file and prints what it holds.
import ArgumentParser
import UnrollData
import UnrollDistributed
import UnrollTraining

/// `unroll inspect DATA.h5`.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a dataset or checkpoint file and describe what it holds.",
        discussion: examples("unroll inspect shakespeare.h5", "unroll inspect runs/a/latest.h5"))

    @Argument(help: "Dataset or checkpoint file (HDF5).")
    var path: String

    @Flag(help: "Also read every token (checking its id against the vocabulary size) or feature (checking it is finite).")
    var scan = false

    func run() throws {
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            if Checkpoint.isCheckpoint(path) {
                print(try Checkpoint.describe(path))
            } else {
                print(try DatasetInspector.describe(path, scan: scan))
            }
        }
    }
}
