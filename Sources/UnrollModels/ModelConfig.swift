// What a model is: the cell kind, the sizes, and how parameters are initialised. Codable so the
// exact configuration travels inside every checkpoint.
import UnrollKernels

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

    /// Gate blocks stacked in `weight_ih`/`weight_hh`: G in (G·H, in).
    public var gateCount: Int {
        switch self {
        case .rnnTanh, .rnnRelu: 1
        case .lstm: 4
        case .gru: 3
        }
    }

    /// Whether the carried state has a cell vector c besides h.
    public var hasCellState: Bool { self == .lstm }
}

/// How parameters are drawn at initialisation.
public enum InitScheme: Codable, Equatable, Sendable {
    /// PyTorch defaults: recurrent weights and biases U(−1/√H, 1/√H); embedding N(0, 1);
    /// decoder weight and bias U(−1/√H, 1/√H).
    case pytorch
    /// Every parameter U(−a, a) (Zaremba et al. 2014 use 0.1 for small, 0.05 for medium).
    case uniform(Float)
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

    public init(cell: CellKind, vocabSize: Int, embeddingSize: Int, hiddenSize: Int, layers: Int,
                dropout: Float = 0, initScheme: InitScheme = .pytorch, forgetGateBias: Bool = false) {
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
        return nil
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
