// One single-process Trainer step on the epoch's short final window against its definition,
// computed separately with a second model: θ' = θ − lr · ĝ · min(1, clip / ‖ĝ‖), where ĝ is the
// gradient of the loss summed over the window's tokens divided by THAT window's token count (not
// T·B). launch/test-train checks the same step across ranks; this pins down the normalisation
// itself, which a rank-count comparison cannot see.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels
import UnrollTraining

@Suite struct TrainerTests {
    /// A small arith dataset in a fresh temporary directory (removed by the caller).
    static func dataset() throws -> (dir: String, path: String) {
        let dir = NSTemporaryDirectory() + "unroll-trainer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/arith.h5"
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .arith, seed: 3, sizes: [3000, 1000, 1000]), output: path)
        return (dir, path)
    }

    @Test(arguments: [1e9, 0.05])
    func shortFinalWindowStepIsTheMeanGradientOverItsTokens(clip: Double) throws {
        let (dir, path) = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: dir) }  // best-effort cleanup of test scratch
        let vocab = try TokenDataset(path: path).vocabSize
        var config = TrainingConfig(data: path, model: ModelConfig(cell: .lstm, vocabSize: vocab, embeddingSize: 8,
                                                                   hiddenSize: 16, layers: 1))
        config.batchSize = 4
        config.learningRate = 0.5
        config.clip = clip
        // The first window length T ≤ 16 that leaves a short last window.
        var trainer: Trainer?
        for T in stride(from: 16, through: 8, by: -1) {
            config.bptt = T
            let t = try Trainer(config: config, communicator: SingleProcessCommunicator())
            if t.reader.windowLength(t.windowsPerEpoch - 1) < T { trainer = t; break }
        }
        let t = try #require(trainer)
        let B = config.batchSize, last = t.windowsPerEpoch - 1
        let len = t.reader.windowLength(last)

        // Reference: the same initial parameters, the same window from a zero state.
        let reference = RecurrentLanguageModel(config: config.model, seed: config.seed, maxSteps: config.bptt, maxBatch: B)
        let theta = t.model.arena.parameters.array
        #expect(reference.arena.parameters.array == theta)
        var inputs: [Int32] = [], targets: [Int32] = []
        #expect(try t.reader.readWindow(last, inputs: &inputs, targets: &targets) == len)
        reference.forward(tokens: inputs, steps: len, batch: B, state: RecurrentState(config: config.model, batch: B),
                          dropout: nil)
        reference.arena.zeroGradients()
        let (lossSum, count) = targets.withUnsafeBufferPointer { reference.backward(targets: $0.baseAddress!) }
        #expect(count == len * B)
        let g = (0..<theta.count).map { Double(reference.arena.gradients[$0]) / Double(count) }
        let norm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let scale = norm > clip ? clip / norm : 1

        t.progress.window = last  // the trainer's carried state is zero, like the reference's
        let report = try t.step()
        #expect(report.tokens == len * B)
        #expect(abs(report.loss - lossSum / Double(count)) <= 1e-9 * report.loss)
        #expect(abs(report.gradNorm - norm) <= 1e-5 * norm)
        #expect(report.clipped == (clip < 1e3))
        #expect(!report.skipped)
        var worst = 0.0
        for i in theta.indices {
            let expected = Double(theta[i]) - config.learningRate * g[i] * scale
            worst = max(worst, abs(Double(t.model.arena.parameters[i]) - expected) / max(abs(expected), 1e-2))
        }
        #expect(worst < 1e-5, "largest relative parameter error \(worst) (window \(len) of \(config.bptt) steps)")
    }

    /// The hand-over schedule a step records for launch/scaling-model: readout first, then each
    /// layer's weight_hh and weight_ih from the top, the embedding (offset 0) last; offsets never
    /// increase, compute times never decrease and end by the end of backward.
    @Test func stepRecordsTheOrderAndTimesGradientsBecomeReady() throws {
        let (dir, path) = try Self.dataset()
        defer { try? FileManager.default.removeItem(atPath: dir) }  // best-effort cleanup of test scratch
        let vocab = try TokenDataset(path: path).vocabSize
        var config = TrainingConfig(data: path, model: ModelConfig(cell: .lstm, vocabSize: vocab, embeddingSize: 8,
                                                                   hiddenSize: 16, layers: 2))
        config.batchSize = 4
        config.bptt = 8
        let t = try Trainer(config: config, communicator: SingleProcessCommunicator())
        for _ in 0..<2 {
            _ = try t.step()
            let arena = t.model.arena
            let offsets = t.sync.readyTimeline.map(\.offset), times = t.sync.readyTimeline.map(\.seconds)
            let expected = [arena.view("decoder.weight").offset,
                            arena.view("rnn.weight_hh_l1").offset, arena.view("rnn.weight_ih_l1").offset,
                            arena.view("rnn.weight_ih_l1").offset,
                            arena.view("rnn.weight_hh_l0").offset, arena.view("rnn.weight_ih_l0").offset,
                            arena.view("rnn.weight_ih_l0").offset, 0]
            #expect(offsets == expected)
            #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 }, "times \(times)")
            #expect((times.first ?? -1) >= 0)
            #expect((times.last ?? .infinity) <= t.sync.backwardEndSeconds)
            #expect(t.sync.embeddingWidth == 8)
            #expect(t.sync.denseOffset == arena.view("rnn.weight_ih_l0").offset)
        }
    }

    /// Several single-process steps with a vocabulary much larger than a window's tokens, so the
    /// embedding gradient takes the row-sparse path (only touched rows are zeroed, normed and
    /// updated), against a dense reference: the same model run with full-buffer zeroing, norm and
    /// SGD, carrying its state from window to window like the trainer.
    @Test func rowSparseEmbeddingStepsMatchDenseReference() throws {
        let dir = NSTemporaryDirectory() + "unroll-trainer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }  // best-effort cleanup of test scratch
        // 400 distinct words in a pseudo-random order: a window of 4 × 6 tokens touches < 25 rows.
        var seed: UInt64 = 42
        var words: [String] = []
        for _ in 0..<6000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            words.append("w\((seed >> 33) % 400)" + (words.count % 20 == 19 ? "\n" : ""))
        }
        let text = dir + "/words.txt", path = dir + "/words.h5"
        try words.joined(separator: " ").write(toFile: text, atomically: true, encoding: .utf8)
        _ = try TextPreparation.prepare(.split(input: text, fractions: [0.8, 0.1, 0.1]),
                                        options: TextPrepareOptions(level: .word), output: path)
        let vocab = try TokenDataset(path: path).vocabSize
        #expect(vocab > 300)
        var config = TrainingConfig(data: path, model: ModelConfig(cell: .gru, vocabSize: vocab, embeddingSize: 5,
                                                                   hiddenSize: 7, layers: 1))
        config.batchSize = 4
        config.bptt = 6
        config.learningRate = 0.7
        config.clip = 0.5  // clipping active, so the sparse norm matters
        let t = try Trainer(config: config, communicator: SingleProcessCommunicator())
        let B = config.batchSize
        let reference = RecurrentLanguageModel(config: config.model, seed: config.seed, maxSteps: config.bptt, maxBatch: B)
        let state = RecurrentState(config: config.model, batch: B)
        let arena = reference.arena, n = arena.count
        for window in 0..<4 {
            var inputs: [Int32] = [], targets: [Int32] = []
            let len = try t.reader.readWindow(window, inputs: &inputs, targets: &targets)
            #expect(2 * Set(inputs.prefix(len * B)).count < vocab)
            reference.forward(tokens: inputs, steps: len, batch: B, state: state, dropout: nil)
            arena.zeroGradients()
            let (_, count) = targets.withUnsafeBufferPointer { reference.backward(targets: $0.baseAddress!) }
            let norm = Clipping.globalNorm(arena.gradients.pointer, count: n) / Double(count)
            let scale = (1 / Double(count)) * (norm > config.clip ? config.clip / norm : 1)
            OptimizerKernels.sgd(arena.parameters.pointer, grad: arena.gradients.pointer, count: n,
                                 lr: Float(config.learningRate), gradScale: Float(scale))
            let report = try t.step()
            #expect(!report.skipped)
            #expect(abs(report.gradNorm - norm) <= 1e-5 * norm, "window \(window)")
            var worst = 0.0
            for i in 0..<n {
                let expected = Double(arena.parameters[i])
                worst = max(worst, abs(Double(t.model.arena.parameters[i]) - expected) / max(abs(expected), 1e-2))
            }
            #expect(worst < 1e-5, "window \(window): largest relative parameter error \(worst)")
        }
    }
}
