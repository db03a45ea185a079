// What a configuration will allocate, computed in closed form (Double, so absurd sizes cannot
// overflow) before anything is allocated: a configuration (from the command line or from a
// checkpoint's stored text) that needs more memory than the machine has is refused in one line
// instead of aborting in the allocator or looping for hours over a billion layers.
#if canImport(Glibc)
import Glibc
#endif
import UnrollData
import UnrollModels

public enum MemoryEstimate {
    /// Parameters of the language model `model` (as `ParameterLayout.languageModel` lays them out).
    public static func parameterCount(_ model: ModelConfig) -> Double {
        let G = Double(model.cell.gateCount), H = Double(model.hiddenSize), E = Double(model.embeddingSize)
        let V = Double(model.vocabSize), L = Double(model.layers)
        let firstLayer = G * H * (E + H) + 2 * G * H
        let otherLayers = max(0, L - 1) * (G * H * 2 * H + 2 * G * H)
        let leak = model.effectiveLeak?.isLearned == true ? L * H : 0
        let skips = L * Double(model.effectiveSkipSteps.count) * H * H
        return V * E + firstLayer + otherLayers + leak + skips + H * V + V
    }

    /// Parameters of a sequence task's model (as `ParameterLayout.sequenceModel` lays them out).
    public static func parameterCount(_ m: ModelConfig, _ s: SequenceTaskConfig) -> Double {
        let G = Double(m.cell.gateCount), H = Double(m.hiddenSize), L = Double(m.layers)
        let D: Double = s.bidirectional ? 2 : 1, input = s.tokens ? Double(m.embeddingSize) : Double(s.inputDim)
        let outputs = Double(s.targetDim) * (s.outputKind == .classes ? Double(s.numClasses) : 1)
        let first = m.cell == .jordan ? H * (input + outputs) + 2 * H : D * (G * H * (input + H) + 2 * G * H)
        let others = max(0, L - 1) * D * (G * H * (D * H + H) + 2 * G * H)
        let leak = m.effectiveLeak?.isLearned == true ? L * D * H : 0
        let skips = L * D * Double(m.effectiveSkipSteps.count) * H * H
        return (s.tokens ? Double(m.vocabSize) * input : 0) + first + others + leak + skips + outputs * (D * H + 1)
    }

    /// Parameters of an encoder–decoder (as `ParameterLayout.seq2seqModel` lays them out),
    /// over-estimated: every attention kind's weights are counted.
    public static func parameterCount(_ m: ModelConfig, _ p: Seq2SeqTaskConfig) -> Double {
        let G = Double(m.cell.gateCount), H = Double(m.hiddenSize), L = Double(m.layers), E = Double(m.embeddingSize)
        let D: Double = p.bidirectional ? 2 : 1
        let encoder = Double(p.sourceVocabSize) * E + D * (G * H * (E + H) + 2 * G * H)
            + max(0, L - 1) * D * (G * H * (D * H + H) + 2 * G * H)
        let decoderInput = E + (p.inputFeeding ? H : 0)
        let decoder = Double(p.targetVocabSize) * E + G * H * (decoderInput + H) + 2 * G * H
            + max(0, L - 1) * (G * H * 2 * H + 2 * G * H)
        let bridge = 2 * L * (D * H * H + H)
        let attention = 3 * D * H * H + H + H * (D * H + H)
        return encoder + decoder + bridge + attention + Double(p.targetVocabSize) * (H + 1)
    }

    /// Bytes one training process of an encoder–decoder allocates: caches for a whole global batch
    /// of the longest source and target (evaluation batches are global), over-estimated.
    static func seq2seqTrainingBytes(_ config: TrainingConfig, _ p: Seq2SeqTaskConfig) -> Double {
        let m = config.model
        let P = parameterCount(m, p), slots = Double(config.optimizer.slotNames.count)
        let G = Double(m.cell.gateCount), H = Double(m.hiddenSize), L = Double(m.layers), E = Double(m.embeddingSize)
        let D: Double = p.bidirectional ? 2 : 1, B = Double(config.batchSize)
        let S = Double(p.longestSource), T = Double(p.longestTarget + 1), V = Double(p.targetVocabSize)
        let encoder = S * B * (L * D * (3 * G * H + 6 * H) + 2 * E)
        let decoder = T * B * (L * (3 * G * H + 6 * H) + 2 * E + 8 * H + 3 * V + 4 * S)
        return 4 * ((2 + slots) * P + encoder + decoder)
    }

    /// Bytes one training process of a sequence task allocates: its model's caches hold a whole
    /// global batch (evaluation batches are global), over-estimated.
    static func sequenceTrainingBytes(_ config: TrainingConfig, _ s: SequenceTaskConfig) -> Double {
        let m = config.model
        let P = parameterCount(m, s), slots = Double(config.optimizer.slotNames.count)
        let G = Double(m.cell.gateCount), H = Double(m.hiddenSize), L = Double(m.layers)
        let D: Double = s.bidirectional ? 2 : 1, input = s.tokens ? Double(m.embeddingSize) : Double(s.inputDim)
        let outputs = Double(s.targetDim) * (s.outputKind == .classes ? Double(s.numClasses) : 1)
        let T = Double(min(config.bptt, s.longest)), B = Double(config.batchSize)
        let perStep = L * D * (3 * G * H + 6 * H) + 2 * input + 4 * D * H + 2 * outputs
        return 4 * ((2 + slots) * P + T * B * perStep) + stagingBytes(config, parameters: P)
    }

    /// Bytes one training process allocates (parameters, gradients, optimizer slots, the BPTT
    /// caches of its share of the batch, logits, evaluation workspaces), over-estimated.
    public static func trainingBytes(_ config: TrainingConfig, worldSize: Int) -> Double {
        if let t = config.trees { return treeTrainingBytes(config, t) }
        if let s = config.sequence { return sequenceTrainingBytes(config, s) }
        if let p = config.seq2seq { return seq2seqTrainingBytes(config, p) }
        let m = config.model
        let P = parameterCount(m)
        let slots = Double(config.optimizer.slotNames.count)
        let G = Double(m.cell.gateCount), H = Double(m.hiddenSize), E = Double(m.embeddingSize)
        let V = Double(m.vocabSize), L = Double(m.layers), T = Double(config.bptt)
        // One micro-batch's activations at a time (`--accumulate`).
        let localBatch = (Double(config.batchSize) / Double(max(1, worldSize) * config.accumulation)).rounded(.up)
        let evalBatch = (Double(config.evalStreams) / Double(max(1, worldSize))).rounded(.up)
        // Per (time step, stream): gates and states of every layer, input, logits and probabilities.
        let perToken = L * (2 * G * H + 4 * H) + E + 2 * V
        let activations = T * (localBatch + evalBatch) * perToken
        let state = 2 * L * (Double(config.batchSize) + Double(config.evalStreams)) * H
        // `--accumulate K` with groups: one pending gradient per level of the micro-batches' tree.
        let treeLevels = config.effectiveReductionGroup > 0 && config.accumulation > 1
            ? log2(Double(config.accumulation)).rounded(.up) : 0
        return 4 * ((2 + slots + treeLevels) * P + activations + state + groupScratch(config, localBatch: localBatch))
            + stagingBytes(config, parameters: P)
    }

    /// Floats the reduction groups of a language model add: GroupedGEMM's packed copies of the
    /// operands of the weight gradients (all T·b rows, rounded up to whole panels: the readout's
    /// decoder.weight packs ∂L/∂logits (T·b × V) and its input in one buffer; a layer packs
    /// ∂L/∂gates (T·b × G·H) into the same buffer and b (T·b × max(E, H)) into another), the
    /// halving tree's level buffers (decoder bias, touched embedding rows) and a group-major
    /// readout's gathered input and ∂L/∂x.
    static func groupScratch(_ config: TrainingConfig, localBatch: Double) -> Double {
        let g = config.effectiveReductionGroup
        guard g > 0 else { return 0 }
        let m = config.model
        let G = Double(m.cell.gateCount), H = Double(m.hiddenSize), E = Double(m.embeddingSize)
        let V = Double(m.vocabSize), T = Double(config.bptt), rows = T * localBatch
        let widest = max(G * H + 6, V + 6 + H + 16) + max(E, H) + 16
        let levels = (log2(max(1, localBatch / Double(g)))).rounded(.up) + 2
        let levelFloats = levels * (V + min(V, rows) * E + G * H)
        return rows * widest + levelFloats + 2 * rows * H
    }

    /// Bytes one training process of a tree task allocates: parameters, gradients and slots, and
    /// per node of a global batch of the largest trees its inputs, gates, states and gradients.
    static func treeTrainingBytes(_ config: TrainingConfig, _ t: TreeTaskConfig) -> Double {
        let P = Double(ParameterLayout.treeModel(t.modelConfig(config.model)).totalCount)
        let slots = Double(config.optimizer.slotNames.count)
        let G = Double(t.modelConfig(config.model).gateCount), H = Double(config.model.hiddenSize)
        let E = Double(config.model.embeddingSize), C = Double(t.numClasses)
        let perNode = 2 * E + 2 * G * H + 14 * H + 2 * C
        return 4 * ((2 + slots) * P + Double(config.batchSize) * Double(t.largestTree) * perNode) + stagingBytes(config, parameters: P)
    }

    /// The copy of parameters and optimizer slots a background checkpoint write works from (rank 0,
    /// with checkpoints; see CheckpointWriter).
    static func stagingBytes(_ config: TrainingConfig, parameters P: Double) -> Double {
        config.checkpointDir == nil ? 0 : 4 * (1 + Double(config.optimizer.slotNames.count)) * P
    }

    /// "this model and batch needs … (--hidden …)" if training `config` on `worldSize` ranks
    /// would not fit in this machine's memory, else nil.
    public static func trainingProblem(_ config: TrainingConfig, worldSize: Int) -> String? {
        guard let short = shortfall(bytesPerProcess: trainingBytes(config, worldSize: worldSize)) else { return nil }
        let m = config.model
        if let t = config.trees {
            return "this model and batch \(short) (--hidden \(m.hiddenSize), --embedding \(m.embeddingSize), "
                + "--batch-size \(config.batchSize), largest tree \(t.largestTree) nodes)"
        }
        if let s = config.sequence {
            return "this model and batch \(short) (--hidden \(m.hiddenSize), --layers \(m.layers)"
                + (s.bidirectional ? " bidirectional" : "") + (s.tokens ? ", --embedding \(m.embeddingSize), vocabulary \(m.vocabSize)" : ", \(s.inputDim) features")
                + ", --batch-size \(config.batchSize), longest sequence \(s.longest), --bptt \(config.bptt))"
        }
        if let p = config.seq2seq {
            return "this model and batch \(short) (--hidden \(m.hiddenSize), --layers \(m.layers), --embedding \(m.embeddingSize), "
                + "vocabularies \(p.sourceVocabSize)/\(p.targetVocabSize), --batch-size \(config.batchSize), "
                + "longest source \(p.longestSource), longest target \(p.longestTarget))"
        }
        return "this model and batch \(short) (--hidden \(m.hiddenSize), --embedding \(m.embeddingSize), "
            + "--layers \(m.layers), vocabulary \(m.vocabSize), --batch-size \(config.batchSize), --bptt \(config.bptt), "
            + "--eval-streams \(config.evalStreams))"
    }

    /// Bytes to hold one checkpoint of `config` in memory while loading it.
    public static func checkpointBytes(_ config: TrainingConfig) -> Double {
        let P = config.trees.map { Double(ParameterLayout.treeModel($0.modelConfig(config.model)).totalCount) }
            ?? config.sequence.map { parameterCount(config.model, $0) }
            ?? config.seq2seq.map { parameterCount(config.model, $0) } ?? parameterCount(config.model)
        let state = 2 * Double(config.model.layers) * Double(config.batchSize) * Double(config.model.hiddenSize)
        return 4 * ((1 + Double(config.optimizer.slotNames.count)) * P + state)
    }


    /// Processes of this job on this machine (Open MPI tells each rank; 1 otherwise).
    public static var processesOnThisMachine: Int {
        guard let text = getenv("OMPI_COMM_WORLD_LOCAL_SIZE").map({ String(cString: $0) }), let n = Int(text), n >= 1
        else { return 1 }
        return n
    }

    /// "needs 80.0 GB per process × 2 on this machine, it has 24.0 GB", or nil if it fits (with a
    /// tenth of the machine left for everything else).
    public static func shortfall(bytesPerProcess: Double, processes: Int = processesOnThisMachine,
                                 machine: Double = SystemMemory.physicalBytes) -> String? {
        guard !SystemMemory.fits(bytesPerProcess * Double(processes), machine: machine) else { return nil }
        let gb = SystemMemory.gigabytes
        let each = processes > 1 ? "\(gb(bytesPerProcess)) per process × \(processes) on this machine" : gb(bytesPerProcess)
        return "needs \(each), this machine has \(gb(machine))"
    }
}
