// The echo-state readout (`--cell esn`) solved by the sequence task: equal to the ridge solution
// computed independently (each train sequence run alone through a plain Double recurrence, normal
// equations by loops, a Gauss–Jordan solve), for a sequence-to-one regression with batches that do
// not divide the split; and for per-step class targets (one-hot rows at every valid step) a
// solution at which the ridge objective's gradient vanishes over the model's own features.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollTestSupport
import UnrollModels
@testable import UnrollTraining

struct EchoStateReadoutTests {

    @Test func sequenceToOneReadoutEqualsTheIndependentRidgeSolution() throws {
        let dir = try CheckpointScratch()
        var config = try SequenceTaskTests.config(.adding, in: dir)
        let H = 10, lambda = 1e-3
        config.model = ModelConfig(cell: .esn, vocabSize: 0, embeddingSize: 0, hiddenSize: H, layers: 1, leak: .fixed(0.7),
                                   echoState: EchoStateConfig(radius: 0.9, density: 0.3, inputScale: 0.5, ridge: lambda))
        config.batchSize = 7   // 60 sequences: 8 full batches and one of 4
        #expect(config.problem() == nil)
        let task = try SequenceTask(config: config, communicator: SingleProcessCommunicator())
        let fit = try task.fitEchoStateReadout()
        #expect(fit.rows == 60 && fit.features == H + 1 && fit.outputs == 1)
        #expect(abs(fit.radii[0] - 0.9) < 0.01)

        // Independently: each sequence alone, in Double, from the arena's reservoir.
        let split = try SequenceSet(path: config.data).split("train")
        guard case .features(let x) = try split.loadInputs(), case .values(let y) = split.targets else {
            Issue.record("adding has float features and value targets")
            return
        }
        let (mean, std) = try #require(task.normalization)
        let arena = task.arena, E = 2, F = H + 1, alpha = 0.7
        let wih = arena.parameters(arena.view("rnn.weight_ih_l0")), whh = arena.parameters(arena.view("rnn.weight_hh_l0"))
        let bih = arena.parameters(arena.view("rnn.bias_ih_l0"))
        var phi: [[Double]] = []
        for s in 0..<split.count {
            var h = [Double](repeating: 0, count: H)
            for t in 0..<split.length(of: s) {
                let row = Int(split.offsets[s]) + t
                let input = (0..<E).map { Double((x[row * E + $0] - mean[$0]) / std[$0]) }
                var next = h
                for i in 0..<H {
                    var z = Double(bih[i])
                    for j in 0..<E { z += Double(wih[i * E + j]) * input[j] }
                    for j in 0..<H { z += Double(whh[i * H + j]) * h[j] }
                    next[i] = (1 - alpha) * h[i] + alpha * tanh(z)
                }
                h = next
            }
            phi.append(h + [1])
        }
        var a = [Double](repeating: 0, count: F * F), b = [Double](repeating: 0, count: F)
        for (s, row) in phi.enumerated() {
            for i in 0..<F {
                for j in 0..<F { a[i * F + j] += row[i] * row[j] }
                b[i] += row[i] * Double(y[s])
            }
        }
        for i in 0..<F { a[i * F + i] += lambda }
        let reference = gaussJordanSolve(a, b, n: F, m: 1)
        let weight = arena.parameters(arena.view("head.weight")), bias = arena.parameters(arena.view("head.bias"))
        let solved = (0..<H).map { Double(weight[$0]) } + [Double(bias[0])]
        let scale = reference.map(abs).max() ?? 1
        for i in 0..<F { #expect(abs(solved[i] - reference[i]) < 1e-3 * scale, "w[\(i)] \(solved[i]) vs \(reference[i])") }
        // The model's predictions through `head.*` are the reference's.
        for (s, row) in phi.enumerated() {
            var p = 0.0, q = 0.0
            for i in 0..<F { p += row[i] * solved[i]; q += row[i] * reference[i] }
            #expect(abs(p - q) < 1e-4, "sequence \(s)")
        }
        // And the evaluation, through the usual head, beats predicting the mean (MSE 0.167).
        let valid = try task.evaluateFully(split: "valid")
        #expect(valid.count == 20 && valid.meanSquaredError < 0.16, "valid MSE \(valid.meanSquaredError)")
    }

    @Test func perStepClassReadoutZeroesTheRidgeGradient() throws {
        let dir = try CheckpointScratch()
        let path = dir.file("copy.h5")
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .copy, seed: 2, sizes: [30, 10, 10], minLength: 5, maxLength: 5),
                                             output: path)
        let set = try SequenceSet(path: path)
        let H = 16, E = 4, lambda = 0.5
        var config = TrainingConfig(data: path, model: ModelConfig(cell: .esn, vocabSize: set.vocabulary.count, embeddingSize: E,
                                                                   hiddenSize: H, layers: 1, leak: .fixed(1),
                                                                   echoState: EchoStateConfig(radius: 0.8, density: 0.25,
                                                                                              inputScale: 1, ridge: lambda)))
        config.sequence = try SequenceTask.taskConfig(for: set, bidirectional: false, pool: .last, normalize: true)
        config.bptt = config.sequence!.longest
        config.batchSize = 8
        #expect(config.problem() == nil)
        let task = try SequenceTask(config: config, communicator: SingleProcessCommunicator())
        let fit = try task.fitEchoStateReadout()
        let split = try set.split("train")
        let steps = (0..<split.count).reduce(0) { $0 + split.length(of: $1) }
        let C = config.sequence!.numClasses, F = H + 1
        #expect(fit.rows == steps && fit.outputs == C && fit.features == F)
        guard case .tokens(let ids) = try split.loadInputs(), case .classes(let labels) = split.targets else {
            Issue.record("copy has token inputs and class targets")
            return
        }
        // The model's own features, each sequence alone; gradient of ‖ΦW − Y‖² + λ‖W‖² over W.
        let model = task.model, arena = task.arena
        let weight = arena.parameters(arena.view("head.weight")), bias = arena.parameters(arena.view("head.bias"))
        var gradient = [Double](repeating: 0, count: C * F)
        for k in 0..<C {
            for j in 0..<H { gradient[k * F + j] = lambda * Double(weight[k * H + j]) }
            gradient[k * F + H] = lambda * Double(bias[k])
        }
        for s in 0..<split.count {
            let T = split.length(of: s), start = Int(split.offsets[s])
            let tokens = Array(ids[start..<(start + T)])
            tokens.withUnsafeBufferPointer {
                model.forward(tokens: $0.baseAddress!, features: nil, steps: T, batch: 1, lengths: [T], state: nil, dropout: nil)
            }
            let states = model.headInputs!, outputs = model.outputs
            for t in 0..<T {
                for k in 0..<C {
                    let residual = Double(outputs[t * C + k]) - (Int(labels[start + t]) == k ? 1 : 0)
                    for j in 0..<H { gradient[k * F + j] += Double(states[t * H + j]) * residual }
                    gradient[k * F + H] += residual
                }
            }
        }
        let largest = gradient.map(abs).max() ?? 0
        #expect(largest < 1e-3, "largest ridge-gradient entry \(largest)")
        // The residual part alone is −λW, far from zero: the penalty is really in the solve, and
        // a least-squares readout (λ = 0) would fail the check above.
        let atZero = (0..<(C * F)).map { gradient[$0] - lambda * Double($0 % F < H ? weight[($0 / F) * H + $0 % F] : bias[$0 / F]) }
        #expect((atZero.map(abs).max() ?? 0) > 100 * max(largest, 1e-6))
    }
}
