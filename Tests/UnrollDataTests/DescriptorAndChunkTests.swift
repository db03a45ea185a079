// Descriptors and chunk completeness: every file H5File opens or creates is close-on-exec (so a
// process forked later, such as Open MPI's `orted`, cannot keep it and its lock), MPI is already
// initialised when the tests start (UnrollTestBootstrap), and a chunked dataset with a chunk
// missing from its index is refused on open with one line instead of reading as zeros.
import Foundation
import HDF5Shim
import Testing
import UnrollTestBootstrap
@testable import UnrollData

@Suite struct DescriptorAndChunkTests {
    /// The descriptors of a process (default this one) that refer to `path` (from /proc/PID/fd).
    static func descriptors(of path: String, process: String = "self") throws -> [Int32] {
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process)/fd").compactMap { name in
            guard let fd = Int32(name),
                  let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(process)/fd/" + name),
                  link == target else { return nil }
            return fd
        }
    }

    @Test func mpiIsInitialisedBeforeAnyTestRuns() {
        // 0 only when deliberately switched off for a run.
        let skipped = ProcessInfo.processInfo.environment["UNROLL_TEST_NO_MPI_BOOTSTRAP"] != nil
        #expect(unroll_test_bootstrap_status() == (skipped ? 0 : 1))
    }

    @Test(arguments: [H5File.Mode.readOnly, .readWrite])
    func openAndCreatedFilesAreCloseOnExec(mode: H5File.Mode) throws {
        let dir = try TempDir("cloexec\(mode)")
        let path = dir.file("f.h5")
        let created = try H5File.create(path)
        try created.write("x", [1, 2, 3] as [Int32])
        var fds = try Self.descriptors(of: path)
        #expect(!fds.isEmpty, "no descriptor of \(path) while the file is open")
        for fd in fds { #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, "created: fd \(fd) lacks FD_CLOEXEC") }
        try created.close()

        let opened = try H5File.open(path, mode: mode)
        fds = try Self.descriptors(of: path)
        #expect(!fds.isEmpty, "no descriptor of \(path) while the file is open")
        for fd in fds { #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, "opened \(mode): fd \(fd) lacks FD_CLOEXEC") }
        #expect(try opened.openDataset("x").read(as: Int32.self) == [1, 2, 3])
        try opened.close()
        #expect(try Self.descriptors(of: path).isEmpty, "descriptor left open after close")
    }

    /// The failure this prevents, end to end: a child spawned (fork + exec, as Open MPI starts
    /// `orted`) while a written file is open must not keep its descriptor and lock, so the file
    /// can be reopened read-write while the child still runs ("unable to lock the file" otherwise).
    @Test func childSpawnedWhileAFileIsOpenDoesNotKeepItsLock() throws {
        let dir = try TempDir()
        let path = dir.file("locked.h5")
        let file = try H5File.create(path)
        try file.write("x", [7] as [Int32])
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = [nil]
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, envp) == 0)
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        // The child closes close-on-exec descriptors just after the parent resumes from
        // posix_spawn (vfork semantics end at the exec's memory switch, the closing comes after):
        // give it up to a second. A descriptor without FD_CLOEXEC stays for the child's life.
        var childHoldsTheFile = true
        for _ in 0..<100 where childHoldsTheFile {
            childHoldsTheFile = (try? Self.descriptors(of: path, process: "\(pid)"))?.isEmpty == false
            if childHoldsTheFile { usleep(10_000) }
        }
        #expect(!childHoldsTheFile, "the spawned child kept a descriptor of \(path)")
        try file.close()
        let again = try H5File.open(path, mode: .readWrite)
        #expect(try again.openDataset("x").read(as: Int32.self) == [7])
        try again.close()
    }

    /// A (8, 3) float dataset in 4 chunks of 2 rows, written chunk by chunk, skipping `skip`.
    static func writeChunked(_ path: String, skip: Int?) throws {
        let file = try H5File.create(path)
        let d = try file.createDataset("w", of: Float.self, shape: [8, 3], chunk: [2, 3], fletcher32: false)
        for k in 0..<4 where k != skip {
            let values = (0..<6).map { Float(k * 6 + $0 + 1) }
            let offset: [hsize_t] = [hsize_t(2 * k), 0]
            #expect(H5Dwrite_chunk(d.objectID, H5P_DEFAULT, 0, offset, 24, values) >= 0)
        }
        try file.close()
    }

    @Test func completeChunkedDatasetOpensAndCountsItsChunks() throws {
        let dir = try TempDir()
        let path = dir.file("full.h5")
        try Self.writeChunked(path, skip: nil)
        let d = try H5File.open(path).openDataset("w")
        #expect(try d.expectedChunkCount() == 4)
        #expect(try d.storedChunkCount() == 4)
        #expect(try d.read(as: Float.self) == (1...24).map(Float.init))
    }

    @Test(arguments: [0, 3])
    func missingChunkIsRefusedWithOneLine(skip: Int) throws {
        let dir = try TempDir("missing\(skip)")
        let path = dir.file("holey.h5")
        try Self.writeChunked(path, skip: skip)
        let file = try H5File.open(path)
        do {
            _ = try file.openDataset("w")
            Issue.record("a dataset with a missing chunk was opened")
        } catch let error as DataError {
            #expect(error.description.hasPrefix("\(path): /w: expected 4 chunks, found 3"), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    /// Rewrites chunked dataset `name` with every chunk but the last (each stored as it was), so
    /// the last chunk is missing from the index while the file stays valid and openable: what an
    /// interrupted write leaves, or a stray write to an index without checksums (the v1 format).
    /// In the checksummed format an in-place edit of the index is caught by its checksum instead.
    static func dropLastChunkFromIndex(of name: String, in path: String) throws {
        do {
            let file = try H5File.open(path, mode: .readWrite)
            let d = try file.openDataset(name)
            let space = H5Dget_space(d.objectID), type = H5Dget_type(d.objectID), dcpl = H5Dget_create_plist(d.objectID)
            defer { H5Sclose(space); H5Tclose(type); H5Pclose(dcpl) }
            var n: hsize_t = 0
            _ = H5Dget_num_chunks(d.objectID, space, &n)
            // Every chunk but the last: grid offset, filter mask and stored bytes as they are.
            var chunks: [(offset: [hsize_t], mask: UInt32, bytes: [UInt8])] = []
            for i in 0..<(Int(n) - 1) {
                var offset = [hsize_t](repeating: 0, count: d.shape.count)
                var mask: UInt32 = 0, address: haddr_t = 0, size: hsize_t = 0
                guard H5Dget_chunk_info(d.objectID, space, hsize_t(i), &offset, &mask, &address, &size) >= 0 else {
                    throw DataError.io(path: path, operation: "drop a chunk of \(name)", reason: "H5Dget_chunk_info")
                }
                var bytes = [UInt8](repeating: 0, count: Int(size))
                guard H5Dread_chunk(d.objectID, H5P_DEFAULT, offset, &mask, &bytes) >= 0 else { throw DataError.io(path: path, operation: "drop a chunk of \(name)", reason: "H5Dread_chunk") }
                chunks.append((offset, mask, bytes))
            }
            let parent = String(name.split(separator: "/").dropLast().joined(separator: "/"))
            let leaf = String(name.split(separator: "/").last ?? "")
            let location = parent.isEmpty ? file.objectID : H5Gopen2(file.objectID, "/" + parent, H5P_DEFAULT)
            defer { if location != file.objectID { H5Gclose(location) } }
            guard H5Ldelete(location, leaf, H5P_DEFAULT) >= 0 else { throw DataError.io(path: path, operation: "drop a chunk of \(name)", reason: "H5Ldelete") }
            let copy = H5Dcreate2(location, leaf, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)
            guard copy >= 0 else { throw DataError.io(path: path, operation: "drop a chunk of \(name)", reason: "H5Dcreate2") }
            defer { H5Dclose(copy) }
            for chunk in chunks {
                guard H5Dwrite_chunk(copy, H5P_DEFAULT, chunk.mask, chunk.offset, chunk.bytes.count, chunk.bytes) >= 0 else {
                    throw DataError.io(path: path, operation: "drop a chunk of \(name)", reason: "H5Dwrite_chunk")
                }
            }
            withExtendedLifetime((file, d)) {}
        }
    }

    /// A token dataset whose train split lost a chunk from its index is refused on open, naming
    /// the split and the chunk counts, instead of feeding zeros (token 0) to training.
    @Test func tokenDatasetWithAMissingChunkIsRefused() throws {
        let dir = try TempDir()
        let path = dir.file("tokens.h5")
        let n = 3 * DatasetFormat.tokenChunk + 5
        try writeTokenDataset(path, train: (0..<n).map { Int32($0 % 300) }, vocabSize: 300)
        #expect(try TokenDataset(path: path).split("train").dataset.storedChunkCount() == 4)
        try Self.dropLastChunkFromIndex(of: "train", in: path)
        let failure = dataErrorMessage { _ = try TokenDataset(path: path).split("train") }
        #expect(failure?.1.hasPrefix("\(path): /train: expected 4 chunks, found 3") == true, "\(failure?.1 ?? "nil")")
    }

    @Test func storageErrorsAreRecognisedBehindHDF5AndOSErrors() {
        let hdf5 = DataError.hdf5(file: "f", object: "/", operation: "H5Dwrite_chunk",
                                  detail: "H5FD_sec2_write(): file write failed: time = x, filename = 'f', "
                                      + "file descriptor = 5, errno = 28, error message = 'No space left on device'")
        #expect(hdf5.storageExhaustionReason == "no space left on device")
        let big = DataError.hdf5(file: "f", object: "/", operation: "H5Fclose", detail: "… errno = 27, error message = 'File too large'")
        #expect(big.storageExhaustionReason == "file too large (file-size limit)")
        #expect(DataError.io(path: "f", operation: "fsync", reason: String(cString: strerror(EDQUOT)))
            .storageExhaustionReason == "disk quota exceeded")
        #expect(DataError.hdf5(file: "f", object: "/", operation: "H5Fopen", detail: "errno = 11").storageExhaustionReason == nil)
        let full = DataError.storageExhausted(path: "/c/step-8.h5", reason: "no space left on device",
                                              written: 1_500_000, expected: 52_000_000)
        #expect(full.description == "/c/step-8.h5: no space left on device (wrote 1.50 of 52.0 MB)")
    }

    /// AtomicFile turns an HDF5 write failing with ENOSPC into one storage error for the final
    /// path, with the bytes written, and leaves no temporary file.
    @Test func atomicFileReportsStorageExhaustionForTheFinalPath() throws {
        let dir = try TempDir()
        let path = dir.file("out.h5")
        let enospc = DataError.hdf5(file: "t", object: "/w", operation: "H5Dwrite_chunk", detail: "x | y: errno = 28, z")
        do {
            try AtomicFile.write(to: path, expectedBytes: 4_000_000) { tmp in
                try Data(count: 1_000_000).write(to: URL(fileURLWithPath: tmp))
                throw enospc
            }
            Issue.record("no error")
        } catch let error as DataError {
            #expect(error == .storageExhausted(path: path, reason: "no space left on device", written: 1_000_000,
                                               expected: 4_000_000))
        }
        #expect(try dir.contents().isEmpty)
    }
}
