// Decoding with a trained sequence-to-sequence model: greedy (a batch), beam search with a length
// penalty (one source) and ancestral sampling with a temperature (one source). The encoder runs
// once; the decoder then runs one step at a time on one-step copies of its layers, carrying the
// states (and h̃ for input feeding) between steps.
import UnrollKernels
#if canImport(Glibc)
import Glibc
#endif

/// One-step decoder layers and state for up to `capacity` rows.
final class InferenceWorkspace {
    let capacity: Int
    let layers: [any RecurrentLayer]
    /// (capacity, H) per layer: h (and c) carried between steps.
    let h: [FloatBuffer], c: [FloatBuffer]
    /// (capacity, H) h̃ of the previous step (input feeding).
    let feed: FloatBuffer
    /// (capacity, I) decoder input of the current step.
    let x: FloatBuffer
    /// (capacity, H) gather scratch.
    let scratch: FloatBuffer
    /// (S, capacity, D) and (S, capacity, H): the encoder memory of one source replicated per beam row.
    let values: FloatBuffer, keys: FloatBuffer
    let head: DecoderHeadWorkspace

    init(model: Seq2SeqModel, capacity: Int) {
        let c0 = model.config, H = c0.hiddenSize, S = model.maxSourceSteps
        self.capacity = capacity
        layers = (0..<c0.layers).map { k in
            RecurrentLayers.make(cell: c0.cell, index: k, inputSize: c0.decoderInputSize(ofLayer: k), hiddenSize: H,
                                 arena: model.arena, maxSteps: 1, maxBatch: capacity, prefix: "decoder.")
        }
        h = (0..<c0.layers).map { _ in FloatBuffer(count: capacity * H) }
        c = (0..<c0.layers).map { _ in FloatBuffer(count: c0.cell.hasCellState ? capacity * H : 0) }
        feed = FloatBuffer(count: capacity * H)
        x = FloatBuffer(count: capacity * c0.decoderInputSize(ofLayer: 0))
        scratch = FloatBuffer(count: capacity * H)
        values = FloatBuffer(count: S * capacity * c0.encoderWidth)
        keys = FloatBuffer(count: S * capacity * H)
        head = DecoderHeadWorkspace(config: c0, rows: capacity, sourceSteps: S)
    }
}

extension Seq2SeqModel {
    /// The inference workspace, grown to at least `rows` rows.
    func inferenceWorkspace(rows: Int) -> InferenceWorkspace {
        if let inference, inference.capacity >= rows { return inference }
        let w = InferenceWorkspace(model: self, capacity: max(rows, maxBatch))
        inference = w
        return w
    }

    /// Loads the decoder's initial states of the last `encode` (rows `from[j]` → row j) and zeroes h̃.
    private func startDecoder(_ w: InferenceWorkspace, rows: Int, from: (Int) -> Int) {
        let H = config.hiddenSize
        for k in 0..<config.layers {
            for j in 0..<rows {
                (w.h[k].pointer + j * H).update(from: initialH[k].pointer + from(j) * H, count: H)
                if config.cell.hasCellState {
                    (w.c[k].pointer + j * H).update(from: initialC[k].pointer + from(j) * H, count: H)
                }
            }
        }
        w.feed.pointer.update(repeating: 0, count: rows * H)
    }

    /// One decoder step for `rows` rows fed `tokens`; returns the (rows, V) logits.
    private func decodeStep(_ w: InferenceWorkspace, tokens: [Int32], memory: AttentionMemory) -> UnsafePointer<Float> {
        let rows = memory.batch, H = config.hiddenSize, E = config.embeddingSize
        let I = config.decoderInputSize(ofLayer: 0)
        tokens.withUnsafeBufferPointer { embedTargets(w.x.pointer, tokens: $0.baseAddress!, count: rows, width: I) }
        if config.inputFeeding {
            for j in 0..<rows { (w.x.pointer + j * I + E).update(from: w.feed.pointer + j * H, count: H) }
        }
        var input = UnsafePointer(w.x.pointer)
        for (k, layer) in w.layers.enumerated() {
            let state = LayerState(h: w.h[k].pointer, c: config.cell.hasCellState ? w.c[k].pointer : nil)
            layer.forward(input: input, steps: 1, batch: rows, lengths: nil, initial: state, final: state)
            input = UnsafePointer(layer.output)
        }
        headForward(w.head, rows: 0..<rows, top: input, memory: memory, logits: true)
        if config.inputFeeding {
            let h̃ = config.attention == .none ? input : UnsafePointer(w.head.attentional.pointer)
            w.feed.pointer.update(from: h̃, count: rows * H)
        }
        return UnsafePointer(w.head.logits.pointer)
    }

    /// Reorders the carried state: row j takes row `parents[j]`'s.
    private func gatherRows(_ w: InferenceWorkspace, parents: [Int]) {
        let H = config.hiddenSize
        var buffers = w.h + [w.feed]
        if config.cell.hasCellState { buffers += w.c }
        for buffer in buffers {
            for (j, p) in parents.enumerated() { (w.scratch.pointer + j * H).update(from: buffer.pointer + p * H, count: H) }
            buffer.pointer.update(from: w.scratch.pointer, count: parents.count * H)
        }
    }

    /// The memory of the last `encode` (batch 1) replicated into `rows` rows of `w`.
    private func replicatedMemory(_ w: InferenceWorkspace, rows: Int, length: Int, steps S: Int) -> AttentionMemory {
        let memory = currentMemory()
        let D = config.encoderWidth, kw = memory.keyWidth
        for s in 0..<S {
            for j in 0..<rows {
                (w.values.pointer + (s * rows + j) * D).update(from: memory.values + s * D, count: D)
                (w.keys.pointer + (s * rows + j) * kw).update(from: memory.keys + s * kw, count: kw)
            }
        }
        let keyed = config.attention == .general || config.attention == .additive
        return AttentionMemory(values: UnsafePointer(w.values.pointer),
                               keys: keyed ? UnsafePointer(w.keys.pointer) : UnsafePointer(w.values.pointer),
                               keyWidth: kw, lengths: Array(repeating: length, count: rows), steps: S, batch: rows)
    }

    /// Runs the encoder for decoding and records the memory the decoder reads.
    private func encodeForDecoding(source: UnsafePointer<Int32>, lengths: [Int], steps: Int, batch: Int) -> AttentionMemory {
        let memory = encode(source: source, lengths: lengths, steps: steps, batch: batch)
        sourceSteps = steps
        self.batch = batch
        sourceLengths = lengths
        forwardDone = false
        return memory
    }

    /// Greedy decoding of a batch (rows sorted by source length, non-increasing, as `forward`):
    /// each row's argmax tokens, without <bos> and <eos>, stopping at <eos> or after `maxLength`
    /// tokens. Invalidates the last forward (call `forward` again before `backward`).
    public func greedy(source: UnsafePointer<Int32>, sourceLengths: [Int], sourceSteps: Int, batch: Int,
                       bos: Int32, eos: Int32, maxLength: Int) -> [[Int32]] {
        let memory = encodeForDecoding(source: source, lengths: sourceLengths, steps: sourceSteps, batch: batch)
        let V = config.targetVocabSize
        let w = inferenceWorkspace(rows: batch)
        startDecoder(w, rows: batch) { $0 }
        var results = [[Int32]](repeating: [], count: batch)
        var done = [Bool](repeating: false, count: batch)
        var tokens = [Int32](repeating: bos, count: batch)
        var step = 0
        while step < maxLength && done.contains(false) {
            let logits = decodeStep(w, tokens: tokens, memory: memory)
            for i in 0..<batch {
                let y = Int32(argmax(logits + i * V, count: V))
                tokens[i] = y
                guard !done[i] else { continue }
                if y == eos { done[i] = true } else { results[i].append(y) }
            }
            step += 1
        }
        return results
    }

    /// GNMT length penalty lp(n) = ((5 + n) / 6)^α (Wu et al. 2016); α = 0 gives plain log p.
    public static func lengthPenalty(length n: Int, alpha: Double) -> Double {
        pow((5 + Double(n)) / 6, alpha)
    }

    /// Beam search for one source sequence. Keeps the `beam` best partial hypotheses by log p; a
    /// hypothesis that emits <eos> among the step's `beam` best candidates is finished. Stops when
    /// none is left, when no live hypothesis can still beat the best finished one (log p only falls
    /// as tokens are added, so a live hypothesis ends at best at log p / lp(maxLength + 1)), or
    /// after `maxLength` tokens (unfinished hypotheses then compete as they are). Returns
    /// the finished hypothesis with the highest score log p / lp(n), where lp is the GNMT penalty
    /// ((5 + n) / 6)^α with α = `lengthPenalty` and n counts the tokens including <eos>; without
    /// <bos> and <eos>. Ties go to the lower token id, so beam 1 is greedy decoding.
    public func beamSearch(source: [Int32], beam: Int, lengthPenalty alpha: Double, bos: Int32, eos: Int32,
                           maxLength: Int) -> [Int32] {
        precondition(beam >= 1, "beam must be ≥ 1, got \(beam)")
        let V = config.targetVocabSize, S = source.count
        _ = source.withUnsafeBufferPointer {
            encodeForDecoding(source: $0.baseAddress!, lengths: [S], steps: S, batch: 1)
        }
        let w = inferenceWorkspace(rows: beam)
        let memory = replicatedMemory(w, rows: beam, length: S, steps: S)
        startDecoder(w, rows: beam) { _ in 0 }
        var live: [(tokens: [Int32], logp: Double)] = [([], 0)]
        var finished: [(tokens: [Int32], score: Double)] = []
        var fed = [Int32](repeating: bos, count: beam)
        var logProbabilities = [Double](repeating: 0, count: V)
        var reachedLimit = true
        for _ in 0..<maxLength {
            let logits = decodeStep(w, tokens: fed, memory: memory)
            var candidates: [(row: Int, token: Int, logp: Double)] = []
            candidates.reserveCapacity(live.count * V)
            for (i, hypothesis) in live.enumerated() {
                logSoftmax(logits + i * V, count: V, into: &logProbabilities)
                for v in 0..<V { candidates.append((i, v, hypothesis.logp + logProbabilities[v])) }
            }
            candidates.sort { $0.logp != $1.logp ? $0.logp > $1.logp : ($0.row, $0.token) < ($1.row, $1.token) }
            var next: [(tokens: [Int32], logp: Double)] = [], parents: [Int] = []
            for candidate in candidates.prefix(beam) {
                let tokens = live[candidate.row].tokens
                if candidate.token == Int(eos) {
                    let n = tokens.count + 1
                    finished.append((tokens, candidate.logp / Self.lengthPenalty(length: n, alpha: alpha)))
                } else {
                    next.append((tokens + [Int32(candidate.token)], candidate.logp))
                    parents.append(candidate.row)
                }
            }
            // Stopping once `beam` hypotheses had finished would drop a likelier one still running
            // (an early, unlikely <eos> among the best candidates finishes a truncated output).
            let bestFinished = finished.map(\.score).max() ?? -.infinity
            let liveBound = (next.map(\.logp).max() ?? -.infinity) / Self.lengthPenalty(length: maxLength + 1, alpha: alpha)
            if next.isEmpty || bestFinished >= liveBound {
                reachedLimit = false
                live = next
                break
            }
            // Unused rows repeat the first hypothesis; their results are ignored.
            let rowParents = (0..<beam).map { $0 < parents.count ? parents[$0] : parents[0] }
            gatherRows(w, parents: rowParents)
            live = next
            fed = (0..<beam).map { $0 < next.count ? next[$0].tokens.last! : next[0].tokens.last! }
        }
        if reachedLimit || finished.isEmpty {
            for h in live { finished.append((h.tokens, h.logp / Self.lengthPenalty(length: h.tokens.count, alpha: alpha))) }
        }
        var best = 0
        for (i, f) in finished.enumerated() where f.score > finished[best].score { best = i }
        return finished.isEmpty ? [] : finished[best].tokens
    }

    /// Ancestral sampling for one source sequence: y_t ~ softmax(logits / temperature), fed back,
    /// until <eos> (not returned) or `maxLength` tokens. Draw t uses Philox block t of `seed`, so the
    /// result is a function of (parameters, source, temperature, seed).
    public func sample(source: [Int32], temperature: Float, seed: UInt64, bos: Int32, eos: Int32,
                       maxLength: Int) -> [Int32] {
        precondition(temperature > 0, "temperature must be > 0, got \(temperature)")
        let V = config.targetVocabSize, S = source.count
        let memory = source.withUnsafeBufferPointer {
            encodeForDecoding(source: $0.baseAddress!, lengths: [S], steps: S, batch: 1)
        }
        let w = inferenceWorkspace(rows: 1)
        startDecoder(w, rows: 1) { $0 }
        var result: [Int32] = [], token = bos
        var p = [Double](repeating: 0, count: V)
        for t in 0..<maxLength {
            let logits = decodeStep(w, tokens: [token], memory: memory)
            var top = -Double.infinity
            for v in 0..<V { top = max(top, Double(logits[v]) / Double(temperature)) }
            var sum = 0.0
            for v in 0..<V {
                p[v] = exp(Double(logits[v]) / Double(temperature) - top)
                sum += p[v]
            }
            let r = Philox.block(UInt32(truncatingIfNeeded: t), UInt32(truncatingIfNeeded: t >> 32), 0x5eed, 0,
                                 key: seed)
            let u = (Double(r.0 >> 5) * 67_108_864 + Double(r.1 >> 6)) / 9_007_199_254_740_992 * sum
            var acc = 0.0, choice = V - 1
            for v in 0..<V {
                acc += p[v]
                if u < acc { choice = v; break }
            }
            token = Int32(choice)
            if token == eos { break }
            result.append(token)
        }
        return result
    }
}

/// out[v] = log softmax(x)[v] in Double.
func logSoftmax(_ x: UnsafePointer<Float>, count: Int, into out: inout [Double]) {
    var top = -Double.infinity
    for v in 0..<count { top = max(top, Double(x[v])) }
    var sum = 0.0
    for v in 0..<count { sum += exp(Double(x[v]) - top) }
    let lse = top + log(sum)
    for v in 0..<count { out[v] = Double(x[v]) - lse }
}
