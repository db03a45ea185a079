// A rank verifies the shard of the train split it owns when training starts: a damaged chunk there
// is reported at once (naming the file, the split and the checksum), not when training reaches it
// hundreds of steps later; a damaged chunk in another rank's shard is that rank's to report.
import Foundation
import HDF5Shim
import Testing
import UnrollData
import UnrollDistributed
@testable import UnrollTraining

@Suite struct ShardVerificationTests {
    typealias F = CheckpointFixtures

    /// File offset and size of chunk `index` of `object`.
    func chunk(_ index: Int, of object: String, in path: String) throws -> (offset: Int, size: Int, count: Int) {
        let file = try H5File.open(path)
        let d = try file.openDataset(object)
        let space = H5Dget_space(d.objectID)
        defer { H5Sclose(space) }
        var n: hsize_t = 0
        H5Dget_num_chunks(d.objectID, space, &n)
        var offsets = [hsize_t](repeating: 0, count: d.shape.count)
        var mask: UInt32 = 0, address: haddr_t = 0, size: hsize_t = 0
        guard H5Dget_chunk_info(d.objectID, space, hsize_t(index), &offsets, &mask, &address, &size) >= 0 else {
            throw TrainingError.data("test helper: no chunk \(index) of \(object) in \(path)")
        }
        return (Int(address), Int(size), Int(n))
    }

    @Test func aDamagedChunkIsReportedAtStartByTheRankThatOwnsIt() throws {
        let dir = try CheckpointScratch()
        let path = dir.file("arith.h5")
        _ = try SyntheticPreparation.prepare(SyntheticOptions(task: .arith, seed: 3, sizes: [120_000, 500, 500]), output: path)
        let first = try chunk(0, of: "/train", in: path)
        #expect(first.count >= 4)
        let last = try chunk(first.count - 2, of: "/train", in: path)  // inside rank 1's half of 2
        try F.flipByte(path, at: last.offset + last.size / 2)
        let reader0 = try TrainStreamReader(path: path, split: "train", globalBatch: 8, bptt: 16, rank: 0, worldSize: 2)
        try reader0.verifyShard()
        let reader1 = try TrainStreamReader(path: path, split: "train", globalBatch: 8, bptt: 16, rank: 1, worldSize: 2)
        let message = F.message { try reader1.verifyShard() }
        #expect(message == "\(path): /train: Fletcher32 checksum mismatch: the stored data is corrupted (HDF5 H5Dread)")
        // A single process owns every stream: its trainer refuses the file before the first step.
        let vocab = try TokenDataset(path: path).vocabSize
        var config = F.config(data: path, vocab: vocab)
        config.batchSize = 8
        let refusal = F.message { _ = try Trainer(config: config, communicator: SingleProcessCommunicator()) }
        #expect(refusal?.contains("/train: Fletcher32 checksum mismatch") == true)
    }
}
