// MPICommunicator in MPI singleton mode (no mpirun: one rank of one) inside `swift test`: the real
// MPI code paths run, each collective is the identity, errors come back as DistributedError, and
// repeated reducer steps allocate nothing. Serialised: MPI is called from one thread at a time.
import Testing
@testable import UnrollDistributed

@Suite(.serialized) struct MPISingletonTests {
    @Test func singletonIsRankZeroOfOne() throws {
        let comm = try MPICommunicator()
        #expect(comm.rank == 0)
        #expect(comm.size == 1)
        #expect(try MPIRuntime.ensureInitialized().threadLevel >= 2, "at least MPI_THREAD_SERIALIZED")
    }

    @Test func collectivesAreTheIdentity() throws {
        let comm = try MPICommunicator()
        var f: [Float] = [1.5, -0.0, .leastNonzeroMagnitude, -2]
        try f.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
        #expect(f.map(\.bitPattern) == ([1.5, -0.0, .leastNonzeroMagnitude, -2] as [Float]).map(\.bitPattern))
        var d: [Double] = [2.25, -7, .nan, -0.0]
        try d.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
        #expect(d[0] == 2.25 && d[1] == -7 && d[2].isNaN && d[3].bitPattern == (-0.0 as Double).bitPattern)
        try d.withUnsafeMutableBufferPointer { try comm.allreduceMax($0) }
        #expect(d[0] == 2.25 && d[1] == -7 && d[2].isNaN)
        var empty: [Float] = []
        try empty.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }

        var bytes: [UInt8] = Array("payload ✓".utf8)
        try comm.broadcast(&bytes, root: 0)
        #expect(bytes == Array("payload ✓".utf8))
        #expect(try comm.allAgree(true))
        #expect(try !comm.allAgree(false))
        try comm.checkIdentical("config", what: "configuration")
        try comm.barrier()
    }

    @Test func nonBlockingReductionsCompleteAndReleaseTheirHandles() throws {
        let comm = try MPICommunicator()
        var a: [Float] = (0..<1000).map { Float($0) }
        var b: [Float] = [42]
        let expectedA = a
        try a.withUnsafeMutableBufferPointer { pa in
            try b.withUnsafeMutableBufferPointer { pb in
                let ha = try comm.startAllreduceSum(pa)
                let hb = try comm.startAllreduceSum(pb)
                #expect(ha != hb)
                var spins = 0
                while try !comm.poll(hb), spins < 1_000_000 { spins += 1 }
                #expect(try comm.poll(hb))
                try comm.wait(hb)
                try comm.wait(ha)
                // The slot is reused with a new generation, so the handle differs from the stale one.
                let hc = try comm.startAllreduceSum(pb)
                #expect(hc != hb && hc != ha)
                try comm.wait(hc)
            }
        }
        #expect(a == expectedA)
        #expect(b == [42])
    }

    @Test func reducerStepsAllocateNothingAfterTheFirst() throws {
        let comm = try MPICommunicator()
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 10_001)
        defer { buffer.deallocate() }
        let reducer = GradientBucketReducer(buffer: buffer, bucketBytes: 4000, communicator: comm)
        #expect(reducer.buckets.count == 11)
        var allocationsAfterStep: [Int] = []
        for step in 0..<4 {
            for i in buffer.indices { buffer[i] = Float(i % 97) + Float(step) }
            for offset in stride(from: 9000, through: 0, by: -1500) { try reducer.ready(from: offset) }
            try reducer.finish()
            #expect(buffer[10_000] == Float(10_000 % 97) + Float(step))
            allocationsAfterStep.append(comm.reductionAllocations)
        }
        #expect(allocationsAfterStep[0] > 0)
        #expect(Set(allocationsAfterStep).count == 1, "allocations per step: \(allocationsAfterStep)")
    }

    @Test func invalidRootIsThrownAsMPIError() throws {
        let comm = try MPICommunicator()
        var bytes: [UInt8] = [1]
        do {
            try comm.broadcast(&bytes, root: 1)
            Issue.record("broadcast from root 1 of 1 did not throw")
        } catch let DistributedError.mpi(call, code, message) {
            #expect(call == "MPI_Ibcast")
            #expect(code != 0)
            #expect(message.contains("root"), "MPI's message: \(message)")
        }
        // The communicator stays usable after a reported error.
        #expect(try comm.allAgree(true))
    }
}
