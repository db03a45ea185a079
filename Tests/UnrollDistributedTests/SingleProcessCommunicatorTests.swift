// SingleProcessCommunicator is the identity for every collective; also the error messages and the
// launcher detection behind makeCommunicator(). None of these tests touches MPI.
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import UnrollDistributed

@Suite struct SingleProcessCommunicatorTests {
    let comm = SingleProcessCommunicator()

    @Test func isRankZeroOfOne() {
        #expect(comm.rank == 0)
        #expect(comm.size == 1)
    }

    @Test func reductionsLeaveValuesUnchanged() throws {
        var f: [Float] = [1.5, -0.0, .infinity, .leastNonzeroMagnitude]
        try f.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
        #expect(f.map(\.bitPattern) == ([1.5, -0.0, .infinity, .leastNonzeroMagnitude] as [Float]).map(\.bitPattern))
        var d: [Double] = [2.25, -7, .nan]
        try d.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
        #expect(d[0] == 2.25 && d[1] == -7 && d[2].isNaN)
        try d.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        #expect(d[0] == 2.25 && d[1] == -7 && d[2].isNaN)
    }

    @Test func nonBlockingReductionCompletesAtOnce() throws {
        var f: [Float] = [4, 5]
        try f.withUnsafeMutableBufferPointer { buffer in
            let h = try comm.startAllreduceSum(buffer)
            #expect(try comm.poll(h))
            try comm.wait(h)
        }
        #expect(f == [4, 5])
    }

    /// On one rank the sparse row reduction must leave the matrix exactly as it was (nothing to
    /// add, nothing to scatter back) and still report which rows were touched — in the sparse
    /// branch (few rows) and the dense one (most rows).
    @Test(arguments: [[7, 3, 3, 12], Array(0..<15)])
    func sparseRowReducerKeepsTheMatrixAndReportsTheRows(touched: [Int]) throws {
        let rows = 20, width = 3
        let reducer = SparseRowReducer(rows: rows, width: width, communicator: comm)
        var matrix = [Float](repeating: 0, count: rows * width)
        for row in touched { for j in 0..<width { matrix[row * width + j] = Float(row * 10 + j) + 0.25 } }
        let before = matrix
        for _ in 0..<2 {  // reusable, and a second step sees no stale state
            try reducer.begin(touched: touched)
            #expect(try reducer.poll())
            try matrix.withUnsafeMutableBufferPointer { buffer in
                try reducer.start(buffer.baseAddress!)
                try reducer.finish()
            }
            #expect(matrix.map(\.bitPattern) == before.map(\.bitPattern))
            let union = Set(touched).sorted()
            #expect(reducer.reducedRows == (2 * union.count > rows ? nil : union))
        }
    }

    @Test func broadcastKeepsBytes() throws {
        var bytes: [UInt8] = [9, 8, 7]
        try comm.broadcast(&bytes, root: 0)
        #expect(bytes == [9, 8, 7])
    }

    @Test(arguments: [true, false])
    func allAgreeReturnsTheLocalVerdict(_ ok: Bool) throws {
        #expect(try comm.allAgree(ok) == ok)
    }

    @Test func checkIdenticalAndBarrierSucceed() throws {
        try comm.checkIdentical("anything", what: "configuration")
        try comm.barrier()
    }

    @Test func launcherDetectionLooksAtMPIVariables() {
        #expect(launchedByMPI { ["OMPI_COMM_WORLD_SIZE": "2"][$0] })
        #expect(launchedByMPI { ["PMIX_RANK": "0"][$0] })
        #expect(!launchedByMPI { ["HOME": "/root"][$0] })
    }

    @Test func makeCommunicatorIsSingleProcessOutsideALauncher() throws {
        // Holds only when `swift test` itself was not started by mpirun.
        guard !launchedByMPI({ name in getenvString(name) }) else { return }
        #expect(try makeCommunicator() is SingleProcessCommunicator)
    }
}

@Suite struct DistributedErrorTests {
    @Test func mpiErrorNamesTheCallAndMPIsMessage() {
        let error = DistributedError.mpi(call: "MPI_Bcast", code: 8, message: "MPI_ERR_ROOT: invalid root")
        #expect(error.description == "MPI_Bcast failed with MPI error 8: MPI_ERR_ROOT: invalid root")
    }

    @Test func shortMismatchQuotesBothValues() {
        let error = DistributedError.notIdentical(what: "dataset SHA-256", rank: 2, rank0Value: "ab12", rankValue: "cd34")
        #expect(error.description == #"dataset SHA-256 differs between ranks: rank 2 has "cd34" but rank 0 has "ab12""#)
    }

    @Test func longMismatchShowsWhereItDiffers() {
        let prefix = String(repeating: "x", count: 200)
        let error = DistributedError.notIdentical(what: "configuration", rank: 1,
                                                  rank0Value: prefix + "lr=0.1" + prefix, rankValue: prefix + "lr=0.2" + prefix)
        let message = error.description
        #expect(message.contains("lr=0.2"))
        #expect(message.contains("lr=0.1"))
        #expect(message.contains("first difference at character 205 of 406"))
        #expect(!message.contains(prefix), "a window around the difference, not the whole value")
    }
}

/// getenv as a String, for the launcher check.
func getenvString(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
