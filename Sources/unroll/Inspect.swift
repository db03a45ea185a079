// `unroll inspect`: validates a dataset file and prints what it holds.
import ArgumentParser
import UnrollData

/// `unroll inspect DATA.h5`.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a dataset file and describe its attributes, splits and vocabulary.")

    @Argument(help: "Dataset file (HDF5).")
    var path: String

    @Flag(help: "Also read every token and check its id against the vocabulary size.")
    var scan = false

    func run() throws {
        print(try DatasetInspector.describe(path, scan: scan))
    }
}
