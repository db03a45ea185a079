// Initialisation schemes for long-term dependencies: identity (IRNN) gives W_hh = I and zero
// recurrent biases, orthogonal gives WᵀW = I per gate block, both deterministic per seed; leak
// logits of learned leaky rates start at logit(α) of log-spaced rates; --leak parsing.
import Foundation
import Testing
import UnrollKernels
import UnrollModels

private func block(_ arena: ParameterArena, _ name: String, _ b: Int, hidden H: Int) -> [Float] {
    let p = arena.parameters(arena.view(name)) + b * H * H
    return Array(UnsafeBufferPointer(start: p, count: H * H))
}

@Suite struct InitializerTests {
    @Test(arguments: [CellKind.rnnRelu, .leaky, .lstm])
    func identityInitGivesIdentityRecurrentWeightsAndZeroBiases(cell: CellKind) {
        let H = 6, E = 4
        let config = ModelConfig(cell: cell, vocabSize: 5, embeddingSize: E, hiddenSize: H, layers: 2, initScheme: .identity)
        let model = RecurrentLanguageModel(config: config, seed: 3, maxSteps: 2, maxBatch: 1)
        let arena = model.arena
        for k in 0..<2 {
            for b in 0..<cell.gateCount {
                let w = block(arena, "rnn.weight_hh_l\(k)", b, hidden: H)
                for i in 0..<H { for j in 0..<H { #expect(w[i * H + j] == (i == j ? 1 : 0)) } }
            }
            for name in ["rnn.bias_ih_l\(k)", "rnn.bias_hh_l\(k)"] {
                let v = arena.view(name)
                #expect(UnsafeBufferPointer(start: arena.parameters(v), count: v.count).allSatisfy { $0 == 0 })
            }
            // W_ih ~ N(0, 0.001²): small, not all zero.
            let v = arena.view("rnn.weight_ih_l\(k)")
            let w = Array(UnsafeBufferPointer(start: arena.parameters(v), count: v.count))
            let rms = (w.reduce(0) { $0 + Double($1 * $1) } / Double(w.count)).squareRoot()
            #expect(rms > 0.0002 && rms < 0.005, "rms \(rms)")
        }
    }

    @Test(arguments: [(CellKind.rnnTanh, 1), (.gru, 2), (.lstm, 1)])
    func orthogonalInitGivesOrthogonalBlocksDeterministically(cell: CellKind, layers: Int) {
        let H = 16
        let config = ModelConfig(cell: cell, vocabSize: 5, embeddingSize: 8, hiddenSize: H, layers: layers,
                                 initScheme: .orthogonal)
        let a = RecurrentLanguageModel(config: config, seed: 9, maxSteps: 2, maxBatch: 1)
        let b = RecurrentLanguageModel(config: config, seed: 9, maxSteps: 3, maxBatch: 2)
        let c = RecurrentLanguageModel(config: config, seed: 10, maxSteps: 2, maxBatch: 1)
        #expect(a.arena.parameters.array == b.arena.parameters.array)
        #expect(a.arena.parameters.array != c.arena.parameters.array)
        var blocks: [[Float]] = []
        for k in 0..<layers {
            for g in 0..<cell.gateCount {
                let w = block(a.arena, "rnn.weight_hh_l\(k)", g, hidden: H)
                blocks.append(w)
                var worst = 0.0
                for i in 0..<H {
                    for j in 0..<H {
                        var d = 0.0  // (WᵀW)_ij and (WWᵀ)_ij
                        var e = 0.0
                        for r in 0..<H {
                            d += Double(w[r * H + i]) * Double(w[r * H + j])
                            e += Double(w[i * H + r]) * Double(w[j * H + r])
                        }
                        worst = max(worst, abs(d - (i == j ? 1 : 0)), abs(e - (i == j ? 1 : 0)))
                    }
                }
                #expect(worst < 1e-5, "\(cell) l\(k) block \(g): max |WᵀW − I| = \(worst)")
            }
            let bias = a.arena.view("rnn.bias_hh_l\(k)")
            #expect(UnsafeBufferPointer(start: a.arena.parameters(bias), count: bias.count).allSatisfy { $0 == 0 })
        }
        // Every block is its own draw.
        #expect(Set(blocks.map { $0.map(\.bitPattern) }).count == blocks.count)
    }

    @Test func learnedLeakLogitsStartAtLogSpacedRates() {
        let H = 5
        let leak = LeakRate.learned(low: 0.01, high: 0.5)
        let config = ModelConfig(cell: .leaky, vocabSize: 5, embeddingSize: 3, hiddenSize: H, layers: 2, leak: leak)
        let model = RecurrentLanguageModel(config: config, seed: 1, maxSteps: 2, maxBatch: 1)
        let names = model.arena.layout.views.map(\.name)
        #expect(names == ["embedding.weight",
                          "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "rnn.leak_logit_l0",
                          "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1", "rnn.leak_logit_l1",
                          "decoder.weight", "decoder.bias"])
        let rates = leak.rates(hidden: H)
        #expect(abs(rates[0] - 0.01) < 1e-7 && abs(rates[H - 1] - 0.5) < 1e-6)
        for j in 1..<H { #expect(abs(rates[j] / rates[j - 1] - rates[1] / rates[0]) < 1e-4) }
        let v = model.arena.view("rnn.leak_logit_l1"), a = model.arena.parameters(v)
        for j in 0..<H { #expect(abs(1 / (1 + exp(-Double(a[j]))) - Double(rates[j])) < 1e-6) }
        // Fixed rates add no parameter.
        let fixed = ModelConfig(cell: .leaky, vocabSize: 5, embeddingSize: 3, hiddenSize: H, layers: 1, leak: .fixed(0.2))
        #expect(!ParameterLayout.languageModel(fixed).views.contains { $0.name.contains("leak") })
    }

    @Test(arguments: [("0.1", LeakRate.fixed(0.1)), ("1", .fixed(1)), ("0.01:0.5", .range(low: 0.01, high: 0.5)),
                      ("learned", .learned(low: 0.01, high: 0.5)), ("learned:0.1:0.9", .learned(low: 0.1, high: 0.9))])
    func leakValuesParseAndPrintBack(text: String, expected: LeakRate) throws {
        let parsed = try LeakRate(parsing: text)
        #expect(parsed == expected)
        #expect(try LeakRate(parsing: parsed.description) == parsed)
    }

    @Test(arguments: ["0", "-0.1", "1.5", "nan", "abc", "0.5:0.1", "0.1:1.5", "0:0.5", "learned:0.1:1", "learned:0.1",
                      "0.1:0.2:0.3", ""])
    func badLeakValuesAreRefusedInOneLine(text: String) {
        do {
            _ = try LeakRate(parsing: text)
            Issue.record("\(text) accepted")
        } catch {
            let message = "\(error)"
            #expect(!message.contains("\n") && message.contains("'\(text)'"), "\(message)")
        }
        var config = ModelConfig(cell: .lstm, vocabSize: 2, embeddingSize: 2, hiddenSize: 2, layers: 1, leak: .fixed(0.5))
        #expect(config.problem()?.contains("--leak applies to --cell leaky") == true)
        config.cell = .leaky
        #expect(config.problem() == nil)
        config.leak = .range(low: 0.5, high: 0.1)
        #expect(config.problem()?.hasPrefix("--leak:") == true)
    }
}
