// Every numeric training option has a stated range; a value outside it (negative, zero, NaN,
// infinite) is refused in one line naming the option. A configuration that needs more memory than
// the machine has is refused by the estimate, which is computed in closed form (no overflow, no
// allocation, no loop over layers).
import Testing
import UnrollModels
@testable import UnrollTraining

@Suite struct ConfigRangeTests {
    static func base() -> TrainingConfig {
        TrainingConfig(data: "d.h5", model: ModelConfig(cell: .lstm, vocabSize: 50, embeddingSize: 8, hiddenSize: 16, layers: 2))
    }

    static let cases: [(String, @Sendable (inout TrainingConfig) -> Void)] = [
        ("--hidden must be ≥ 1, got 0", { $0.model.hiddenSize = 0 }),
        ("--embedding must be ≥ 1, got -4", { $0.model.embeddingSize = -4 }),
        ("--layers must be ≥ 1", { $0.model.layers = 0 }),
        ("--dropout must be in [0, 1), got nan", { $0.model.dropout = .nan }),
        ("--init-range must be a finite number", { $0.model.initScheme = .uniform(.infinity) }),
        ("--lr must be a finite number > 0, got nan", { $0.learningRate = .nan }),
        ("--lr must be a finite number > 0, got -1.0", { $0.learningRate = -1 }),
        ("--clip must be a finite number > 0, got inf", { $0.clip = .infinity }),
        ("--momentum must be in [0, 1), got -5.0", { $0.optimizer.momentum = -5 }),
        ("--weight-decay must be a finite number ≥ 0", { $0.optimizer.weightDecay = -1 }),
        ("--lr-decay must be in (0, 1], got -2.0", { $0.schedule = .stepDecay(afterEpoch: 4, factor: -2) }),
        ("--decay-after must be ≥ 0, got -1", { $0.schedule = .stepDecay(afterEpoch: -1, factor: 0.5) }),
        ("--warmup must be ≥ 0, got -10", { $0.schedule = .cosine(warmupSteps: -10, totalSteps: 0, minFactor: 0) }),
        ("--checkpoint-every must be ≥ 0", { $0.checkpointEvery = -3 }),
        ("--eval-every must be ≥ 0", { $0.evalEvery = -1 }),
        ("--log-every must be ≥ 1, got 0", { $0.logEvery = 0 }),
        ("--keep must be ≥ 1", { $0.keep = 0 }),
        ("--steps must be ≥ 1", { $0.steps = 0 }),
        ("--leak applies to --cell leaky or esn; the cell is lstm", { $0.model.leak = .fixed(0.5) }),
        ("--leak: a fixed leak rate must be in (0, 1], got 1.5", { $0.model.cell = .leaky; $0.model.leak = .fixed(1.5) }),
        ("--leak: a learned leak range", { $0.model.cell = .leaky; $0.model.leak = .learned(low: 0.1, high: 1) }),
        // Echo state networks: every reservoir range, a learned leak, and the task it needs.
        ("--radius must be a finite number > 0, got 0.0", { esn(&$0) { $0.radius = 0 } }),
        ("--radius must be a finite number > 0, got -1.0", { esn(&$0) { $0.radius = -1 } }),
        ("--radius must be a finite number > 0, got inf", { esn(&$0) { $0.radius = .infinity } }),
        ("--density must be in (0, 1], got 0.0", { esn(&$0) { $0.density = 0 } }),
        ("--density must be in (0, 1], got 1.01", { esn(&$0) { $0.density = 1.01 } }),
        ("--input-scale must be a finite number > 0, got nan", { esn(&$0) { $0.inputScale = .nan } }),
        ("--ridge must be a finite number ≥ 0, got -1e-06", { esn(&$0) { $0.ridge = -1e-6 } }),
        ("--ridge must be a finite number ≥ 0, got nan", { esn(&$0) { $0.ridge = .nan } }),
        ("--leak learned: an echo state network's reservoir is fixed", { esn(&$0) { _ in }; $0.model.leak = .learned(low: 0.1, high: 0.5) }),
        ("--radius, --density, --input-scale and --ridge apply to --cell esn; the cell is lstm", { $0.model.echoState = .default }),
        ("--cell esn applies to sequence tasks", { esn(&$0) { _ in } }),
    ]

    /// Makes the base an ESN with the default reservoir changed by `change`.
    static func esn(_ c: inout TrainingConfig, _ change: (inout EchoStateConfig) -> Void) {
        c.model.cell = .esn
        var e = EchoStateConfig.default
        change(&e)
        c.model.echoState = e
    }

    @Test func theBaseConfigurationIsValid() {
        #expect(Self.base().problem() == nil)
    }

    @Test(arguments: 0..<cases.count)
    func outOfRangeValuesAreNamed(index: Int) {
        let (message, change) = Self.cases[index]
        var config = Self.base()
        change(&config)
        let problem = config.problem()
        #expect(problem?.contains(message) == true, "got \(problem ?? "nil")")
    }

    @Test func theEstimateCountsParametersExactly() {
        for (cell, leak) in [(CellKind.rnnTanh, nil), (.lstm, nil), (.gru, nil), (.leaky, nil),
                             (.leaky, LeakRate.learned(low: 0.1, high: 0.5))] {
            let model = ModelConfig(cell: cell, vocabSize: 37, embeddingSize: 5, hiddenSize: 11, layers: 3, leak: leak)
            #expect(MemoryEstimate.parameterCount(model) == Double(ParameterLayout.languageModel(model).parameterCount))
        }
    }

    @Test func hugeConfigurationsAreRefusedByTheEstimate() throws {
        var config = Self.base()
        #expect(MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.trainingBytes(config, worldSize: 1),
                                         processes: 1, machine: 24e9) == nil)
        config.model.layers = 100_000_000
        let short = try #require(MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.trainingBytes(config, worldSize: 1),
                                                          processes: 2, machine: 24e9))
        #expect(short.hasPrefix("needs ") && short.contains("per process × 2") && short.hasSuffix("this machine has 24.0 GB"))
        config.model.layers = 2
        config.bptt = Int(1e11)
        #expect(MemoryEstimate.shortfall(bytesPerProcess: MemoryEstimate.trainingBytes(config, worldSize: 1),
                                         processes: 1, machine: 24e9) != nil)
    }
}
