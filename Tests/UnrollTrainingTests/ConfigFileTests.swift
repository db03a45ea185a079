// Configuration files (JSON and TOML) turn into command-line arguments: tables, inline tables and
// dotted keys only group keys; arrays, duplicate keys (also across tables and `_`/`-` spellings)
// and syntax errors are refused in one line naming the file and the key.
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
                ["--cell", "lstm", "--data", "d.h5", "--dropout", "0.5", "--forget-bias", "--hidden-size", "1024", "--no-tie"])
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
            "\(error)".contains("bad.toml:2:") && !"\(error)".contains("\n")
        }
        #expect(throws: TrainingError.self) { try ConfigFile.arguments(fromFile: path + ".missing") }
    }

    @Test func inlineTablesAndDottedKeysOnlyGroup() throws {
        let path = try write("""
            model = { cell = "gru", layers = 3 }
            optim.lr = 0.25
            [data]
            "batch-size" = 16
            path-with-quote = 'a"b\\c.h5'
            """, "g.toml")
        let entries = try ConfigFile.entries(fromFile: path)
        #expect(entries.map(\.path) == ["data.batch-size", "model.cell",
                                         "model.layers", "optim.lr", "data.path-with-quote"])
        #expect(entries.flatMap(\.arguments) == ["--batch-size", "16", "--cell", "gru", "--layers", "3", "--lr", "0.25",
                                                  "--path-with-quote", #"a"b\c.h5"#])
    }

    @Test(arguments: [
        ("lr = 1\nlr = 2\n", "lr"),                                  // TOML itself refuses it
        ("[a]\nlr = 1\n[b]\nlr = 2\n", "b.lr"),                     // two tables, one option
        ("batch_size = 1\nbatch-size = 2\n", "batch"),               // two spellings, one option
        ("model.hidden = 1\n[model]\nhidden = 2\n", "model"),     // TOML: table defined twice
    ])
    func duplicateTomlKeysAreRefusedByName(text: String, key: String) throws {
        let path = try write(text, "dup.toml")
        #expect {
            try ConfigFile.arguments(fromFile: path)
        } throws: { error in
            "\(error)".contains("dup.toml") && "\(error)".contains(key) && !"\(error)".contains("\n")
        }
    }

    @Test(arguments: [
        (#"{"lr": 1, "lr": 2}"#, "duplicate key 'lr'"),
        (#"{"model": {"hidden": 1, "hidden": 2}}"#, "duplicate key 'model.hidden'"),
        (#"{"model": {"hidden": 1}, "hidden": 2}"#, "duplicate key"),
        (#"{"lr": [1, 2]}"#, "lr: an array"),
    ])
    func jsonDuplicatesAndArraysAreRefusedByName(text: String, message: String) throws {
        let path = try write(text, "c.json")
        #expect {
            try ConfigFile.arguments(fromFile: path)
        } throws: { error in
            "\(error)".contains("c.json") && "\(error)".contains(message)
        }
    }

    @Test func tomlArraysAndDatesAreRefusedByName() throws {
        let arrays = try write("[model]\nsizes = [1, 2]\n", "a.toml")
        #expect { try ConfigFile.arguments(fromFile: arrays) } throws: { "\($0)".contains("a.toml: model.sizes: an array") }
        let dates = try write("when = 1979-05-27\n", "d.toml")
        #expect { try ConfigFile.arguments(fromFile: dates) } throws: { "\($0)".contains("d.toml: when: expected a string") }
    }

    @Test func jsonStringsWithQuotesAndBackslashesSurvive() throws {
        let path = try write(#"{"data": "a\"b\\c.h5", "checkpoint_dir": "x/y"}"#, "q.json")
        #expect(try ConfigFile.arguments(fromFile: path) == ["--checkpoint-dir", "x/y", "--data", #"a"b\c.h5"#])
    }
}
