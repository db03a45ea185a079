// Weights in and out of other frameworks: `unroll export` writes a checkpoint's parameters under
// their PyTorch state-dict names as safetensors (F32) or .npz (<f4), loadable with
// `safetensors.torch.load_file` + `load_state_dict(strict=True)` into the matching torch.nn
// modules (README "Export to PyTorch"); `--init-from F.safetensors` reads such a file (from Unroll
// or from PyTorch) into a new run, checking every name, shape and dtype against the run's layout
// and listing all mismatches, like load_state_dict(strict=True).
import Foundation
import UnrollData
import UnrollModels

/// Output formats of `unroll export`.
public enum ExportFormat: String, CaseIterable, Sendable {
    case safetensors, npz
}

/// Exporting a checkpoint's parameters and importing safetensors weights.
public enum ModelExport {
    /// The checkpoint's parameters in layout order (the state-dict order of the torch modules),
    /// each with its shape.
    /// - Throws: `TrainingError.checkpoint` if the checkpoint lacks a parameter of its layout.
    public static func tensors(of content: CheckpointContent, file: String) throws -> [(name: String, tensor: SafeTensor)] {
        let layout = TrainingTasks.type(for: content.config).parameterLayout(content.config)
        return try layout.views.map { view in
            guard let values = content.parameters[view.name], values.count == view.count else {
                throw TrainingError.checkpoint("\(file): /params/\(view.name): missing or of another shape (expected \(view.shape))")
            }
            return (view.name, SafeTensor(shape: view.shape, values: values))
        }
    }

    /// Writes the parameters of the checkpoint at `checkpoint` to `output` in `format`.
    /// safetensors files carry `__metadata__` {"format": "pt", "unroll.config": the run's
    /// configuration as JSON, "unroll.step": the step}.
    /// - Returns: the tensors written (name, shape), in order.
    /// - Throws: `TrainingError`/`DataError` for an unreadable checkpoint or an unwritable output.
    @discardableResult
    public static func export(checkpoint: String, format: ExportFormat, to output: String) throws -> [(name: String, shape: [Int])] {
        let content = try Checkpoint.load(checkpoint)
        let tensors = try tensors(of: content, file: checkpoint)
        switch format {
        case .safetensors:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let config = String(decoding: try encoder.encode(content.config), as: UTF8.self)
            try SafeTensors.write(tensors, metadata: ["format": "pt", "unroll.config": config,
                                                      "unroll.step": "\(content.progress.step)"], to: output)
        case .npz:
            try NumPyWriter.writeArchive(tensors.map { ($0.name, NumPyArray(dtype: "<f4", shape: $0.tensor.shape,
                                                                              elements: .floats($0.tensor.values))) },
                                         to: output)
        }
        return tensors.map { ($0.name, $0.tensor.shape) }
    }

    /// Every way `tensors` (from a safetensors file) does not fit `layout`, one line each, in the
    /// order: shape mismatches and unsupported dtypes (layout order), missing names (layout order),
    /// unexpected names (sorted) — the checks of PyTorch's `load_state_dict(strict=True)`. Empty
    /// when every tensor fits. A file whose names are the layout's without a module prefix (a bare
    /// `nn.LSTM` state dict) gets a hint.
    public static func mismatches(_ tensors: [String: SafeTensor], layout: ParameterLayout) -> [String] {
        var lines: [String] = [], missing: [String] = []
        let expected = Set(layout.views.map(\.name))
        for view in layout.views {
            guard let t = tensors[view.name] else {
                missing.append("missing tensor \(view.name) (shape \(view.shape))")
                continue
            }
            if t.shape != view.shape {
                lines.append("\(view.name): shape \(t.shape) in the file, the model has \(view.shape)")
            }
        }
        let unexpected = tensors.keys.filter { !expected.contains($0) }.sorted()
        lines += missing
        lines += unexpected.map { "unexpected tensor \($0) (shape \(tensors[$0]?.shape ?? []))" }
        let bare = unexpected.filter { name in layout.views.contains { $0.name.hasSuffix("." + name) } }
        if !bare.isEmpty, bare.count == unexpected.count {
            let prefixes = Set(bare.compactMap { name in
                layout.views.first { $0.name.hasSuffix("." + name) }.map { String($0.name.dropLast(name.count)) }
            }).sorted()
            lines.append("hint: the file's names lack the module prefix \(prefixes.joined(separator: " or ")) "
                         + "(a state dict of the recurrent module alone?); save the whole model's state_dict() "
                         + "(embedding, rnn, decoder/head)")
        }
        return lines
    }

    /// Reads the safetensors file at `path` and copies its tensors into `arena` (a new run's
    /// parameters), converting F64/F16/BF16 to F32.
    /// - Throws: `TrainingError.checkpoint` listing every mismatch (`mismatches`) on its own line
    ///   after a first line naming the file; `DataError` for a file that is not safetensors. The
    ///   arena is unchanged after a throw.
    /// - Returns: the file's `__metadata__`.
    @discardableResult
    public static func initialize(_ arena: ParameterArena, fromSafeTensors path: String) throws -> [String: String] {
        let (tensors, metadata) = try SafeTensors.read(path)
        let problems = mismatches(tensors, layout: arena.layout)
        guard problems.isEmpty else {
            let count = problems.filter { !$0.hasPrefix("hint:") }.count
            throw TrainingError.checkpoint("--init-from \(path): \(count) mismatch(es) with the model's parameters:\n"
                                           + problems.map { "  " + $0 }.joined(separator: "\n"))
        }
        for view in arena.layout.views {
            guard let t = tensors[view.name] else { continue }  // checked above
            arena.parameters(view).update(from: t.values, count: view.count)
        }
        return metadata
    }
}
