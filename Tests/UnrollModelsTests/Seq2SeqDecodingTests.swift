// Decoding of the sequence-to-sequence model: greedy on a padded batch equals greedy row by row
// and beam search with beam 1; a beam wide enough to keep every hypothesis finds the exact best
// sequence (checked by enumerating all of them and scoring each with the teacher-forced loss) and
// never scores below greedy; sampling is deterministic per seed and tends to greedy as the
// temperature goes to 0.
import Testing
import UnrollKernels
import UnrollModels
import UnrollTestSupport

private let bos: Int32 = 0, eos: Int32 = 1

private let decodingCases: [Seq2SeqCase] = [
    .init(cell: .gru, layers: 1, bidirectional: true, bridge: .tanh, attention: .general),
    .init(cell: .lstm, layers: 2, bidirectional: true, bridge: .tanh, attention: .additive, inputFeeding: true),
    .init(cell: .rnnTanh, layers: 1, bidirectional: false, bridge: .none, attention: .dot),
    .init(cell: .gru, layers: 2, bidirectional: false, bridge: .tanh, attention: .none, inputFeeding: true),
]

/// log p(y [, <eos>] | x) by the teacher-forced loss, and the number of scored tokens.
private func logProbability(_ model: Seq2SeqModel, source: [Int32], tokens: [Int32], withEOS: Bool) -> (Double, Int) {
    let output = tokens + (withEOS ? [eos] : [])
    let input = [bos] + output.dropLast()
    let r = model.forward(source: source, sourceLengths: [source.count], sourceSteps: source.count,
                          targetInput: input, targetOutput: output, targetLengths: [output.count],
                          targetSteps: output.count, batch: 1, feedPrediction: nil)
    return (-r.lossSum, output.count)
}

@Suite struct Seq2SeqDecodingTests {
    @Test(arguments: decodingCases)
    func greedyIsPerRowAndEqualsBeamOne(c: Seq2SeqCase) {
        let model = Seq2SeqModel(config: c.config(), seed: 21, maxSourceSteps: 4, maxTargetSteps: 6, maxBatch: 3)
        let batch = Seq2SeqBatch(sourceVocab: 6, targetVocab: 7, seed: 22)
        let all = model.greedy(source: batch.source, sourceLengths: batch.sourceLengths, sourceSteps: batch.S,
                               batch: batch.B, bos: bos, eos: eos, maxLength: 6)
        #expect(all.count == batch.B)
        for b in 0..<batch.B {
            let row = batch.row(b)
            let alone = model.greedy(source: row.source, sourceLengths: row.sourceLengths, sourceSteps: row.S, batch: 1,
                                     bos: bos, eos: eos, maxLength: 6)
            #expect(alone == [all[b]], "\(c.testDescription) row \(b)")
            for alpha in [0.0, 0.8] {
                let beam = model.beamSearch(source: row.source, beam: 1, lengthPenalty: alpha, bos: bos, eos: eos,
                                            maxLength: 6)
                #expect(beam == all[b], "\(c.testDescription) row \(b) α \(alpha)")
            }
            #expect(all[b].count <= 6 && !all[b].contains(eos))
        }
    }

    @Test(arguments: decodingCases, [0.0, 1.0])
    func wideBeamFindsTheBestSequence(c: Seq2SeqCase, alpha: Double) {
        // V = 4 (0 = <bos>, 1 = <eos>), at most 3 tokens: 40 hypotheses, all kept by beam 40.
        var config = c.config()
        config.targetVocabSize = 4
        config.initScheme = .uniform(1.2)
        let model = Seq2SeqModel(config: config, seed: 23, maxSourceSteps: 4, maxTargetSteps: 3, maxBatch: 3)
        let source: [Int32] = [3, 1, 4]
        var best: (tokens: [Int32], score: Double)? = nil
        func consider(_ tokens: [Int32], withEOS: Bool) {
            let (logp, n) = logProbability(model, source: source, tokens: tokens, withEOS: withEOS)
            let score = logp / Seq2SeqModel.lengthPenalty(length: n, alpha: alpha)
            if best == nil || score > best!.score { best = (tokens, score) }
        }
        let others: [Int32] = [0, 2, 3]
        var prefixes: [[Int32]] = [[]]
        for length in 0...3 {
            for p in prefixes { length < 3 ? consider(p, withEOS: true) : consider(p, withEOS: false) }
            prefixes = prefixes.flatMap { p in others.map { p + [$0] } }
        }
        let found = model.beamSearch(source: source, beam: 40, lengthPenalty: alpha, bos: bos, eos: eos, maxLength: 3)
        #expect(found == best?.tokens, "\(c.testDescription) α \(alpha)")

        // A narrower beam does not score below greedy here without a length penalty (not a theorem:
        // with α > 0 the beam, pruned by raw log p, can lose a long greedy hypothesis; it does here).
        guard alpha == 0 else { return }
        func score(_ y: [Int32]) -> Double {
            let (logp, n) = logProbability(model, source: source, tokens: y, withEOS: y.count < 3)
            return logp / Seq2SeqModel.lengthPenalty(length: n, alpha: alpha)
        }
        let greedy = model.greedy(source: source, sourceLengths: [3], sourceSteps: 3, batch: 1, bos: bos, eos: eos,
                                  maxLength: 3)[0]
        let beam3 = model.beamSearch(source: source, beam: 3, lengthPenalty: alpha, bos: bos, eos: eos, maxLength: 3)
        #expect(score(beam3) >= score(greedy) - 1e-9)
    }

    @Test func beamSearchBeatsGreedyOnAConstructedCase() {
        // A model whose first step prefers token 2 slightly, after which everything is uncertain,
        // while token 3 leads to a near-certain <eos>: greedy takes 2, beam 2 finds 3 <eos>.
        let config = Seq2SeqModelConfig(cell: .gru, sourceVocabSize: 3, targetVocabSize: 4, embeddingSize: 2,
                                        hiddenSize: 4, bridge: .none, attention: .none, initScheme: .uniform(0.1))
        let model = Seq2SeqModel(config: config, seed: 1, maxSourceSteps: 2, maxTargetSteps: 3, maxBatch: 1)
        let a = model.arena
        for view in a.layout.views where view.name.hasPrefix("decoder") || view.name.hasPrefix("output") {
            a.parameters(view).update(repeating: 0, count: view.count)
        }
        // GRU with zero weights except W_in (the candidate n) reading the embedding: h_1 = 0.5·tanh(W_in e).
        let embedding = a.parameters(a.view("decoder.embedding.weight"))      // (4, 2)
        embedding[0 * 2 + 0] = 1                                               // <bos> → (1, 0)
        embedding[3 * 2 + 1] = 4                                               // token 3 → (0, 4)
        let wih = a.parameters(a.view("decoder.rnn.weight_ih_l0"))            // (12, 2), rows [r z n]
        wih[(8 + 0) * 2 + 0] = 2                                               // n_0 reads e_0 (<bos>)
        wih[(8 + 1) * 2 + 1] = 2                                               // n_1 reads e_1 (token 3)
        let wo = a.parameters(a.view("output.weight")), bo = a.parameters(a.view("output.bias"))  // (4, 4), (4)
        // After <bos> (h_0 ≈ 0.48): logits 2 → 0.3, 3 → 0.2 + …; after 3 (h_1 large): <eos> dominates.
        bo[2] = 0.3; bo[3] = 0.2
        wo[1 * 4 + 1] = 20                                                     // <eos> ∝ h_1
        wo[2 * 4 + 1] = -20; wo[3 * 4 + 1] = -20
        let source: [Int32] = [1, 2]
        let greedy = model.greedy(source: source, sourceLengths: [2], sourceSteps: 2, batch: 1, bos: bos, eos: eos,
                                  maxLength: 3)[0]
        let beam = model.beamSearch(source: source, beam: 2, lengthPenalty: 0, bos: bos, eos: eos, maxLength: 3)
        #expect(greedy.first == 2)
        #expect(beam == [3])
        let (g, _) = logProbability(model, source: source, tokens: greedy, withEOS: greedy.count < 3)
        let (b, _) = logProbability(model, source: source, tokens: beam, withEOS: true)
        #expect(b > g)
    }

    @Test(arguments: decodingCases)
    func samplingIsDeterministicPerSeed(c: Seq2SeqCase) {
        let model = Seq2SeqModel(config: c.config(), seed: 31, maxSourceSteps: 4, maxTargetSteps: 6, maxBatch: 3)
        let source: [Int32] = [2, 5, 1, 3]
        let first = model.sample(source: source, temperature: 1, seed: 7, bos: bos, eos: eos, maxLength: 8)
        #expect(model.sample(source: source, temperature: 1, seed: 7, bos: bos, eos: eos, maxLength: 8) == first)
        var distinct = Set<[Int32]>()
        for seed in 0..<12 {
            distinct.insert(model.sample(source: source, temperature: 1.5, seed: UInt64(seed), bos: bos, eos: eos,
                                         maxLength: 8))
        }
        #expect(distinct.count > 1)
        // Temperature → 0 is greedy.
        let greedy = model.greedy(source: source, sourceLengths: [4], sourceSteps: 4, batch: 1, bos: bos, eos: eos,
                                  maxLength: 8)[0]
        #expect(model.sample(source: source, temperature: 1e-4, seed: 3, bos: bos, eos: eos, maxLength: 8) == greedy)
    }
}
