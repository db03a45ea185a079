// Entry point of the `unroll` command-line tool: one root command with a subcommand per task.
import ArgumentParser

/// The `unroll` root command.
@main
struct Unroll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unroll",
        abstract: "Data-parallel truncated-BPTT training of recurrent networks.",
        subcommands: [Prepare.self, Inspect.self])
}
