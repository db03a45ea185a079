// Training an echo state network (`--cell esn`, Deep Learning §10.8): one pass of the fixed
// reservoir over the train split and a ridge-regression readout in closed form (Lukoševičius 2012
// §4.1). The split runs in the evaluation batches (sorted by length, B per batch), so every batch
// has the same rows and the same bits wherever it runs. The batches form at most 64 groups of
// consecutive batches (a split that depends on the data alone); group g runs on rank g mod W and
// sums, in Double and batch order, G_g = Φᵀ Φ and C_g = Φᵀ Y — Φ the head's inputs plus a bias
// column (the state after each sequence's last valid step, or every valid step's state for
// per-step targets), Y the targets (values, or one-hot rows of each label's classes). The group
// sums are added exactly (`ExactSum`), one Double allreduce adds the ranks' exact sums, and rank 0
// solves (G + λI) W = C by Cholesky and sends W to every rank: the readout is the same bits on
// every rank and at any world size. W becomes `head.weight`/`head.bias`, so eval and predict run
// the model as any other.
import Foundation
import UnrollData
import UnrollDistributed
import UnrollKernels
import UnrollModels

/// What fitting an echo state readout did.
public struct EchoStateFit: Sendable {
    /// Features per row (the head's input width + 1 for the bias) and outputs.
    public var features: Int
    public var outputs: Int
    /// Feature rows in the normal equations (sequences, or valid steps for per-step targets).
    public var rows: Int
    /// Spectral radius of each reservoir (layer, direction), by power iteration.
    public var radii: [Double]
    public var seconds: Double
}

extension SequenceTask {
    /// Most groups of batches an echo-state fit sums separately (see `fitEchoStateReadout`).
    static let echoStateGroups = 64

    /// Runs the reservoir over the train split and solves the readout into `head.*` (collective).
    /// - Throws: `AgreedError` on every rank when the ridge system is singular (one line naming
    ///   `--ridge`), `TrainingError.config` when a reservoir has spectral radius 0.
    public func fitEchoStateReadout() throws -> EchoStateFit {
        guard let echoState = model.config.effectiveEchoState else { preconditionFailure("not an echo state network") }
        guard let train else { throw TrainingError.data("\(config.data): no train split loaded") }
        let start = Date()
        let H = config.model.hiddenSize
        var radii: [Double] = []
        for view in arena.layout.views where view.name.hasPrefix("rnn.weight_hh") {
            let rho = EchoState.spectralRadius(arena.parameters(view), size: H, seed: config.seed, stream: 0x5EED)
            if rho == 0 {
                throw TrainingError.config("--density \(echoState.density): the reservoir \(view.name) (\(H) units) is nilpotent "
                                           + "(spectral radius 0) and cannot be scaled to --radius; raise --density or --hidden")
            }
            radii.append(rho)
        }
        let D = model.config.directions * H, F = D + 1, O = model.config.outputSize
        let d = sequence.targetDim, C = sequence.outputKind == .classes ? sequence.numClasses : 0
        let lower = F * (F + 1) / 2
        var total = ExactSum(count: lower + F * O)
        var gram = [Double](repeating: 0, count: F * F), cross = [Double](repeating: 0, count: F * O)
        var phi: [Double] = [], y: [Double] = []
        var rowCount = 0.0
        let batches = SequenceBatches.evaluation(lengths: train.lengths, batchSize: config.batchSize)
        // Groups of consecutive batches, a number that depends on the data alone (at most
        // `echoStateGroups`): group g's sums run in Double in batch order wherever it runs, and only
        // the group totals go through the exact accumulator. Rank r runs groups r, r + W, ….
        let groups = min(batches.count, Self.echoStateGroups)
        for g in stride(from: communicator.rank, to: groups, by: communicator.size) {
            for i in gram.indices { gram[i] = 0 }
            for i in cross.indices { cross[i] = 0 }
            for j in (g * batches.count / groups)..<((g + 1) * batches.count / groups) {
                let rows = batches[j]
                let windows = max(1, (train.lengths[rows[0]] + window - 1) / window)
                for w in 0..<windows {
                    let lengths = runWindow(train, rows: rows, window: w, dropout: nil)
                    // Targets and the mask of rows that count in this window.
                    _ = windowLoss(train, rows: rows, window: w, lengths: lengths, gradients: false)
                    guard let input = model.headInputs else { continue }
                    let B = rows.count, steps = max(lengths.first ?? 0, 1)
                    let outputRows = sequence.perStep ? steps * B : B
                    if phi.count < outputRows * F { phi = [Double](repeating: 0, count: outputRows * F) }
                    if y.count < outputRows * O { y = [Double](repeating: 0, count: outputRows * O) }
                    var n = 0
                    phi.withUnsafeMutableBufferPointer { phi in
                        y.withUnsafeMutableBufferPointer { y in
                            for r in 0..<outputRows where rowMask[r] == 1 {
                                let row = phi.baseAddress! + n * F, source = input + r * D
                                for c in 0..<D { row[c] = Double(source[c]) }
                                row[D] = 1
                                let target = y.baseAddress! + n * O
                                target.update(repeating: 0, count: O)
                                for k in 0..<d {
                                    if C > 0 {
                                        target[k * C + Int(classTargets[r * d + k])] = 1
                                    } else {
                                        target[k] = Double(valueTargets[r * d + k])
                                    }
                                }
                                n += 1
                            }
                        }
                    }
                    rowCount += Double(n)
                    phi.withUnsafeBufferPointer { p in
                        y.withUnsafeBufferPointer { t in
                            gram.withUnsafeMutableBufferPointer { g in
                                cross.withUnsafeMutableBufferPointer { x in
                                    Ridge.accumulate(gram: g.baseAddress!, cross: x.baseAddress!,
                                                     phi: p.baseAddress!, y: t.baseAddress!, rows: n,
                                                     features: F, outputs: O)
                                }
                            }
                        }
                    }
                }
            }
            // This group's sums join the exact total (lower triangle of G row by row, then C).
            gram.withUnsafeBufferPointer { g in
                var e = 0
                for a in 0..<F {
                    total.add(g.baseAddress! + a * F, count: a + 1, at: e)
                    e += a + 1
                }
            }
            cross.withUnsafeBufferPointer { total.add($0.baseAddress!, count: F * O, at: lower) }
        }
        // Integers below 2⁵³ in every limb: the Double reduction adds them exactly, in any order.
        total.normalize()
        try total.storage.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        var counted = [rowCount]
        try counted.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        total.normalize()
        var e = 0
        for a in 0..<F {
            for b in 0...a {
                gram[a * F + b] = total.value(at: e)
                gram[b * F + a] = gram[a * F + b]
                e += 1
            }
        }
        for i in 0..<(F * O) { cross[i] = total.value(at: lower + i) }
        let solvedBits: [UInt32] = try rootDecides(communicator) { [gram, cross] in
            do {
                let w = try Ridge.solve(gram: gram, cross: cross, features: F, outputs: O, lambda: echoState.ridge)
                guard w.allSatisfy({ $0.isFinite && abs($0) < Double(Float.greatestFiniteMagnitude) }) else {
                    throw TrainingError.config("--ridge \(echoState.ridge): the readout overflows Float; raise --ridge")
                }
                // head.weight (O, D) = Wᵀ of the state rows, head.bias (O) = the bias row.
                var bits = [UInt32](repeating: 0, count: O * F)
                for k in 0..<O {
                    for c in 0..<D { bits[k * D + c] = Float(w[c * O + k]).bitPattern }
                    bits[O * D + k] = Float(w[D * O + k]).bitPattern
                }
                return bits
            } catch let error as RidgeError {
                let hint = echoState.ridge == 0 ? "; give --ridge > 0" : "; raise --ridge"
                throw TrainingError.config("--ridge \(echoState.ridge): \(error.message) over \(Int(counted[0])) rows\(hint)")
            }
        }
        let weight = arena.view("head.weight"), bias = arena.view("head.bias")
        let wp = arena.parameters(weight), bp = arena.parameters(bias)
        for i in 0..<(O * D) { wp[i] = Float(bitPattern: solvedBits[i]) }
        for k in 0..<O { bp[k] = Float(bitPattern: solvedBits[O * D + k]) }
        return EchoStateFit(features: F, outputs: O, rows: Int(counted[0]), radii: radii,
                            seconds: Date().timeIntervalSince(start))
    }
}
