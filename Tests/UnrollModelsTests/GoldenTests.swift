// Cross-check against PyTorch: Fixtures/golden.json holds, for 2-layer Elman (tanh, relu), LSTM and
// GRU language models, the weights, inputs and initial state, and what torch.nn computed in float64
// (logits, loss, final state, every parameter gradient, the initial-state gradient). It is made by
// Tests/Reference/make_golden.py; this test needs no torch.
import Foundation
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

private struct Tensor: Decodable {
    let shape: [Int]
    let data: [Double]
}

private struct StatePair: Decodable {
    let h: Tensor
    let c: Tensor?
}

private struct Expected: Decodable {
    let logits: Tensor
    let xent_sum: Double
    let token_count: Int
    let loss: Double
    let final_state: StatePair
    let grads: [String: Tensor]
    let d_initial_state: StatePair
}

private struct GoldenCase: Decodable {
    let name: String
    let cell: String
    let layers: Int
    let vocab_size: Int
    let embedding_size: Int
    let hidden_size: Int
    let batch: Int
    let bptt: Int
    let tokens: [Int32]
    let targets: [Int32]
    let params: [String: Tensor]
    let initial_state: StatePair
    let final_state_weight: StatePair
    let expected: Expected
}

private struct GoldenFile: Decodable {
    let cases: [GoldenCase]
}

private func loadGolden() throws -> GoldenFile {
    guard let url = Bundle.module.url(forResource: "golden", withExtension: "json", subdirectory: "Fixtures") else {
        throw CocoaError(.fileNoSuchFile)
    }
    return try JSONDecoder().decode(GoldenFile.self, from: Data(contentsOf: url))
}

private func fill(_ buffer: FloatBuffer, _ t: Tensor) {
    precondition(buffer.count == t.data.count, "fixture size mismatch")
    for (i, v) in t.data.enumerated() { buffer[i] = Float(v) }
}

@Suite struct GoldenTests {
    @Test(arguments: ["rnn_tanh", "rnn_relu", "lstm", "gru"])
    func matchesPyTorch(caseName: String) throws {
        let golden = try loadGolden()
        let g = try #require(golden.cases.first { $0.name == caseName })
        let cell = try #require(CellKind(rawValue: g.cell))
        let config = ModelConfig(cell: cell, vocabSize: g.vocab_size, embeddingSize: g.embedding_size,
                                 hiddenSize: g.hidden_size, layers: g.layers)
        let arena = ParameterArena(layout: .languageModel(config))
        // Every arena view is in the fixture under the same PyTorch name and shape, and vice versa.
        #expect(Set(arena.layout.views.map(\.name)) == Set(g.params.keys))
        for view in arena.layout.views {
            let t = try #require(g.params[view.name])
            #expect(t.shape == view.shape, "\(view.name) shape")
            for (i, v) in t.data.enumerated() { arena.parameters(view)[i] = Float(v) }
        }
        let T = g.bptt, B = g.batch
        let model = RecurrentLanguageModel(config: config, arena: arena, maxSteps: T, maxBatch: B)
        let state = RecurrentState(config: config, batch: B)
        fill(state.h, g.initial_state.h)
        if let c = state.c { fill(c, try #require(g.initial_state.c)) }
        let wFinal = RecurrentState(config: config, batch: B)
        fill(wFinal.h, g.final_state_weight.h)
        if let c = wFinal.c { fill(c, try #require(g.final_state_weight.c)) }

        model.forward(tokens: g.tokens, steps: T, batch: B, state: state, dropout: nil)
        let logits = Array(UnsafeBufferPointer(start: model.lastLogits, count: T * B * g.vocab_size))
        let tol = (rtol: 1e-4, atol: 1e-5)
        let logitCheck = closeness(logits, g.expected.logits.data, rtol: tol.rtol, atol: tol.atol)
        #expect(logitCheck.ratio <= 1, "\(caseName) logits at \(logitCheck.index)")
        #expect(closeness(state.h.array, g.expected.final_state.h.data, rtol: tol.rtol, atol: tol.atol).ratio <= 1)
        if let c = state.c {
            #expect(closeness(c.array, try #require(g.expected.final_state.c).data, rtol: tol.rtol,
                              atol: tol.atol).ratio <= 1)
        }

        arena.zeroGradients()
        let dInitial = RecurrentState(config: config, batch: B)
        let (xent, count) = model.backward(targets: g.targets, dFinalState: wFinal, dInitialState: dInitial)
        #expect(count == g.expected.token_count)
        #expect(abs(xent - g.expected.xent_sum) <= 1e-4 * abs(g.expected.xent_sum))
        for view in arena.layout.views {
            let expected = try #require(g.expected.grads[view.name])
            let got = Array(UnsafeBufferPointer(start: arena.gradients(view), count: view.count))
            let r = closeness(got, expected.data, rtol: tol.rtol, atol: tol.atol)
            #expect(r.ratio <= 1, "\(caseName) grad \(view.name) worst at \(r.index): \(got[max(r.index, 0)]) vs \(expected.data[max(r.index, 0)])")
        }
        #expect(closeness(dInitial.h.array, g.expected.d_initial_state.h.data, rtol: tol.rtol, atol: tol.atol).ratio <= 1)
        if let dc = dInitial.c {
            #expect(closeness(dc.array, try #require(g.expected.d_initial_state.c).data, rtol: tol.rtol,
                              atol: tol.atol).ratio <= 1)
        }
    }
}
