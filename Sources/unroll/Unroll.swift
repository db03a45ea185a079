// The `unroll` command line: a root command whose subcommands build a configuration, call the
// library and map errors to exit codes. Process-wide settings come before anything else runs:
// SIGXFSZ ignored, HDF5's at-exit clean-up off, OpenBLAS settings fixed.
import ArgumentParser
import Foundation
import UnrollData
import UnrollKernels
import UnrollTraining

@main
struct Unroll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unroll",
        abstract: "Distributed data-parallel TBPTT training of recurrent networks.",
        discussion: examples(
            "unroll prepare synthetic --task arith --output arith.h5",
            "mpirun -np 2 unroll train --data arith.h5 --steps 300 \\\n      --checkpoint-dir runs/a",
            "unroll eval --checkpoint runs/a/best.h5 --json"),
        version: UnrollVersion.string,
        subcommands: [Prepare.self, Train.self, Eval.self, Predict.self, Translate.self, Sample.self, Baseline.self, Inspect.self, Export.self, BenchKernels.self, BenchTrain.self, BenchAllreduce.self])

    static func main() {
        // A write past the file-size limit (ulimit -f) then fails with EFBIG and is reported
        // ("file too large (file-size limit)"), instead of SIGXFSZ killing the process silently
        // and leaving its temporary file behind.
        signal(SIGXFSZ, SIG_IGN)
        // Before any other HDF5 use: after a failed write (disk full) HDF5 1.10's own clean-up at
        // exit would crash on the file it could not close (see HDF5Library.prepareProcess).
        HDF5Library.prepareProcess()
        // Must run before the first BLAS call: may re-exec this binary with OpenBLAS settings.
        BLASEnvironment.prepareProcess(blasThreads: blasThreadsRequested())
        main(nil)
    }

    /// `UNROLL_BLAS_THREADS` raises the BLAS thread count for single-process runs (default 1).
    static func blasThreadsRequested() -> Int {
        guard let text = ProcessInfoLite.environment("UNROLL_BLAS_THREADS"), let n = Int(text), n >= 1 else { return 1 }
        return n
    }
}

/// A help discussion listing example command lines.
func examples(_ lines: String...) -> String {
    "Examples:\n" + lines.map { "  $ " + $0 }.joined(separator: "\n")
}
