// Reads never leave the file that was named: a dataset with external storage or a virtual layout,
// and a soft, external or user-defined link on the way to a group or dataset, are refused with one
// line before anything is read (no byte of the pointed-at file may reach a message); a FIFO,
// directory or device is refused from `stat` alone, without opening it (opening a FIFO blocks).
// The hostile files are built with the HDF5 C API, the way another tool could write them.
import Foundation
import HDF5Shim
import Testing
@testable import UnrollData

@Suite struct FileRefusalTests {
    /// Bytes the external file and the virtual source hold. Read as uint8 token ids they would be
    /// 76 69 65 75, all outside the 4-word vocabulary, which is how a message once leaked a byte.
    static let marker = Array("LEAKLEAK".utf8)

    /// Both readers (the token reader and `unroll inspect --scan`) refuse `/train` of `path`.
    func expectReadersRefuseTrain(_ path: String, dir: TempDir, mentions: [String],
                                  sourceLocation: SourceLocation = #_sourceLocation) {
        expectRefusal(dataErrorMessage { _ = try TokenDataset(path: path).split("train") },
                      file: path, object: "/train", dir: dir, mentions: mentions, sourceLocation: sourceLocation)
        expectRefusal(dataErrorMessage { _ = try DatasetInspector.describe(path, scan: true) },
                      file: path, object: "/train", dir: dir, mentions: mentions, sourceLocation: sourceLocation)
    }

    /// Checks a refusal: one line, "FILE: OBJECT: ...", mentioning `mentions`, and with nothing
    /// of the marker in it (neither its text nor its bytes as numbers).
    func expectRefusal(_ result: (DataError, String)?, file: String, object: String, dir: TempDir,
                       mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        guard let (error, message) = result else {
            Issue.record("expected a refusal, nothing was thrown", sourceLocation: sourceLocation)
            return
        }
        guard case .invalid = error else {
            Issue.record("expected DataError.invalid, got \(message)", sourceLocation: sourceLocation)
            return
        }
        #expect(!message.contains("\n"), "not one line: \(message)", sourceLocation: sourceLocation)
        #expect(message.hasPrefix("\(file): \(object): "), "does not name \(file): \(object): \(message)",
                sourceLocation: sourceLocation)
        let rest = message.replacingOccurrences(of: dir.path, with: "")
        for m in mentions {
            #expect(rest.contains(m), "does not mention \"\(m)\": \(message)", sourceLocation: sourceLocation)
        }
        #expect(!rest.contains("LEAK"), "leaks the marker: \(message)", sourceLocation: sourceLocation)
        let numbers = rest.split { !$0.isNumber }.map(String.init)
        for byte in Set(Self.marker) {
            #expect(!numbers.contains(String(byte)), "leaks byte \(byte): \(message)", sourceLocation: sourceLocation)
        }
    }

    /// A valid token dataset without split `missing`, reopened read-write for a test to add its own.
    func datasetWithout(_ missing: String, in dir: TempDir, name: String = "data.h5") throws -> (String, H5File) {
        var raw = RawTokenFile()
        raw.splits[missing] = nil
        let path = dir.file(name)
        try raw.write(path)
        return (path, try H5File.open(path, mode: .readWrite))
    }

    /// Creates a 1-D uint8 dataset `name` of `count` elements below `location` with `dcpl`.
    func createRaw(_ location: hid_t, _ name: String, count: Int, dcpl: hid_t) throws {
        let space = H5Screate_simple(1, [hsize_t(count)], nil)
        defer { H5Sclose(space) }
        let d = H5Dcreate2(location, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)
        try #require(d >= 0)
        H5Dclose(d)
    }

    @Test func externalStorageIsRefusedAndTheTargetNeverRead() throws {
        let dir = try TempDir()
        let target = try dir.write("secret.bin", bytes: Self.marker)
        let (path, file) = try datasetWithout("train", in: dir)
        let dcpl = H5Pcreate(H5P_DATASET_CREATE)
        #expect(H5Pset_external(dcpl, target, 0, hsize_t(Self.marker.count)) >= 0)
        try createRaw(file.objectID, "train", count: Self.marker.count, dcpl: dcpl)
        H5Pclose(dcpl)
        try file.close()

        let mentions = ["external storage in \"/secret.bin\"", "refused: a data file must hold its own data"]
        expectReadersRefuseTrain(path, dir: dir, mentions: mentions)
        // The wrapper refuses it for any caller, not only the token reader.
        expectRefusal(dataErrorMessage { _ = try H5File.open(path).openDataset("train") },
                      file: path, object: "/train", dir: dir, mentions: mentions)
    }

    @Test func anExternalLinkIsRefusedWithoutBeingFollowed() throws {
        let dir = try TempDir()
        // A complete, valid dataset file: following the link would succeed silently.
        try RawTokenFile().write(dir.file("other.h5"))
        let (path, file) = try datasetWithout("valid", in: dir)
        #expect(H5Lcreate_external("other.h5", "/valid", file.objectID, "valid", H5P_DEFAULT, H5P_DEFAULT) >= 0)
        try file.close()

        let mentions = ["an external link to \"other.h5:/valid\"", "refused"]
        expectRefusal(dataErrorMessage { _ = try TokenDataset(path: path).split("valid") },
                      file: path, object: "/valid", dir: dir, mentions: mentions)
        expectRefusal(dataErrorMessage { _ = try DatasetInspector.describe(path) },
                      file: path, object: "/valid", dir: dir, mentions: mentions)
    }

    @Test func aSoftLinkIsRefused() throws {
        let dir = try TempDir()
        let (path, file) = try datasetWithout("train", in: dir)
        #expect(H5Lcreate_soft("/test", file.objectID, "train", H5P_DEFAULT, H5P_DEFAULT) >= 0)
        try file.close()
        expectRefusal(dataErrorMessage { _ = try TokenDataset(path: path).split("train") },
                      file: path, object: "/train", dir: dir, mentions: ["a soft link to \"/test\"", "refused"])
    }

    @Test func aVirtualDatasetIsRefusedAndItsSourceNeverRead() throws {
        let dir = try TempDir()
        let source = dir.file("source.h5")
        let sourceFile = try H5File.create(source)
        try sourceFile.write("data", Self.marker)
        try sourceFile.close()
        let (path, file) = try datasetWithout("train", in: dir)
        let count = Self.marker.count
        let virtualSpace = H5Screate_simple(1, [hsize_t(count)], nil)
        let sourceSpace = H5Screate_simple(1, [hsize_t(count)], nil)
        let dcpl = H5Pcreate(H5P_DATASET_CREATE)
        #expect(H5Pset_virtual(dcpl, virtualSpace, source, "/data", sourceSpace) >= 0)
        try createRaw(file.objectID, "train", count: count, dcpl: dcpl)
        H5Pclose(dcpl)
        H5Sclose(virtualSpace)
        H5Sclose(sourceSpace)
        try file.close()

        let mentions = ["a virtual dataset", "refused"]
        expectReadersRefuseTrain(path, dir: dir, mentions: mentions)
    }

    @Test func linksAreCheckedAtEveryLevelAndHardLinksStillWork() throws {
        let dir = try TempDir()
        let path = dir.file("groups.h5")
        let file = try H5File.create(path)
        try file.createGroup("g").write("d", [1, 2, 3] as [Int32])
        #expect(H5Lcreate_soft("/g", file.objectID, "soft", H5P_DEFAULT, H5P_DEFAULT) >= 0)
        #expect(H5Lcreate_external("groups-other.h5", "/g", file.objectID, "ext", H5P_DEFAULT, H5P_DEFAULT) >= 0)
        #expect(H5Lcreate_hard(file.objectID, "/g/d", file.objectID, "hard", H5P_DEFAULT, H5P_DEFAULT) >= 0)
        try file.close()

        let reader = try H5File.open(path)
        #expect(try reader.openGroup("g").openDataset("d").read(as: Int32.self) == [1, 2, 3])
        #expect(try reader.openDataset("/g/d").read(as: Int32.self) == [1, 2, 3])
        #expect(try reader.openDataset("hard").read(as: Int32.self) == [1, 2, 3])
        expectRefusal(dataErrorMessage { _ = try reader.openGroup("soft") }, file: path, object: "/soft", dir: dir,
                      mentions: ["a soft link to \"/g\""])
        // A link part-way along a path is caught too, and names the link, not the whole path.
        expectRefusal(dataErrorMessage { _ = try reader.openDataset("soft/d") }, file: path, object: "/soft",
                      dir: dir, mentions: ["a soft link"])
        expectRefusal(dataErrorMessage { _ = try reader.openDataset("/ext/d") }, file: path, object: "/ext",
                      dir: dir, mentions: ["an external link to \"groups-other.h5:/g\""])
        // A missing object is still HDF5's own error, as before.
        let missing = dataErrorMessage { _ = try reader.openDataset("g/absent") }
        #expect(missing?.1.contains("H5Dopen2") == true)
    }

    @Test func aFIFOIsRefusedWithoutBeingOpened() throws {
        let dir = try TempDir()
        let fifo = dir.file("pipe.h5")
        try #require(mkfifo(fifo, 0o600) == 0)
        // Held open for writing here, so that a regression that opens the FIFO fails (HDF5 cannot
        // read a pipe) instead of blocking the test run until a writer appears.
        let writer = open(fifo, O_RDWR | O_NONBLOCK)
        try #require(writer >= 0)
        defer { close(writer) }

        #expect(H5File.nonRegularKind(fifo) == "a FIFO")
        #expect(H5File.nonRegularKind(dir.path) == "a directory")
        #expect(H5File.nonRegularKind(dir.file("absent")) == nil)
        #expect(!H5File.isHDF5(fifo))
        let expected = "\(fifo): file: expected a regular file, found a FIFO"
        #expect(dataErrorMessage { _ = try H5File.open(fifo) }?.1 == expected)
        #expect(dataErrorMessage { _ = try DatasetInspector.describe(fifo) }?.1 == expected)
        #expect(dataErrorMessage { _ = try TokenDataset(path: fifo) }?.1 == expected)
        #expect(dataErrorMessage { _ = try H5File.open(dir.path) }?.1
                == "\(dir.path): file: expected a regular file, found a directory")
        #expect(dataErrorMessage { _ = try H5File.open("/dev/null") }?.1
                == "/dev/null: file: expected a regular file, found a character device")
    }
}
