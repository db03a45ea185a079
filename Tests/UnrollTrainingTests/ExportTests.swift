// `unroll export` and `--init-from F.safetensors`: the safetensors header parsed in Swift (JSON,
// offsets contiguous from 0, F32, shapes and order of the layout, metadata), values bit-identical
// to the checkpoint's, .npz read back with the NumPy reader, F16/BF16/F64 converted on read, a new
// trainer initialised from the export, every mismatch listed on its own line — and, with a Python
// that has torch and safetensors, PyTorch loading the export with load_state_dict(strict=True)
// (reproducing Unroll's logits) and Unroll loading a state dict PyTorch saved (reproducing torch's).
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

@Suite struct ExportTests {
    typealias F = CheckpointFixtures

    @Test func safetensorsExportHasTheLayoutsNamesShapesAndValues() throws {
        let dir = try CheckpointScratch("exportST")
        let (path, t) = try F.savedCheckpoint(in: dir, cell: .gru, steps: 2)
        let out = dir.file("m.safetensors")
        try ModelExport.export(checkpoint: path, format: .safetensors, to: out)
        let data = try #require(FileManager.default.contents(atPath: out))
        let n = data.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect(n % 8 == 0 && data[8] == UInt8(ascii: "{"))
        let (entries, metadata, start) = try SafeTensors.parseHeader(data, file: out)
        let layout = t.task.arena.layout
        #expect(entries.map(\.name) == layout.views.map(\.name))
        #expect(entries.map(\.shape) == layout.views.map(\.shape))
        #expect(entries.allSatisfy { $0.dtype == "F32" })
        #expect(entries.first?.begin == 0 && entries.last?.end == data.count - start && start == 8 + n)
        #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.end == $1.begin })
        #expect(metadata["format"] == "pt" && metadata["unroll.step"] == "2")
        let config = try JSONDecoder().decode(TrainingConfig.self, from: Data((metadata["unroll.config"] ?? "").utf8))
        #expect(config.model == t.config.model)
        let (tensors, _) = try SafeTensors.read(out)
        for view in layout.views {
            let expected = Array(UnsafeBufferPointer(start: t.task.arena.parameters(view), count: view.count))
            #expect(tensors[view.name]?.values.map(\.bitPattern) == expected.map(\.bitPattern), "\(view.name)")
        }
    }

    @Test func npzExportReadsBackWithTheNumPyReader() throws {
        let dir = try CheckpointScratch("exportNPZ")
        let (path, t) = try F.savedCheckpoint(in: dir, steps: 1)
        let out = dir.file("m.npz")
        try ModelExport.export(checkpoint: path, format: .npz, to: out)
        let layout = t.task.arena.layout
        let arrays = try NumPyReader.readArchive(out, names: layout.views.map(\.name))
        #expect(arrays.count == layout.views.count)
        for view in layout.views {
            let expected = Array(UnsafeBufferPointer(start: t.task.arena.parameters(view), count: view.count))
            #expect(arrays[view.name]?.dtype == "<f4" && arrays[view.name]?.shape == view.shape)
            #expect(arrays[view.name]?.elements == .floats(expected), "\(view.name)")
        }
        #expect(try dir.contents() == ["arith.h5", "ck.h5", "m.npz"])  // no temporary file left
    }

    @Test func halfBFloatAndDoubleTensorsAreConvertedOnRead() throws {
        let dir = try CheckpointScratch("exportDtypes")
        // 1.0, -2.0, 0.5 as F16 (0x3C00, 0xC000, 0x3800), BF16 (0x3F80, 0xC000, 0x3F00), F64.
        let header = #"{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[6,12]},"#
            + #""c":{"dtype":"F64","shape":[1,3],"data_offsets":[12,36]}}"#
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for h: UInt16 in [0x3C00, 0xC000, 0x3800, 0x3F80, 0xC000, 0x3F00] { withUnsafeBytes(of: h.littleEndian) { data.append(contentsOf: $0) } }
        for d in [1.0, -2.0, 0.5] { withUnsafeBytes(of: d.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        let path = dir.file("d.safetensors")
        try data.write(to: URL(fileURLWithPath: path))
        let (tensors, _) = try SafeTensors.read(path)
        #expect(tensors["a"]?.values == [1, -2, 0.5] && tensors["b"]?.values == [1, -2, 0.5])
        #expect(tensors["c"]?.values == [1, -2, 0.5] && tensors["c"]?.shape == [1, 3])
        // Offsets that leave a gap, and an integer tensor, are refused with the entry's name.
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        var bad = Data()
        withUnsafeBytes(of: UInt64(gap.utf8.count).littleEndian) { bad.append(contentsOf: $0) }
        bad.append(contentsOf: Array(gap.utf8) + [UInt8](repeating: 0, count: 8))
        let message = F.message { _ = try SafeTensors.parseHeader(bad, file: "g.safetensors") }
        #expect(message?.contains("g.safetensors: a: expected data starting at byte 0") == true, "\(message ?? "")")
    }

    @Test func initFromSafeTensorsCopiesEveryParameter() throws {
        let dir = try CheckpointScratch("exportInit")
        let (path, t) = try F.savedCheckpoint(in: dir, steps: 3)
        let out = dir.file("m.safetensors")
        try ModelExport.export(checkpoint: path, format: .safetensors, to: out)
        var c = t.config
        c.seed = 99
        let fresh = try F.trainer(c)
        #expect(fresh.task.arena.parameters.array != t.task.arena.parameters.array)
        let metadata = try ModelExport.initialize(fresh.task.arena, fromSafeTensors: out)
        #expect(metadata["unroll.step"] == "3")
        #expect(fresh.task.arena.parameters.array.map(\.bitPattern) == t.task.arena.parameters.array.map(\.bitPattern))
    }

    @Test func initFromSafeTensorsListsEveryMismatchOnItsOwnLine() throws {
        let dir = try CheckpointScratch("exportMismatch")
        let (_, t) = try F.savedCheckpoint(in: dir, steps: 0)
        let layout = t.task.arena.layout
        var tensors: [(name: String, tensor: SafeTensor)] = layout.views.map { ($0.name, SafeTensor(shape: $0.shape, values: .init(repeating: 0, count: $0.count))) }
        tensors.removeAll { $0.name == "decoder.bias" }
        let h = t.config.model.hiddenSize
        tensors[1] = (tensors[1].name, SafeTensor(shape: [4 * h + 1, 5], values: .init(repeating: 0, count: (4 * h + 1) * 5)))
        tensors.append(("rnn.weight_ih_l7", SafeTensor(shape: [2], values: [0, 0])))
        let path = dir.file("bad.safetensors")
        try SafeTensors.write(tensors, to: path)
        let before = t.task.arena.parameters.array
        let message = F.message { try ModelExport.initialize(t.task.arena, fromSafeTensors: path) } ?? ""
        let lines = message.split(separator: "\n").map(String.init)
        #expect(lines == ["--init-from \(path): 3 mismatch(es) with the model's parameters:",
                          "  \(layout.views[1].name): shape [\(4 * h + 1), 5] in the file, the model has \(layout.views[1].shape)",
                          "  missing tensor decoder.bias (shape [\(t.config.model.vocabSize)])",
                          "  unexpected tensor rnn.weight_ih_l7 (shape [2])"], "\(message)")
        #expect(t.task.arena.parameters.array == before)  // nothing copied
        // A bare nn.LSTM state dict (names without "rnn."): every name reported, and a hint.
        let bare = layout.views.filter { $0.name.hasPrefix("rnn.") }
            .map { (String($0.name.dropFirst(4)), SafeTensor(shape: $0.shape, values: .init(repeating: 0, count: $0.count))) }
        try SafeTensors.write(bare, to: dir.file("lstm.safetensors"))
        let hint = F.message { try ModelExport.initialize(t.task.arena, fromSafeTensors: dir.file("lstm.safetensors")) } ?? ""
        #expect(hint.contains("unexpected tensor weight_ih_l0") && hint.contains("missing tensor rnn.weight_ih_l0"))
        #expect(hint.split(separator: "\n").last?.contains("hint: the file's names lack the module prefix rnn.") == true, "\(hint)")
    }

    /// Unroll's logits for `tokens` of one stream from a zero state, (T, V).
    static func unrollLogits(_ t: Trainer, _ tokens: [Int32]) -> [[Float]] {
        let m = t.config.model, V = m.vocabSize, T = tokens.count
        let state = RecurrentState(config: m, batch: 1)
        tokens.withUnsafeBufferPointer { t.model.forward(tokens: $0.baseAddress!, steps: T, batch: 1, state: state, dropout: nil) }
        return (0..<T).map { s in Array(UnsafeBufferPointer(start: t.model.lastLogits + s * V, count: V)) }
    }

    @Test(arguments: [CellKind.lstm, .gru])
    func pytorchLoadsTheExportStrictlyAndReproducesUnrollLogits(cell: CellKind) throws {
        let (python, reason) = InteropPython.find("torch, safetensors")
        guard let python else {
            print("SKIPPED pytorchLoadsTheExportStrictlyAndReproducesUnrollLogits(\(cell)): \(reason)")
            return
        }
        let dir = try CheckpointScratch("exportTorch\(cell)")
        let (path, t) = try F.savedCheckpoint(in: dir, cell: cell, steps: 3)
        let out = dir.file("m.safetensors")
        try ModelExport.export(checkpoint: path, format: .safetensors, to: out)
        let V = t.config.model.vocabSize
        let cases = [3, 5].map { seed in
            let tokens = (0..<6).map { Int32(($0 * 7 + seed * 3) % V) }
            return CheckpointTorchInteropTests.Case(tokens: tokens, stream: nil, logits: Self.unrollLogits(t, tokens))
        }
        try JSONEncoder().encode(cases).write(to: URL(fileURLWithPath: dir.file("cases.json")))
        let (status, output) = try CheckpointTorchInteropTests.run(python, [InteropPython.script, "check", out, dir.file("cases.json")])
        #expect(status == 0 && output.hasPrefix("OK"), "safetensors_interop.py check failed (\(status)):\n\(output)")
        if status == 0 { print("safetensors_interop.py: \(output.trimmingCharacters(in: .whitespacesAndNewlines))") }
    }

    @Test(arguments: [CellKind.lstm, .gru])
    func unrollInitialisesFromAPyTorchStateDictAndReproducesTorchLogits(cell: CellKind) throws {
        let (python, reason) = InteropPython.find("torch, safetensors")
        guard let python else {
            print("SKIPPED unrollInitialisesFromAPyTorchStateDictAndReproducesTorchLogits(\(cell)): \(reason)")
            return
        }
        let dir = try CheckpointScratch("exportFromTorch\(cell)")
        let data = dir.file("arith.h5")
        let vocab = try F.makeArith(data)
        let t = try F.trainer(F.config(data: data, vocab: vocab, cell: cell))
        let m = t.config.model
        let file = dir.file("torch.safetensors"), casesPath = dir.file("cases.json")
        let (status, output) = try CheckpointTorchInteropTests.run(
            python, [InteropPython.script, "make", file, cell.rawValue, "\(m.vocabSize)", "\(m.embeddingSize)",
                     "\(m.hiddenSize)", "\(m.layers)", casesPath])
        try #require(status == 0, "safetensors_interop.py make failed (\(status)):\n\(output)")
        try ModelExport.initialize(t.task.arena, fromSafeTensors: file)
        let cases = try JSONDecoder().decode([CheckpointTorchInteropTests.Case].self, from: Data(contentsOf: URL(fileURLWithPath: casesPath)))
        var worst: Float = 0
        for c in cases {
            let ours = Self.unrollLogits(t, c.tokens)
            for (a, b) in zip(ours.joined(), c.logits.joined()) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
        }
        #expect(cases.count == 2 && worst < 1e-4, "max relative logit difference \(worst)")
        print("--init-from a PyTorch \(cell) state dict: max relative |logit difference| \(worst)")
    }
}
