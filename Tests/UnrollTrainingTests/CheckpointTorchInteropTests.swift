// PyTorch interop of checkpoint format v1: the test trains a little, saves a checkpoint, computes
// Unroll's logits for a few token windows (from a zero state and from the carried state of a
// stream), writes them as JSON next to the checkpoint and runs Tests/Reference/torch_interop.py,
// which loads `/params` into torch.nn.Embedding / nn.LSTM|GRU|RNN / nn.Linear with the snippet of
// Sources/UnrollTraining/CheckpointFormat.md and compares logits.
//
// Needs a Python with torch and h5py: $UNROLL_TORCH_PYTHON, else <repo>/.venv-torch/bin/python,
// else python3. Without one the test prints why and returns (it does not pass silently as a
// comparison: the printed line says it was skipped).
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

@Suite struct CheckpointTorchInteropTests {
    typealias F = CheckpointFixtures

    /// One comparison case of the JSON file read by torch_interop.py.
    struct Case: Codable {
        /// Input token ids, one stream, T steps.
        var tokens: [Int32]
        /// Global stream whose carried state (/hidden) is the initial state; nil = zeros.
        var stream: Int?
        /// (T, V) logits Unroll computes.
        var logits: [[Float]]
    }

    /// Probed once per test process (importing torch takes seconds).
    static let python = torchPython()

    /// A Python that imports torch and h5py, or the reason there is none.
    static func torchPython() -> (path: String?, reason: String) {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["UNROLL_TORCH_PYTHON"], !env.isEmpty { candidates.append(env) }
        candidates.append(F.packageRoot + "/.venv-torch/bin/python")
        candidates.append("/usr/bin/python3")
        var tried: [String] = []
        for p in candidates {
            guard FileManager.default.isExecutableFile(atPath: p) else {
                tried.append("\(p) (absent)")
                continue
            }
            do {
                let (status, _) = try run(p, ["-c", "import torch, h5py"])
                if status == 0 { return (p, "") }
                tried.append("\(p) (no torch/h5py)")
            } catch {
                tried.append("\(p) (cannot run: \(error))")
            }
        }
        return (nil, "no Python with torch and h5py: tried " + tried.joined(separator: ", ")
                + "; set UNROLL_TORCH_PYTHON")
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Every cell torch.nn has (the leaky, clockwork, Jordan, ESN and tree cells have no torch.nn module).
    @Test(arguments: CellKind.allCases.filter { $0 != .leaky && $0 != .clockwork && $0 != .jordan && $0 != .esn && !$0.isTree })
    func torchModulesLoadParamsAndReproduceUnrollLogits(cell: CellKind) throws {
        let (python, reason) = Self.python
        guard let python else {
            print("SKIPPED torchModulesLoadParamsAndReproduceUnrollLogits(\(cell)): \(reason)")
            return
        }
        let dir = try CheckpointScratch("torch\(cell)")
        let (path, t) = try F.savedCheckpoint(in: dir, cell: cell, optimizer: .adam, steps: 4)
        let m = t.config.model, V = m.vocabSize, H = m.hiddenSize, T = t.config.bptt, B = t.config.batchSize
        var cases: [Case] = []
        for (stream, seed) in [(nil, 3), (2, 5)] as [(Int?, Int)] {
            let tokens = (0..<T).map { Int32(($0 * 7 + seed * 3) % V) }
            let state = RecurrentState(config: m, batch: 1)
            if let stream {
                for k in 0..<m.layers {
                    let from = t.state.layer(k), to = state.layer(k)
                    to.h.update(from: from.h + stream * H, count: H)
                    if let c = to.c, let fc = from.c { c.update(from: fc + stream * H, count: H) }
                }
            }
            tokens.withUnsafeBufferPointer { t.model.forward(tokens: $0.baseAddress!, steps: T, batch: 1, state: state,
                                                              dropout: nil) }
            let logits = (0..<T).map { s in Array(UnsafeBufferPointer(start: t.model.lastLogits + s * V, count: V)) }
            cases.append(Case(tokens: tokens, stream: stream, logits: logits))
        }
        #expect(B > 2)
        let json = dir.file("logits.json")
        try JSONEncoder().encode(cases).write(to: URL(fileURLWithPath: json))
        let script = F.packageRoot + "/Tests/Reference/torch_interop.py"
        let (status, output) = try Self.run(python, [script, path, json])
        #expect(status == 0, "torch_interop.py failed (\(status)):\n\(output)")
        #expect(output.hasPrefix("OK"), "\(output)")
        if status == 0 { print("torch_interop.py: \(output.trimmingCharacters(in: .whitespacesAndNewlines))") }
    }
}
