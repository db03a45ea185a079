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
}
