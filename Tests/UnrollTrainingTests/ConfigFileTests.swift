// Configuration files (JSON and TOML) turn into command-line arguments.
import Foundation
import Testing
import UnrollTraining

@Suite struct ConfigFileTests {
    func write(_ text: String, _ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unroll-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func tomlBecomesArguments() throws {
        let path = try write("""
            # comment
            data = "d.h5"  # trailing comment
            [model]
            cell = 'lstm'
            hidden_size = 1_024
            forget-bias = true
            dropout = 0.5
            tie = false
            """, "c.toml")
        #expect(try ConfigFile.arguments(fromFile: path) ==
                ["--data", "d.h5", "--cell", "lstm", "--hidden-size", "1024", "--forget-bias", "--dropout", "0.5", "--no-tie"])
    }

    @Test func jsonBecomesArguments() throws {
        let path = try write(#"{"data": "d.h5", "model": {"layers": 2, "forget-bias": true}, "lr": 0.5}"#, "c.json")
        let args = try ConfigFile.arguments(fromFile: path)
        #expect(args.contains("--forget-bias"))
        #expect(args.joined(separator: " ").contains("--layers 2"))
        #expect(args.joined(separator: " ").contains("--lr 0.5"))
        #expect(args.joined(separator: " ").contains("--data d.h5"))
    }

    @Test func badLinesNameFileAndLine() throws {
        let path = try write("data = \"x\"\ncell = lstm\n", "bad.toml")
        #expect {
            try ConfigFile.arguments(fromFile: path)
        } throws: { error in
            "\(error)".contains("bad.toml:2: cell") && !"\(error)".contains("\n")
        }
        #expect(throws: TrainingError.self) { try ConfigFile.arguments(fromFile: path + ".missing") }
    }
}
