// TensorBoard output: CRC-32C against published check values, TFRecord framing read back with
// both CRCs checked (and a flipped byte or a cut file refused), events decoded with the generated
// protobuf types, a training run's scalars (every tag the README lists), and — when a Python with
// the `tensorboard` package exists — TensorBoard's own EventAccumulator reading the same file.
import Foundation
import SwiftProtobuf
import Testing
import UnrollData
import UnrollDistributed
import UnrollModels
import UnrollTensorBoard
@testable import UnrollTraining

@Suite struct TensorBoardTests {
    @Test func crc32cMatchesPublishedCheckValues() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)       // RFC 3720 B.4
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        let crc: UInt32 = 0xE306_9283
        #expect(CRC32C.mask(crc) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
    }

    @Test func tfRecordFramingRoundTripsAndRefusesDamage() throws {
        let payloads = [Data("first".utf8), Data(), Data((0..<300).map { UInt8($0 % 251) })]
        var file = Data()
        for p in payloads { file.append(TFRecord.encode(p)) }
        #expect(try TFRecord.decode(file) == payloads)
        #expect(file.count == payloads.reduce(0) { $0 + $1.count + 16 })
        var flipped = file
        flipped[flipped.startIndex + 14] ^= 0x01  // inside the first payload
        #expect(throws: TFRecordError.corrupt(index: 0, offset: 0, reason: "data CRC mismatch")) { try TFRecord.decode(flipped) }
        var badLength = file
        badLength[badLength.startIndex + 21 + 1] ^= 0x40  // the second record's length
        #expect(throws: TFRecordError.corrupt(index: 1, offset: 21, reason: "length CRC mismatch")) { try TFRecord.decode(badLength) }
        #expect(throws: TFRecordError.self) { try TFRecord.decode(file.dropLast(3)) }
    }

    @Test func writerEventsDecodeWithGeneratedTypes() throws {
        let dir = try CheckpointScratch("tbWriter")
        let writer = try TensorBoardWriter(directory: dir.file("tb/run"), wallTime: 1_700_000_000.5)
        try writer.add(step: 1, scalars: [("train/loss", 2.5), ("train/lr", 0.1)], wallTime: 1_700_000_001)
        try writer.add(step: 2, scalars: [("train/loss", .nan)], wallTime: 1_700_000_002)
        try writer.add(step: 3, scalars: [])
        writer.close()
        #expect((writer.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents.1700000000."))
        let events = try TensorBoardReader.events(writer.path)
        #expect(events.count == 3)
        #expect(events[0].fileVersion == "brain.Event:2")
        #expect(events[0].wallTime == 1_700_000_000.5)
        #expect(events[1].step == 1 && events[1].wallTime == 1_700_000_001)
        #expect(events[1].summary.value.map(\.tag) == ["train/loss", "train/lr"])
        #expect(events[1].summary.value.map(\.simpleValue) == [2.5, Float(0.1)])
        #expect(events[2].summary.value[0].simpleValue.isNaN)
        #expect(throws: TensorBoardError.self) { try writer.add(step: 4, scalars: [("x", 1)]) }
        // A second writer in the same directory gets its own file.
        let other = try TensorBoardWriter(directory: dir.file("tb/run"), wallTime: 1_700_000_000.5)
        #expect(other.path != writer.path)
    }

    /// A short run with --tensorboard and validation every 2 steps.
    static func trainedRun(_ dir: CheckpointScratch, steps: Int = 4) throws -> (events: String, config: TrainingConfig) {
        let data = dir.file("arith.h5")
        let vocab = try CheckpointFixtures.makeArith(data)
        var c = CheckpointFixtures.config(data: data, vocab: vocab)
        c.steps = steps
        c.evalEvery = 2
        c.tensorboard = dir.file("tb")
        let run = try TrainingRun(config: c, communicator: SingleProcessCommunicator(), resume: nil, log: { _ in })
        _ = try run.run()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.file("tb"))
        #expect(files.count == 1)
        return (dir.file("tb/") + (files.first ?? "none"), c)
    }

    @Test func trainingRunWritesEveryScalarOnce() throws {
        let dir = try CheckpointScratch("tbRun")
        let (path, _) = try Self.trainedRun(dir)
        let scalars = try TensorBoardReader.scalars(path)
        let train = ["train/loss", "train/ppl", "train/bpc", "train/grad_norm", "train/lr", "train/tokens_per_s",
                     "train/skipped_steps", "time/step_s", "time/compute_s", "time/communication_s", "time/io_s"]
        for tag in train {
            #expect(scalars[tag]?.map(\.step) == [1, 2, 3, 4], "\(tag): \(scalars[tag].map { "\($0)" } ?? "absent")")
        }
        for tag in ["valid/loss", "valid/ppl", "valid/bpc"] {
            #expect(scalars[tag]?.map(\.step) == [2, 4], "\(tag)")
        }
        #expect(Set(scalars.keys) == Set(train + ["valid/loss", "valid/ppl", "valid/bpc"]))
        for (loss, ppl) in zip(scalars["train/loss"] ?? [], scalars["train/ppl"] ?? []) {
            #expect(abs(exp(Double(loss.value)) - Double(ppl.value)) < 1e-3 * Double(ppl.value))
        }
        #expect(scalars["train/skipped_steps"]?.allSatisfy { $0.value == 0 } == true)
    }

    @Test func tensorboardPackageReadsTheEventFile() throws {
        let (python, reason) = InteropPython.find("tensorboard")
        guard let python else {
            print("SKIPPED tensorboardPackageReadsTheEventFile: \(reason)")
            return
        }
        let dir = try CheckpointScratch("tbPython")
        let (path, _) = try Self.trainedRun(dir)
        let ours = try TensorBoardReader.scalars(path)
        let (status, output) = try CheckpointTorchInteropTests.run(python, [InteropPython.script, "tensorboard", dir.file("tb")])
        try #require(status == 0, "tensorboard read failed (\(status)):\n\(output)")
        let json = output.split(separator: "\n").last.map(String.init) ?? ""
        let theirs = try JSONDecoder().decode([String: [[Double]]].self, from: Data(json.utf8))
        #expect(Set(theirs.keys) == Set(ours.keys))
        for (tag, series) in ours {
            let read = theirs[tag] ?? []
            #expect(read.map { Int($0[0]) } == series.map(\.step), "\(tag)")
            #expect(zip(read, series).allSatisfy { Float($0.0[1]) == $0.1.value }, "\(tag)")
        }
        print("tensorboard EventAccumulator read \(theirs.count) tags from \((path as NSString).lastPathComponent)")
    }
}
