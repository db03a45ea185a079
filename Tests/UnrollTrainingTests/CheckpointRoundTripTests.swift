// Checkpoint format v1 round trip: what `Checkpoint.save` writes is laid out as documented in
// Sources/UnrollTraining/CheckpointFormat.md, and save → load → restore into a fresh trainer reproduces parameters,
// optimizer slots, progress and carried state bit for bit, so the next step is identical too.
import Foundation
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
@testable import UnrollTraining

@Suite struct CheckpointRoundTripTests {
    typealias F = CheckpointFixtures

    @Test(arguments: [(CellKind.lstm, OptimizerKind.adam), (.gru, .nesterov), (.rnnTanh, .adagrad), (.rnnRelu, .sgd),
                      (.leaky, .adam)])
    func saveLoadRestoreIsBitExactAndTheNextStepMatches(cell: CellKind, optimizer: OptimizerKind) throws {
        let dir = try CheckpointScratch("roundTrip\(cell)\(optimizer)")
        let data = dir.file("arith.h5")
        let vocab = try F.makeArith(data)
        var config = F.config(data: data, vocab: vocab, cell: cell, optimizer: optimizer)
        if cell == .leaky {
            // Learned rates (a parameter `rnn.leak_logit_l{k}`) and a non-default init travel too.
            config.model.leak = .defaultLearned
            config.model.initScheme = .orthogonal
        }
        let trained = try F.trainer(config, steps: 3)
        // Non-default schedule and best-loss state, so the test sees whether they travel.
        trained.progress.bestValidLoss = 2.75
        trained.progress.scheduleState.plateauFactor = 0.5
        trained.progress.scheduleState.plateauBest = 2.5
        trained.progress.scheduleState.plateauBadEvaluations = 1
        trained.progress.skippedSteps = 1
        let path = dir.file("ck.h5")
        let sha = try fileSHA256(data)
        try Checkpoint.save(trained, to: path, dataSHA256: sha)

        let content = try Checkpoint.load(path)
        #expect(content.config == config)
        #expect(content.progress == trained.progress)
        #expect(content.optimizerSteps == trained.optimizer.stepCount)
        #expect(content.optimizerSteps == 3)
        #expect(content.worldSize == 1)
        #expect(content.dataFile == data)
        #expect(content.dataSHA256 == sha)
        #expect(content.vocabulary == (try trained.dataset.vocabulary()))
        let expected = F.parameters(trained)
        #expect(Set(content.parameters.keys) == Set(expected.keys))
        for (name, values) in expected {
            #expect(content.parameters[name]?.map(\.bitPattern) == values.map(\.bitPattern), "\(name)")
        }
        #expect(Set(content.optimizerSlots.keys) == Set(config.optimizer.slotNames))

        let fresh = try F.trainer(config)
        // Three steps moved the parameters away from the (seeded, identical) initial values.
        #expect(F.arenaBits(fresh) != F.arenaBits(trained))
        try Checkpoint.restore(content, into: fresh, file: path)
        #expect(F.arenaBits(fresh) == F.arenaBits(trained))
        #expect(F.slotBits(fresh) == F.slotBits(trained))
        if optimizer != .sgd {
            #expect(F.slotBits(fresh).values.contains { $0.contains { $0 != 0 } }, "slots stayed zero: nothing tested")
        }
        #expect(fresh.optimizer.stepCount == trained.optimizer.stepCount)
        #expect(fresh.progress == trained.progress)
        let (h0, c0) = F.hiddenBits(trained), (h1, c1) = F.hiddenBits(fresh)
        #expect(h1 == h0)
        #expect(c1 == c0)
        #expect(h0.contains { $0 != 0 }, "carried state is zero: nothing tested")
        #expect(fresh.currentLearningRate == trained.currentLearningRate)

        let a = try trained.step(), b = try fresh.step()
        #expect(a.loss.bitPattern == b.loss.bitPattern)
        #expect(a.learningRate == b.learningRate)
        #expect(F.arenaBits(fresh) == F.arenaBits(trained))
        #expect(F.slotBits(fresh) == F.slotBits(trained))
        #expect(F.hiddenBits(fresh).h == F.hiddenBits(trained).h)
    }

    /// The file holds exactly the documented objects, types, shapes and storage.
    @Test func fileLayoutMatchesTheDocumentedFormat() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir, cell: .lstm, optimizer: .adam, steps: 2)
        let file = try H5File.open(path)
        let m = t.config.model
        let B = t.config.batchSize, H = m.hiddenSize

        #expect(try file.attributeNames() == ["config", "created", "data_file", "data_sha256", "format", "unroll_version",
                                              "version", "world_size"])
        #expect(try file.stringAttribute("format") == "unroll.checkpoint")
        #expect(try file.attributeType("version") == .int64)
        #expect(try file.intAttribute("version") == 2)
        #expect(try file.superblockVersion() >= 2)
        #expect(try file.stringAttribute("unroll_version") == UnrollVersion.string)
        #expect(try file.attributeType("world_size") == .int64)
        #expect(try file.intAttribute("world_size") == 1)
        #expect(try file.stringAttribute("data_sha256") == (try fileSHA256(t.config.data)))
        #expect(try file.stringAttribute("data_file") == t.config.data)
        let created = try file.stringAttribute("created")
        #expect(ISO8601DateFormatter().date(from: created) != nil, "created: \(created)")
        let config = try JSONDecoder().decode(TrainingConfig.self, from: Data(try file.stringAttribute("config").utf8))
        #expect(config == t.config)
        #expect(try file.memberNames() == ["hidden", "optimizer", "params", "state", "vocab"])

        let layout = ParameterLayout.languageModel(m)
        let params = try file.openGroup("params")
        #expect(try params.memberNames() == layout.views.map(\.name).sorted())
        for view in layout.views {
            let d = try params.openDataset(view.name)
            #expect(d.shape == view.shape, "\(view.name)")
            #expect(d.elementType == .float32, "\(view.name)")
            let storage = try d.storage()
            #expect(storage.chunk != nil && storage.fletcher32, "\(view.name) is not chunked with Fletcher32")
        }
        let opt = try file.openGroup("optimizer")
        #expect(try opt.stringAttribute("kind") == "adam")
        #expect(try opt.intAttribute("step") == 2)
        #expect(try opt.memberNames() == ["exp_avg", "exp_avg_sq"])
        for slot in ["exp_avg", "exp_avg_sq"] {
            let g = try opt.openGroup(slot)
            #expect(try g.memberNames() == layout.views.map(\.name).sorted())
            for view in layout.views {
                let d = try g.openDataset(view.name)
                #expect(d.shape == view.shape && d.elementType == .float32, "/optimizer/\(slot)/\(view.name)")
                #expect(try d.storage().fletcher32, "/optimizer/\(slot)/\(view.name)")
            }
        }

        let st = try file.openGroup("state")
        #expect(try st.intAttribute("step") == 2)
        #expect(try st.intAttribute("epoch") == 1)
        #expect(try st.doubleAttribute("best_valid_loss") == .infinity)
        #expect(try st.intAttribute("seed") == 11)
        // Non-finite numbers are stored as the strings "inf", "-inf", "nan".
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                       nan: "nan")
        let progress = try decoder.decode(TrainingProgress.self, from: Data(try st.stringAttribute("progress").utf8))
        #expect(progress.bestValidLoss == .infinity)
        #expect(progress.step == 2 && progress.window == 2)
        let cursor = try st.openDataset("stream_cursor")
        #expect(cursor.shape == [B] && cursor.elementType == .int64)
        #expect(try cursor.read(as: Int64.self) == [Int64](repeating: 2, count: B))

        let hidden = try file.openGroup("hidden")
        #expect(try hidden.memberNames() == ["l0", "l1"])
        for k in 0..<m.layers {
            let g = try hidden.openGroup("l\(k)")
            #expect(try g.memberNames() == ["c", "h"])
            for name in ["h", "c"] {
                let d = try g.openDataset(name)
                #expect(d.shape == [B, H] && d.elementType == .float32, "/hidden/l\(k)/\(name)")
                #expect(try d.storage().fletcher32, "/hidden/l\(k)/\(name)")
            }
            // Global stream b of layer k is row b (one rank: global = local).
            let h = try g.openDataset("h").read(as: Float.self)
            let local = Array(UnsafeBufferPointer(start: t.state.layer(k).h, count: B * H))
            #expect(h.map(\.bitPattern) == local.map(\.bitPattern))
        }
        let vocab = try file.openDataset("vocab")
        #expect(vocab.elementType == .string && vocab.shape == [m.vocabSize])
        #expect(try vocab.readStrings() == (try t.dataset.vocabulary()))
    }

    /// `describe` (unroll inspect) validates and summarises in one block.
    @Test func describeSummarisesAValidCheckpoint() throws {
        let dir = try CheckpointScratch()
        let (path, _) = try F.savedCheckpoint(in: dir, cell: .gru, optimizer: .sgd, steps: 1)
        let text = try Checkpoint.describe(path)
        #expect(text.contains("format unroll.checkpoint v2"))
        #expect(text.contains("model: gru, 2 layer(s) × 7"))
        #expect(text.contains("/params/rnn.weight_hh_l1 [21, 7]"))
        #expect(text.contains("state: step 1, epoch 1, next window 1"))
        #expect(Checkpoint.isCheckpoint(path))
        #expect(!Checkpoint.isCheckpoint(dir.file("arith.h5")))
    }

    /// `created` is written without ISO8601DateFormatter but must read exactly as it used to.
    @Test(arguments: [0, 951_782_400, 1_714_567_896, 1_735_689_599, 4_102_444_800])
    func creationTimestampMatchesISO8601DateFormatter(seconds: Int) {
        let expected = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        #expect(Checkpoint.utcTimestamp(time_t(seconds)) == expected)
    }
}
