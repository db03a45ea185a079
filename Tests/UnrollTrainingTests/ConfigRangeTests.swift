// Every numeric training option has a stated range; a value outside it (negative, zero, NaN,
// infinite) is refused in one line naming the option. A configuration that needs more memory than
// the machine has is refused by the estimate, which is computed in closed form (no overflow, no
// allocation, no loop over layers).
import Testing
import UnrollKernels
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
        ("--skip-steps applies to --cell rnn and rnn-relu; the cell is lstm", { $0.model.skipSteps = [2] }),
        ("--skip-steps: each step d must be in 2...", { $0.model.cell = .rnnTanh; $0.model.skipSteps = [0] }),
        ("--skip-steps: each step may appear once, got 2,2", { $0.model.cell = .rnnRelu; $0.model.skipSteps = [2, 2] }),
        ("--skip-steps applies to sequence tasks", { $0.model.cell = .rnnTanh; $0.model.skipSteps = [2] }),
        ("--skip-steps needs whole sequences: --bptt 5", {
            $0.sequence = Self.sequenceTask()
            $0.bptt = 5
            $0.model.cell = .rnnTanh
            $0.model.skipSteps = [2]
        }),
        ("--cell clockwork applies to sequence tasks", { $0.model.cell = .clockwork }),
        ("--cell clockwork: --hidden 16 is not divisible into 3 equal modules", {
            $0.model.cell = .clockwork
            $0.model.clockPeriods = [1, 2, 4]
        }),
        ("--clock-periods: periods must increase strictly", { $0.model.cell = .clockwork; $0.model.clockPeriods = [1, 1] }),
        ("--clock-periods / --clock-modules apply to --cell clockwork; the cell is lstm", { $0.model.clockPeriods = [1, 2] }),
        ("--cell clockwork runs forward in time only", {
            $0.sequence = Self.sequenceTask()
            $0.sequence?.bidirectional = true
            $0.bptt = 20
            $0.model.cell = .clockwork
        }),
        ("--cell clockwork needs whole sequences: --bptt 5", {
            $0.sequence = Self.sequenceTask()
            $0.bptt = 5
            $0.model.cell = .clockwork
        }),
        ("--flow-reg must be a finite number ≥ 0, got -1.0", { $0.flowReg = -1 }),
        ("--flow-reg must be a finite number ≥ 0, got inf", { $0.flowReg = .infinity }),
        ("--flow-reg applies to sequence tasks", { $0.model.cell = .rnnTanh; $0.model.layers = 1; $0.flowReg = 0.1 }),
        ("--flow-reg applies to the Elman cells (--cell rnn or rnn-relu), whose ∂h_t/∂h_{t−1} it regularises; the cell is lstm",
         { $0.sequence = Self.adding; $0.bptt = 10; $0.model.layers = 1; $0.flowReg = 0.1 }),
        ("--flow-reg needs --layers 1", { $0.sequence = Self.adding; $0.bptt = 10; $0.model.cell = .rnnRelu; $0.flowReg = 0.1 }),
        ("--cell jordan needs per-step targets (it feeds back the previous step's target); this dataset has one target per sequence",
         { $0.sequence = Self.adding; $0.bptt = 10; $0.model.cell = .jordan; $0.model.layers = 1 }),
        ("--cell jordan has one hidden layer", { $0.sequence = Self.copy; $0.bptt = 10; $0.model.cell = .jordan }),
        ("--cell jordan needs per-step targets of a sequence dataset", { $0.model.cell = .jordan; $0.model.layers = 1 }),
        ("--cell jordan applies to sequence tasks with per-step targets; an encoder–decoder",
         { $0.seq2seq = Seq2SeqTaskConfig(sourceVocabSize: 10, targetVocabSize: 10, level: "char", longestSource: 5, longestTarget: 5); $0.model.cell = .jordan }),
        ("--flow-reg regularises the one-step Jacobian", {
            $0.sequence = Self.adding; $0.bptt = 10; $0.model.cell = .rnnTanh; $0.model.layers = 1
            $0.model.skipSteps = [2]; $0.flowReg = 0.1
        }),
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

    /// A token classification task whose longest sequence is 20 steps.
    static func sequenceTask() -> SequenceTaskConfig {
        SequenceTaskConfig(tokens: true, inputDim: 1, level: "char", outputKind: .classes, perStep: false, targetDim: 1,
                           numClasses: 2, longest: 20)
    }

    @Test func skipAndClockworkSequenceTasksAreValid() {
        var config = Self.base()
        config.sequence = Self.sequenceTask()
        config.bptt = 20
        config.model.cell = .rnnRelu
        config.model.skipSteps = [2, 4]
        #expect(config.problem() == nil)
        config.model.skipSteps = nil
        config.model.cell = .clockwork
        config.model.clockPeriods = [1, 2, 4, 8]
        #expect(config.problem() == nil)
    }

    /// Sequence tasks as the adding problem (one value per sequence) and the copy task (a class per step) record them.
    static let adding = SequenceTaskConfig(tokens: false, inputDim: 2, level: nil, outputKind: .values, perStep: false,
                                           targetDim: 1, numClasses: 0, longest: 10)
    static let copy = SequenceTaskConfig(tokens: true, inputDim: 1, level: nil, outputKind: .classes, perStep: true,
                                         targetDim: 1, numClasses: 10, longest: 10)

    @Test func validJordanAndFlowConfigurationsPass() {
        var jordan = Self.base()
        jordan.sequence = Self.copy
        jordan.bptt = 10
        jordan.model.cell = .jordan
        jordan.model.layers = 1
        #expect(jordan.problem() == nil)
        var flow = Self.base()
        flow.sequence = Self.adding
        flow.bptt = 10
        flow.model.cell = .rnnTanh
        flow.model.layers = 1
        flow.flowReg = 0
        #expect(flow.problem() == nil)
        flow.flowReg = 2
        #expect(flow.problem() == nil)
    }

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
        // Skip weights, H×H per d, layer and direction.
        let skip = ModelConfig(cell: .rnnTanh, vocabSize: 37, embeddingSize: 5, hiddenSize: 11, layers: 3, skipSteps: [2, 5])
        #expect(MemoryEstimate.parameterCount(skip) == Double(ParameterLayout.languageModel(skip).parameterCount))
        for bidirectional in [false, true] {
            var task = Self.sequenceTask()
            task.bidirectional = bidirectional
            #expect(MemoryEstimate.parameterCount(skip, task)
                    == Double(ParameterLayout.sequenceModel(task.modelConfig(skip)).parameterCount))
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

    /// With reduction groups the estimate also counts GroupedGEMM's scratch for the widest weight
    /// gradient (W_hh here; the decoder's at a wide vocabulary), which at E's size is tens of MB.
    @Test(arguments: [(50, 1024), (10_000, 200)])
    func reductionGroupScratchIsInTheEstimate(vocab: Int, hidden: Int) {
        var config = Self.base()
        config.model.vocabSize = vocab
        config.model.hiddenSize = hidden
        config.batchSize = 32
        config.bptt = 64
        let without = MemoryEstimate.trainingBytes(config, worldSize: 1)
        config.reductionGroup = 4
        let with = MemoryEstimate.trainingBytes(config, worldSize: 1)
        let G = config.model.cell.gateCount, H = hidden, E = config.model.embeddingSize
        // What ReductionGroups allocates: one buffer for the decoder's one-call product or a layer's
        // packed ∂L/∂gates, whichever is larger, and one for a layer's packed b.
        let shared = max(GroupedGEMM.scratchCount(m: vocab, n: H, steps: 64, groupSize: 4, groups: 8),
                         GroupedGEMM.packedRowsCount(m: G * H, steps: 64, groupSize: 4, groups: 8))
        let bRows = [H, E].map { GroupedGEMM.productScratchCount(n: $0, steps: 64, groupSize: 4, groups: 8) }.max()!
        #expect(with - without >= 4 * Double(shared + bRows), "vocab \(vocab), hidden \(hidden)")
    }

    /// A new run given no `--reduction-group` takes `auto` where its groups fit the world size, and
    /// otherwise goes without them, saying why; an explicit choice (0 included) is never changed.
    @Test(arguments: [(32, 1, 4), (32, 2, 4), (32, 8, 4), (32, 16, 0), (24, 3, 0), (24, 2, 3), (20, 4, 5), (6, 3, 0), (1, 1, 1)])
    func aNewRunTakesGroupsWhereTheyFit(batch: Int, worldSize: Int, expected: Int) {
        var config = Self.base()
        config.batchSize = batch
        let why = config.adoptDefaultReductionGroup(worldSize: worldSize)
        #expect(config.reductionGroup == expected)
        #expect((why == nil) == (expected > 0), "B \(batch), W \(worldSize): \(why ?? "no notice")")
        if expected == 0 { #expect(why?.contains("\(worldSize) ranks cannot share --batch-size \(batch)") == true) }
        #expect(config.problem() == nil)
        #expect(config.reductionGroupProblem(worldSize: worldSize) == nil)
    }

    @Test func explicitGroupsAndRunsThatCannotGroupAreLeftAlone() {
        var explicit = Self.base()
        explicit.batchSize = 32
        explicit.reductionGroup = 0
        #expect(explicit.adoptDefaultReductionGroup(worldSize: 2) == nil && explicit.reductionGroup == 0)
        explicit.reductionGroup = 2
        #expect(explicit.adoptDefaultReductionGroup(worldSize: 2) == nil && explicit.reductionGroup == 2)

        // --accumulate keeps the groups where each micro-batch is a whole subtree of the rank's.
        var accumulating = Self.base()
        accumulating.batchSize = 32  // auto: 8 groups of 4
        accumulating.accumulate = 2
        var fits = accumulating
        #expect(fits.adoptDefaultReductionGroup(worldSize: 2) == nil && fits.reductionGroup == 4)
        #expect(fits.problem() == nil && fits.reductionGroupProblem(worldSize: 2) == nil)
        let why = accumulating.adoptDefaultReductionGroup(worldSize: 8)  // one group per rank
        #expect(accumulating.reductionGroup == 0 && why?.contains("--accumulate 2 cannot cut each rank's 1 group(s)") == true)
        #expect(accumulating.problem() == nil)

        var trees = Self.base()
        trees.trees = TreeTaskConfig(vocabSize: 50, numClasses: 5, nodeLabels: false, largestTree: 9, greatestHeight: 4)
        #expect(trees.adoptDefaultReductionGroup(worldSize: 2) == nil && trees.reductionGroup == 0)
    }
}
