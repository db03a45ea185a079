// What a model is: the cell kind, the sizes, and how parameters are initialised. Codable so the
// exact configuration travels inside every checkpoint.
import UnrollKernels
#if canImport(Glibc)
import Glibc
#endif

/// The recurrent cell of every layer.
public enum CellKind: String, Codable, CaseIterable, Sendable {
    /// Elman RNN with tanh (PyTorch `nn.RNN(nonlinearity='tanh')`).
    case rnnTanh = "rnn_tanh"
    /// Elman RNN with relu (PyTorch `nn.RNN(nonlinearity='relu')`).
    case rnnRelu = "rnn_relu"
    /// LSTM, gates i,f,g,o (PyTorch `nn.LSTM`).
    case lstm
    /// GRU, gates r,z,n (PyTorch `nn.GRU`).
    case gru
    /// Leaky-integration unit (Deep Learning §10.7.3): h' = (1 − α) ⊙ h + α ⊙ tanh(W_ih x + b_ih +
    /// W_hh h + b_hh), α per unit fixed or learned (see `LeakRate`).
    case leaky
    /// Clockwork RNN (Koutník, Greff, Gomez & Schmidhuber 2014): tanh units in equal modules with
    /// periods T_1 < T_2 < …; module i updates only at steps t with t mod T_i = 0 (otherwise keeps
    /// its state) and reads recurrently only from modules of period ≥ T_i (see `ClockPeriods`).
    case clockwork
    /// Output recurrence (Deep Learning §10.2 fig. 10.4): h_t = tanh(W_ih x_t + b_ih + W_yh y_{t−1}
    /// + b_yh), y_{t−1} the previous target (training) or prediction (free-running); one layer,
    /// sequence tasks with per-step targets only (see `JordanLayer`).
    case jordan
    /// Echo state network (Deep Learning §10.8; Jaeger 2001): the leaky unit with fixed random
    /// weights (sparse W_hh scaled to a spectral radius, see `EchoState`) and a readout solved in
    /// closed form; α fixed (default 1, no leak).
    case esn
    /// Recursive network over binary trees (layout `trees` only; TreeModel.swift): h = tanh(W_ih x +
    /// W_hh [h_L; h_R] + b) (Socher et al. 2011).
    case treeRNN = "tree_rnn"
    /// Binary Tree-LSTM (layout `trees` only; Tai, Socher & Manning 2015), gates i, f_L, f_R, o, u.
    case treeLSTM = "tree_lstm"

    /// Whether the cell runs on trees (layout `trees`) rather than sequences.
    public var isTree: Bool { self == .treeRNN || self == .treeLSTM }

    /// Gate blocks stacked in `weight_ih`/`weight_hh`: G in (G·H, in).
    public var gateCount: Int {
        switch self {
        case .rnnTanh, .rnnRelu, .leaky, .clockwork, .jordan, .esn, .treeRNN: 1
        case .lstm: 4
        case .treeLSTM: 5
        case .gru: 3
        }
    }

    /// Whether the carried state has a cell vector c besides h.
    public var hasCellState: Bool { self == .lstm }

    /// Elman cells (tanh, relu): the cells the flow regulariser applies to.
    public var isElman: Bool { self == .rnnTanh || self == .rnnRelu }
}

/// How parameters are drawn at initialisation.
public enum InitScheme: Codable, Equatable, Sendable {
    /// PyTorch defaults: recurrent weights and biases U(−1/√H, 1/√H); embedding N(0, 1);
    /// decoder weight and bias U(−1/√H, 1/√H).
    case pytorch
    /// Every parameter U(−a, a) (Zaremba et al. 2014 use 0.1 for small, 0.05 for medium).
    case uniform(Float)
    /// IRNN (Le, Jaitly & Hinton 2015): every H×H gate block of W_hh = I, recurrent biases 0,
    /// W_ih N(0, 0.001²); embedding and readout as `pytorch`.
    case identity
    /// Every H×H gate block of W_hh orthogonal (Saxe et al. 2014), from a seeded Gaussian matrix
    /// by Gram–Schmidt (QR with a positive diagonal of R); recurrent biases 0; the rest as `pytorch`.
    case orthogonal

    /// The name `--init` takes: pytorch, uniform, identity, orthogonal.
    public var name: String {
        switch self {
        case .pytorch: "pytorch"
        case .uniform: "uniform"
        case .identity: "identity"
        case .orthogonal: "orthogonal"
        }
    }
}

/// The leak rates α of a `leaky` layer, one per hidden unit (Deep Learning §10.7.3: units with
/// several time scales; α near 1 forgets fast, near 0 integrates over about 1/α steps).
public enum LeakRate: Codable, Equatable, Sendable, CustomStringConvertible {
    /// The same fixed α in every unit.
    case fixed(Float)
    /// Fixed α, log-spaced from `low` (unit 0) to `high` (unit H−1): many time scales.
    case range(low: Float, high: Float)
    /// α = σ(a) with a per unit a parameter (`rnn.leak_logit_l{k}`), initialised so that α is
    /// log-spaced from `low` to `high` as in `range`.
    case learned(low: Float, high: Float)

    /// What `--cell leaky` uses without `--leak`.
    public static let `default` = LeakRate.range(low: 0.01, high: 0.5)
    /// The span `--leak learned` starts from.
    public static let defaultLearned = LeakRate.learned(low: 0.01, high: 0.5)

    /// Parses `--leak`: `0.1` (fixed), `0.01:0.5` (log-spaced range), `learned` or `learned:LO:HI`.
    /// - Throws: `LeakRateError` with a one-line description of what is wrong.
    public init(parsing text: String) throws {
        let expected = "a rate in (0, 1] (0.1), a range LO:HI with 0 < LO < HI ≤ 1 (0.01:0.5), or learned[:LO:HI] with 0 < LO < HI < 1"
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func number(_ s: String) throws -> Float {
            guard let v = Float(s), v.isFinite else {
                throw LeakRateError(message: "expected \(expected), found '\(text)'")
            }
            return v
        }
        if parts[0] == "learned" {
            if parts.count == 1 { self = Self.defaultLearned; return }
            guard parts.count == 3 else { throw LeakRateError(message: "expected \(expected), found '\(text)'") }
            self = .learned(low: try number(parts[1]), high: try number(parts[2]))
        } else if parts.count == 1 {
            self = .fixed(try number(parts[0]))
        } else if parts.count == 2 {
            self = .range(low: try number(parts[0]), high: try number(parts[1]))
        } else {
            throw LeakRateError(message: "expected \(expected), found '\(text)'")
        }
        if let p = problem() { throw LeakRateError(message: "\(p), found '\(text)'") }
    }

    /// The rates' range problem in one line, or nil.
    public func problem() -> String? {
        switch self {
        case .fixed(let a):
            if !(a > 0 && a <= 1) { return "a fixed leak rate must be in (0, 1]" }
        case let .range(lo, hi):
            if !(lo > 0 && lo < hi && hi <= 1) { return "a leak range LO:HI needs 0 < LO < HI ≤ 1" }
        case let .learned(lo, hi):
            if !(lo > 0 && lo < hi && hi < 1) { return "a learned leak range learned:LO:HI needs 0 < LO < HI < 1 (α = σ(a))" }
        }
        return nil
    }

    /// Whether α is a parameter.
    public var isLearned: Bool { if case .learned = self { true } else { false } }

    /// The initial (or fixed) α of each of `hidden` units.
    public func rates(hidden H: Int) -> [Float] {
        switch self {
        case .fixed(let a): return [Float](repeating: a, count: H)
        case let .range(lo, hi), let .learned(lo, hi):
            // α_j = lo · (hi/lo)^(j/(H−1)): equal ratios between neighbouring time scales.
            guard H > 1 else { return [lo] }
            let ratio = Double(hi) / Double(lo)
            return (0..<H).map { Float(Double(lo) * pow(ratio, Double($0) / Double(H - 1))) }
        }
    }

    /// The `--leak` text that parses back to this value.
    public var description: String {
        switch self {
        case .fixed(let a): "\(a)"
        case let .range(lo, hi): "\(lo):\(hi)"
        case let .learned(lo, hi): "learned:\(lo):\(hi)"
        }
    }
}

/// A bad `--leak` value.
public struct LeakRateError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// `--leak` given for a cell other than `leaky` or `esn`, learned for `esn`, or out of range; nil
/// when fine.
public func leakProblem(cell: CellKind, leak: LeakRate?) -> String? {
    guard let leak else { return nil }
    if cell != .leaky && cell != .esn { return "--leak applies to --cell leaky or esn; the cell is \(cell.rawValue)" }
    if cell == .esn && leak.isLearned { return "--leak learned: an echo state network's reservoir is fixed; give a rate or a range" }
    return leak.problem().map { "--leak: \($0), got \(leak)" }
}

/// The module periods of a `clockwork` layer (Koutník et al. 2014), and its checks.
public enum ClockPeriods {
    /// Modules when neither --clock-modules nor --clock-periods is given: the largest M ≤ 8 that
    /// divides the hidden size.
    public static func defaultModules(hidden H: Int) -> Int {
        (1...8).last { H % $0 == 0 } ?? 1
    }

    /// Periods 1, 2, 4, …, 2^(M−1) (the paper's exponential series).
    public static func powersOfTwo(modules M: Int) -> [Int] { (0..<M).map { 1 << $0 } }

    /// The periods a clockwork layer of `hidden` units uses: `given`, or powers of two over the
    /// default number of modules.
    public static func resolved(_ given: [Int]?, hidden H: Int) -> [Int] {
        given ?? powersOfTwo(modules: defaultModules(hidden: H))
    }

    /// Largest period allowed (a module that never updates within any window is useless).
    public static let maximumPeriod = 1 << 20

    /// Range problem of a period list for `hidden` units, in one line; nil when fine.
    public static func problem(_ periods: [Int], hidden H: Int) -> String? {
        let list = periods.map(String.init).joined(separator: ",")
        if periods.isEmpty { return "--clock-periods: expected at least one period" }
        for (i, p) in periods.enumerated() {
            if p < 1 || p > maximumPeriod { return "--clock-periods: each period must be in 1...\(maximumPeriod), got \(list)" }
            if i > 0 && p <= periods[i - 1] { return "--clock-periods: periods must increase strictly (modules sorted by period), got \(list)" }
        }
        if H % periods.count != 0 {
            return "--cell clockwork: --hidden \(H) is not divisible into \(periods.count) equal modules (--clock-modules / --clock-periods \(list))"
        }
        return nil
    }
}

/// The skip steps d of `--skip-steps` (Deep Learning §10.7.2), and their checks.
public enum SkipSteps {
    /// Largest d accepted.
    public static let maximum = 100_000

    /// Parses `2,4`: distinct integers, returned sorted. Throws `SkipStepsError` in one line.
    public static func parse(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        var steps: [Int] = []
        for part in parts {
            guard let d = Int(String(part.filter { !$0.isWhitespace })) else {
                throw SkipStepsError(message: "--skip-steps: expected a comma-separated list of steps d ≥ 2 (2,4), got '\(text)'")
            }
            steps.append(d)
        }
        if let p = problem(steps) { throw SkipStepsError(message: p) }
        return steps.sorted()
    }

    /// Range problem of a list of skip steps, in one line; nil when fine.
    public static func problem(_ steps: [Int]) -> String? {
        let list = steps.map(String.init).joined(separator: ",")
        if steps.isEmpty { return "--skip-steps: expected at least one step d ≥ 2" }
        if steps.contains(where: { $0 < 2 || $0 > maximum }) {
            return "--skip-steps: each step d must be in 2...\(maximum) (d = 1 is the ordinary recurrence), got \(list)"
        }
        if Set(steps).count != steps.count { return "--skip-steps: each step may appear once, got \(list)" }
        return nil
    }
}

/// A bad `--skip-steps` value.
public struct SkipStepsError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The problem of `--skip-steps` and `--clock-periods` against the cell and the hidden size, in
/// one line; nil when fine.
public func recurrenceProblem(cell: CellKind, hidden H: Int, skipSteps: [Int]?, clockPeriods: [Int]?) -> String? {
    if let skipSteps {
        if cell != .rnnTanh && cell != .rnnRelu {
            return "--skip-steps applies to --cell rnn and rnn-relu; the cell is \(cell.rawValue)"
        }
        if let p = SkipSteps.problem(skipSteps) { return p }
    }
    if clockPeriods != nil, cell != .clockwork {
        return "--clock-periods / --clock-modules apply to --cell clockwork; the cell is \(cell.rawValue)"
    }
    if cell == .clockwork, H >= 1 { return ClockPeriods.problem(ClockPeriods.resolved(clockPeriods, hidden: H), hidden: H) }
    return nil
}

/// The leak rates `cell` runs with given `--leak`: the default range for `leaky`, α = 1 for `esn`,
/// nil for every other cell.
public func cellLeak(_ cell: CellKind, _ leak: LeakRate?) -> LeakRate? {
    switch cell {
    case .leaky: leak ?? .default
    case .esn: leak ?? EchoStateConfig.defaultLeak
    default: nil
    }
}

/// Reservoir settings given for a cell other than `esn`, or out of range; nil when fine.
public func echoStateProblem(cell: CellKind, echoState: EchoStateConfig?) -> String? {
    guard let echoState else { return nil }
    if cell != .esn { return "--radius, --density, --input-scale and --ridge apply to --cell esn; the cell is \(cell.rawValue)" }
    return echoState.problem()
}

/// The architecture of a recurrent language model: embedding → L recurrent layers → linear readout.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var cell: CellKind
    public var vocabSize: Int
    public var embeddingSize: Int
    public var hiddenSize: Int
    public var layers: Int
    /// Dropout probability on non-recurrent connections (embedding→layer 0, between layers,
    /// last layer→readout), as Zaremba et al. 2014. 0 disables it.
    public var dropout: Float
    public var initScheme: InitScheme
    /// LSTM only: initialise the forget-gate bias to 1 (Gers et al. 2000; Jozefowicz et al. 2015).
    public var forgetGateBias: Bool
    /// `leaky` only: the leak rates; nil = `LeakRate.default` (absent in older checkpoints).
    public var leak: LeakRate?
    /// `rnn`/`rnn-relu` only: skip connections through time from h_{t−d} for each d (sorted), own
    /// weights `rnn.weight_hh_skip{d}_l{k}`; nil = none (absent in older checkpoints).
    public var skipSteps: [Int]?
    /// `clockwork` only: module periods, strictly increasing; nil = `ClockPeriods.resolved`'s default.
    public var clockPeriods: [Int]?
    /// `esn` only: reservoir and ridge settings (nil = `EchoStateConfig.default`; absent in older
    /// checkpoints).
    public var echoState: EchoStateConfig?

    public init(cell: CellKind, vocabSize: Int, embeddingSize: Int, hiddenSize: Int, layers: Int,
                dropout: Float = 0, initScheme: InitScheme = .pytorch, forgetGateBias: Bool = false,
                leak: LeakRate? = nil, skipSteps: [Int]? = nil, clockPeriods: [Int]? = nil,
                echoState: EchoStateConfig? = nil) {
        self.leak = leak
        self.skipSteps = skipSteps
        self.clockPeriods = clockPeriods
        self.echoState = echoState
        self.cell = cell
        self.vocabSize = vocabSize
        self.embeddingSize = embeddingSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.dropout = dropout
        self.initScheme = initScheme
        self.forgetGateBias = forgetGateBias
    }

    /// Checks sizes; returns a one-line description of the first problem, or nil.
    public func problem() -> String? {
        if vocabSize < 1 { return "vocabulary size must be ≥ 1, got \(vocabSize)" }
        if embeddingSize < 1 { return "embedding size must be ≥ 1, got \(embeddingSize)" }
        if hiddenSize < 1 { return "hidden size must be ≥ 1, got \(hiddenSize)" }
        if layers < 1 { return "layers must be ≥ 1, got \(layers)" }
        if !(dropout >= 0 && dropout < 1) { return "dropout must be in [0, 1), got \(dropout)" }
        if case .uniform(let a) = initScheme, !(a > 0) { return "uniform init range must be > 0, got \(a)" }
        if cell == .jordan {
            return "--cell jordan needs per-step targets of a sequence dataset (it feeds back the previous target); a language model's previous target is its current input"
        }
        if let p = echoStateProblem(cell: cell, echoState: echoState) { return p }
        if let p = leakProblem(cell: cell, leak: leak) { return p }
        return recurrenceProblem(cell: cell, hidden: hiddenSize, skipSteps: skipSteps, clockPeriods: clockPeriods)
    }

    /// The leak rates a layer of this model uses: nil unless the cell is `leaky` or `esn`.
    public var effectiveLeak: LeakRate? { cellLeak(cell, leak) }

    /// The reservoir settings of an `esn` model (nil for other cells).
    public var effectiveEchoState: EchoStateConfig? { cell == .esn ? (echoState ?? .default) : nil }

    /// The skip steps a layer uses (empty: none).
    public var effectiveSkipSteps: [Int] { skipSteps ?? [] }

    /// The clock periods a layer uses: nil unless the cell is `clockwork`.
    public var effectiveClockPeriods: [Int]? {
        cell == .clockwork ? ClockPeriods.resolved(clockPeriods, hidden: hiddenSize) : nil
    }

    /// Input width of layer `k`.
    public func inputSize(ofLayer k: Int) -> Int { k == 0 ? embeddingSize : hiddenSize }

    /// Multiply–adds per token of one training step (forward + backward ≈ 3 × forward GEMM work),
    /// counted on the GEMMs only; used to report achieved GFLOP/s.
    public var trainingFlopsPerToken: Double {
        let G = Double(cell.gateCount), H = Double(hiddenSize)
        var forward = 0.0
        for k in 0..<layers { forward += 2 * G * H * (Double(inputSize(ofLayer: k)) + H) }
        forward += 2 * H * Double(vocabSize)
        return 3 * forward
    }
}
