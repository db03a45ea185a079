// Cross-check against PyTorch: Fixtures/sequence_golden.json holds 2-layer bidirectional LSTM and
// GRU classifiers over packed variable-length sequences (pack_padded_sequence), pooled by h_n of
// the top layer or by the mean over valid steps, with their weights, inputs and what torch computed
// in float64 (logits, summed cross-entropy with one row masked out, every parameter gradient).
// Made by Tests/Reference/make_sequence_golden.py; this test needs no torch.
import Foundation
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

private struct Tensor: Decodable {
    let shape: [Int]
    let data: [Double]
}

private struct Expected: Decodable {
    let logits: Tensor
    let loss_sum: Double
    let grads: [String: Tensor]
}

private struct SequenceGoldenCase: Decodable {
    let name: String
    let cell: String
    let pool: String
    let layers: Int
    let bidirectional: Bool
    let vocab_size: Int
    let input_size: Int
    let hidden_size: Int
    let num_classes: Int
    let batch: Int
    let steps: Int
    let lengths: [Int]
    let row_mask: [UInt8]
    let tokens: [Int32]?
    let features: [Double]?
    let targets: [Int32]
    let params: [String: Tensor]
    let expected: Expected
}

private struct SequenceGoldenFile: Decodable {
    let cases: [SequenceGoldenCase]
}

private func loadSequenceGolden() throws -> SequenceGoldenFile {
    guard let url = Bundle.module.url(forResource: "sequence_golden", withExtension: "json",
                                      subdirectory: "Fixtures") else {
        throw CocoaError(.fileNoSuchFile)
    }
    return try JSONDecoder().decode(SequenceGoldenFile.self, from: Data(contentsOf: url))
}

@Suite struct SequenceGoldenTests {
    @Test(arguments: ["lstm_last_tokens", "gru_last_tokens", "lstm_mean_features", "gru_mean_tokens"])
    func sequenceClassifierMatchesPyTorch(caseName: String) throws {
        let golden = try loadSequenceGolden()
        let g = try #require(golden.cases.first { $0.name == caseName })
        let cell = try #require(CellKind(rawValue: g.cell))
        let pool = try #require(PoolKind(rawValue: g.pool))
        let config = SequenceModelConfig(cell: cell, vocabSize: g.vocab_size, inputSize: g.input_size,
                                         hiddenSize: g.hidden_size, layers: g.layers, bidirectional: g.bidirectional,
                                         pool: pool, outputKind: .classes, targetDim: 1, numClasses: g.num_classes)
        let arena = ParameterArena(layout: .sequenceModel(config))
        #expect(Set(arena.layout.views.map(\.name)) == Set(g.params.keys))
        for view in arena.layout.views {
            let t = try #require(g.params[view.name])
            #expect(t.shape == view.shape, "\(view.name) shape")
            for (i, v) in t.data.enumerated() { arena.parameters(view)[i] = Float(v) }
        }
        let T = g.steps, B = g.batch
        let model = SequenceModel(config: config, arena: arena, maxSteps: T, maxBatch: B)
        // Padded tokens become ids no embedding has: packed semantics must never read them.
        var tokens = g.tokens ?? []
        for t in 0..<T { for i in 0..<B where t >= g.lengths[i] && !tokens.isEmpty { tokens[t * B + i] = -1 } }
        let features = (g.features ?? []).map(Float.init)
        tokens.withUnsafeBufferPointer { tp in
            features.withUnsafeBufferPointer { fp in
                model.forward(tokens: g.tokens == nil ? nil : tp.baseAddress, features: g.features == nil ? nil : fp.baseAddress,
                              steps: T, batch: B, lengths: g.lengths, state: nil, dropout: nil)
            }
        }
        let C = g.num_classes
        let tol = (rtol: 1e-4, atol: 1e-5)
        let logits = Array(UnsafeBufferPointer(start: model.outputs, count: B * C))
        let logitCheck = closeness(logits, g.expected.logits.data, rtol: tol.rtol, atol: tol.atol)
        #expect(logitCheck.ratio <= 1, "\(caseName) logits at \(logitCheck.index)")

        arena.zeroGradients()
        var dLogits = [Float](repeating: 0, count: B * C)
        let (lossSum, count) = SequenceLoss.crossEntropy(logits: model.outputs, targets: g.targets, rowMask: g.row_mask,
                                                         rows: B, targetDim: 1, classes: C, gradScale: 1,
                                                         dLogits: &dLogits)
        #expect(count == g.row_mask.filter { $0 != 0 }.count)
        #expect(abs(lossSum - g.expected.loss_sum) <= 1e-4 * abs(g.expected.loss_sum))
        var reported: [Int] = []
        model.backward(dOutputs: dLogits, gradientsReady: { reported.append($0) }, progress: nil)
        // Head first, then down the arena, the last call at offset 0.
        #expect(reported.first == arena.view("head.weight").offset && reported.last == 0)
        #expect(zip(reported, reported.dropFirst()).allSatisfy { $0.0 >= $0.1 }, "\(reported)")
        for view in arena.layout.views {
            let expected = try #require(g.expected.grads[view.name])
            let got = Array(UnsafeBufferPointer(start: arena.gradients(view), count: view.count))
            let r = closeness(got, expected.data, rtol: tol.rtol, atol: tol.atol)
            #expect(r.ratio <= 1, "\(caseName) grad \(view.name) worst at \(r.index): \(got[max(r.index, 0)]) vs \(expected.data[max(r.index, 0)])")
        }
    }
}
