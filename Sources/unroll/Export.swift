// `unroll export`: a checkpoint's parameters as a safetensors or .npz file under their PyTorch
// state-dict names (see ModelExport and README "Export to PyTorch"), for torch.nn modules,
// NumPy or any framework that reads those formats. One process; no MPI collectives.
import ArgumentParser
import Foundation
import UnrollDistributed
import UnrollTraining

extension ExportFormat: ExpressibleByArgument {}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's parameters as safetensors or .npz under PyTorch state-dict names.")

    @Option(help: "Checkpoint file (HDF5, from `unroll train`).")
    var checkpoint: String
    @Option(help: "safetensors or npz (default: from the output's extension, else safetensors).")
    var format: ExportFormat?
    @Option(help: "Output file, written atomically (replaced if it exists).")
    var output: String

    /// The format asked for, else the one the output's extension names, else safetensors.
    var resolvedFormat: ExportFormat {
        format ?? (output.lowercased().hasSuffix(".npz") ? .npz : .safetensors)
    }

    func run() throws {
        try runReportingErrors(communicator: SingleProcessCommunicator()) {
            let written = try ModelExport.export(checkpoint: checkpoint, format: resolvedFormat, to: output)
            let count = written.reduce(0) { $0 + $1.shape.reduce(1, *) }
            print("\(output): \(resolvedFormat.rawValue), \(written.count) tensors, \(count) parameters (float32)")
            for (name, shape) in written { print("  \(name) \(shape)") }
        }
    }
}
