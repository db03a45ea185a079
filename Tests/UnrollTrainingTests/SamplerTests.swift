// Text generation: encoding round trips, determinism per seed, greedy decoding with top-k 1.
import Testing
import UnrollData
import UnrollKernels
import UnrollModels
import UnrollTraining

@Suite struct SamplerTests {
    let vocab = ["a", "b", "c", "=", "\n", "<unk>"]

    func model(seed: UInt64) -> RecurrentLanguageModel {
        let config = ModelConfig(cell: .lstm, vocabSize: vocab.count, embeddingSize: 4, hiddenSize: 8, layers: 1)
        return RecurrentLanguageModel(config: config, seed: seed, maxSteps: 1, maxBatch: 1)
    }

    @Test func charEncodingRoundTrips() throws {
        let ids = try Sampler.encode("ab=c\n", vocabulary: vocab, level: .char, unk: nil)
        #expect(ids == [0, 1, 3, 2, 4])
        #expect(Sampler.decode(ids, vocabulary: vocab, level: .char) == "ab=c\n")
        #expect(try Sampler.encode("az", vocabulary: vocab, level: .char, unk: "<unk>") == [0, 5])
        #expect(throws: TrainingError.self) { try Sampler.encode("az", vocabulary: vocab, level: .char, unk: nil) }
    }

    @Test func samplingIsDeterministicPerSeedAndTopOneIsGreedy() {
        let m = model(seed: 3)
        let a = Sampler.generate(model: m, prime: [0, 1], length: 40, temperature: 1, topK: nil, seed: 9)
        let b = Sampler.generate(model: m, prime: [0, 1], length: 40, temperature: 1, topK: nil, seed: 9)
        let c = Sampler.generate(model: m, prime: [0, 1], length: 40, temperature: 1, topK: nil, seed: 10)
        #expect(a == b)
        #expect(a != c)
        #expect(a.allSatisfy { $0 >= 0 && Int($0) < vocab.count })
        // top-k 1 picks the argmax at every step, whatever the seed: replay it step by step.
        let greedy = Sampler.generate(model: m, prime: [0], length: 10, temperature: 1, topK: 1, seed: 1)
        #expect(greedy == Sampler.generate(model: m, prime: [0], length: 10, temperature: 1, topK: 1, seed: 2))
        let state = RecurrentState(config: m.config, batch: 1)
        var current: Int32 = 0
        for expected in greedy {
            m.forward(tokens: [current], steps: 1, batch: 1, state: state, dropout: nil)
            let logits = m.lastLogits
            let argmax = (0..<vocab.count).max { logits[$0] < logits[$1] }!
            #expect(Int32(argmax) == expected)
            current = expected
        }
    }
}
