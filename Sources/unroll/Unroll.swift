// The `unroll` command line: a root command whose subcommands build a configuration, call the
// library and map errors to exit codes. OpenBLAS settings are fixed before anything else runs.
import ArgumentParser
import UnrollKernels
import UnrollTraining

@main
struct Unroll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unroll",
        abstract: "Distributed data-parallel TBPTT training of recurrent networks.",
        version: UnrollVersion.string,
        subcommands: [Prepare.self, Train.self, Eval.self, Sample.self, Baseline.self, Inspect.self, BenchKernels.self, BenchTrain.self])

    static func main() {
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
