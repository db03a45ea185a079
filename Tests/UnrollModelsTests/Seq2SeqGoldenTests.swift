// Cross-check against PyTorch: Fixtures/seq2seq_golden.json holds a 2-layer bidirectional GRU
// encoder over packed variable-length sources, the tanh bridge, a 2-layer GRU decoder, general
// attention with masked padding, combine and output layers, with weights, inputs (target lengths
// in any order) and what torch computed in float64: the summed cross-entropy and every parameter
// gradient. Made by Tests/Reference/make_seq2seq_golden.py; this test needs no torch.
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
    let count: Int
    let grads: [String: Tensor]
}

private struct Seq2SeqGoldenCase: Decodable {
    let name: String
    let cell: String
    let layers: Int
    let bidirectional: Bool
    let bridge: String
    let attention: String
    let source_vocab_size: Int
    let target_vocab_size: Int
    let embedding_size: Int
    let hidden_size: Int
    let batch: Int
    let source_steps: Int
    let target_steps: Int
    let source_lengths: [Int]
    let target_lengths: [Int]
    let source: [Int32]
    let target_input: [Int32]
    let target_output: [Int32]
    let params: [String: Tensor]
    let expected: Expected
}

private struct Seq2SeqGoldenFile: Decodable {
    let cases: [Seq2SeqGoldenCase]
}

@Suite struct Seq2SeqGoldenTests {
    /// Both decoder paths: batched (teacher forcing) and step by step (a feedPrediction that never
    /// samples).
    @Test(arguments: [false, true])
    func seq2seqMatchesPyTorch(stepPath: Bool) throws {
        let url = try #require(Bundle.module.url(forResource: "seq2seq_golden", withExtension: "json",
                                                 subdirectory: "Fixtures"))
        let golden = try JSONDecoder().decode(Seq2SeqGoldenFile.self, from: Data(contentsOf: url))
        let g = try #require(golden.cases.first)
        let config = Seq2SeqModelConfig(cell: try #require(CellKind(rawValue: g.cell)),
                                        sourceVocabSize: g.source_vocab_size, targetVocabSize: g.target_vocab_size,
                                        embeddingSize: g.embedding_size, hiddenSize: g.hidden_size, layers: g.layers,
                                        bidirectional: g.bidirectional, bridge: try #require(BridgeKind(rawValue: g.bridge)),
                                        attention: try #require(AttentionKind(rawValue: g.attention)))
        let arena = ParameterArena(layout: .seq2seqModel(config))
        #expect(arena.layout.views.map(\.name).sorted() == g.params.keys.sorted())
        for view in arena.layout.views {
            let t = try #require(g.params[view.name])
            #expect(t.shape == view.shape, "\(view.name) shape")
            for (i, v) in t.data.enumerated() { arena.parameters(view)[i] = Float(v) }
        }
        let S = g.source_steps, T = g.target_steps, B = g.batch
        let model = Seq2SeqModel(config: config, arena: arena, maxSourceSteps: S, maxTargetSteps: T, maxBatch: B)
        // Padded ids become −1, which no embedding has: they must never be read.
        var source = g.source, input = g.target_input, output = g.target_output
        for t in 0..<S { for b in 0..<B where t >= g.source_lengths[b] { source[t * B + b] = -1 } }
        for t in 0..<T {
            for b in 0..<B where t >= g.target_lengths[b] {
                input[t * B + b] = -1
                output[t * B + b] = -1
            }
        }
        let r = model.forward(source: source, sourceLengths: g.source_lengths, sourceSteps: S, targetInput: input,
                              targetOutput: output, targetLengths: g.target_lengths, targetSteps: T, batch: B,
                              feedPrediction: stepPath ? { _, _ in false } : nil)
        #expect(r.count == g.expected.count)
        #expect(abs(r.lossSum - g.expected.loss_sum) <= 1e-4 * abs(g.expected.loss_sum),
                "loss \(r.lossSum) vs \(g.expected.loss_sum)")
        // Correct predictions from torch's logits.
        let V = g.target_vocab_size
        var correct = 0
        for t in 0..<T {
            for b in 0..<B where t < g.target_lengths[b] {
                let row = Array(g.expected.logits.data[((t * B + b) * V)..<((t * B + b + 1) * V)])
                if row.firstIndex(of: row.max()!) == Int(output[t * B + b]) { correct += 1 }
            }
        }
        #expect(r.correct == correct)

        arena.zeroGradients()
        var reported: [Int] = []
        model.backward(gradientsReady: { reported.append($0) })
        #expect(reported.first == arena.view("output.weight").offset && reported.last == 0)
        #expect(zip(reported, reported.dropFirst()).allSatisfy { $0.0 >= $0.1 }, "\(reported)")
        for view in arena.layout.views {
            let expected = try #require(g.expected.grads[view.name])
            let got = Array(UnsafeBufferPointer(start: arena.gradients(view), count: view.count))
            let c = closeness(got, expected.data, rtol: 1e-4, atol: 1e-5)
            #expect(c.ratio <= 1, "grad \(view.name) worst at \(c.index): \(got[max(c.index, 0)]) vs \(expected.data[max(c.index, 0)])")
        }
    }
}
