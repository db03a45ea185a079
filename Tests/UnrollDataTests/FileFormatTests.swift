// Tests of the file format Unroll writes (v2: HDF5 1.10 format with checksummed metadata, no
// variable-length strings, string datasets as UTF-8 bytes + offsets) and of the checks made on
// every size read from a file: version 1 files (variable-length strings, original HDF5 format,
// written here with raw HDF5 calls) stay readable; damaged offsets, invalid UTF-8, extents larger
// than the file and multi-valued attributes are refused with one line naming file and field.
import Foundation
import HDF5Shim
import Testing
@testable import UnrollData

// MARK: - Raw HDF5 helpers (the encodings Unroll no longer writes)

/// Creates a file in HDF5's original format (superblock 0, no checksums), as v1 writers did.
func createVersion1File(_ path: String) throws -> H5File {
    let id = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
    guard id >= 0, H5Fclose(id) >= 0 else { throw DataError.io(path: path, operation: "create", reason: "H5Fcreate") }
    return try H5File.open(path, mode: .readWrite)
}

/// Writes a scalar variable-length UTF-8 string attribute (the v1 encoding, on the global heap).
func setVariableLengthAttribute(_ holder: some H5AttributeHolder, _ name: String, _ value: String) throws {
    let type = try H5Handle.utf8String(file: holder.file.path, object: name)
    let space = H5Screate(H5S_SCALAR)
    defer { H5Sclose(space) }
    if H5Aexists(holder.objectID, name) > 0 { H5Adelete(holder.objectID, name) }
    let attr = H5Acreate2(holder.objectID, name, type.id, space, H5P_DEFAULT, H5P_DEFAULT)
    defer { H5Aclose(attr) }
    let status = value.withCString { c -> herr_t in
        var pointer: UnsafePointer<CChar>? = c
        return H5Awrite(attr, type.id, &pointer)
    }
    guard attr >= 0, status >= 0 else { throw DataError.io(path: holder.file.path, operation: "write \(name)", reason: "H5Awrite") }
}

/// Writes a 1-D dataset of variable-length UTF-8 strings (the v1 encoding of `/vocab`).
func writeVariableLengthStrings(_ location: some H5Location, _ name: String, _ strings: [String]) throws {
    let type = try H5Handle.utf8String(file: location.file.path, object: name)
    let space = H5Screate_simple(1, [hsize_t(strings.count)], nil)
    defer { H5Sclose(space) }
    let d = H5Dcreate2(location.objectID, name, type.id, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
    defer { H5Dclose(d) }
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    var pointers = copies.map { $0.map { UnsafePointer<CChar>($0) } }
    guard d >= 0, H5Dwrite(d, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, &pointers) >= 0 else {
        throw DataError.io(path: location.file.path, operation: "write \(name)", reason: "H5Dwrite")
    }
}

/// A version 1 token dataset as v1 writers produced it: original format, variable-length strings.
func writeVersion1TokenFile(_ path: String, vocab: [String], splits: [String: [UInt8]]) throws {
    let file = try createVersion1File(path)
    try setVariableLengthAttribute(file, "format", DatasetFormat.name)
    try file.setAttribute("version", Int64(1))
    try setVariableLengthAttribute(file, "kind", "tokens")
    try setVariableLengthAttribute(file, "level", "word")
    try file.setAttribute("vocab_size", Int64(vocab.count))
    try setVariableLengthAttribute(file, "eos", "<eos>")
    try setVariableLengthAttribute(file, "unk", "")
    for (name, tokens) in splits.sorted(by: { $0.key < $1.key }) {
        try file.setAttribute("\(name)_tokens", Int64(tokens.count))
        try file.write(name, tokens, chunk: [4], fletcher32: true)
    }
    try writeVariableLengthStrings(file, "vocab", vocab)
    try file.close()
}

/// Every object path and attribute (`path@name`) of `path` whose type is a variable-length
/// string or sequence, i.e. stored on HDF5's global heap.
func globalHeapUsers(_ path: String) throws -> [String] {
    let file = try H5File.open(path)
    var found: [String] = []
    func isVariable(_ type: hid_t) -> Bool {
        H5Tis_variable_str(type) > 0 || H5Tget_class(type) == H5T_VLEN
    }
    func visit(_ location: some H5Location) throws {
        for name in try location.attributeNames() {
            let attr = H5Aopen(location.objectID, name, H5P_DEFAULT)
            let type = H5Aget_type(attr)
            if isVariable(type) { found.append("\(location.objectPath)@\(name)") }
            H5Tclose(type)
            H5Aclose(attr)
        }
        for member in try location.memberNames() {
            let child = location.objectPath == "/" ? "/" + member : location.objectPath + "/" + member
            var info = H5O_info_t()
            guard H5Oget_info_by_name2(location.objectID, member, &info, UInt32(H5O_INFO_BASIC), H5P_DEFAULT) >= 0 else {
                found.append("\(child) (unreadable)")
                continue
            }
            if info.type == H5O_TYPE_GROUP {
                try visit(location.openGroup(member))
            } else {
                let d = H5Dopen2(location.objectID, member, H5P_DEFAULT)
                let type = H5Dget_type(d)
                if isVariable(type) { found.append(child) }
                H5Tclose(type)
                for name in try H5Dataset(id: d, file: file, path: child).attributeNames() {
                    let attr = H5Aopen(d, name, H5P_DEFAULT)
                    let t = H5Aget_type(attr)
                    if isVariable(t) { found.append("\(child)@\(name)") }
                    H5Tclose(t)
                    H5Aclose(attr)
                }
            }
        }
    }
    try visit(file)
    return found
}

@Suite struct FileFormatTests {
    let words = ["<unk>", "", "température", "✓ – UTF-8", "a b", "\u{1F600}"]

    /// A dataset written now: version 2, superblock v3 (checksummed metadata), nothing on the
    /// global heap, the vocabulary as checksummed bytes + offsets that read back exactly.
    @Test func writtenDatasetsUseTheChecksummedFormatAndNoGlobalHeap() throws {
        let dir = try TempDir()
        let path = dir.file("d.h5")
        let content = TokenDatasetContent(level: .word, vocabulary: words,
                                          splits: ["train": [0, 1, 2, 3, 4, 5], "valid": [1], "test": [2]],
                                          sources: ["train": SourceInfo(name: "t.txt", sha256: "ab")], eos: "<eos>")
        try TokenDatasetWriter.write(content, to: path)
        let file = try H5File.open(path)
        #expect(try file.superblockVersion() >= 2)
        #expect(try file.intAttribute("version") == 2)
        #expect(try globalHeapUsers(path) == [])
        let group = try file.openGroup("vocab")
        #expect(try group.stringAttribute("encoding") == "utf8-offsets")
        let bytes = try group.openDataset("bytes"), offsets = try group.openDataset("offsets")
        #expect(bytes.elementType == .uint8 && offsets.elementType == .int64)
        #expect(try bytes.storage().fletcher32 && offsets.storage().fletcher32)
        #expect(try offsets.read(as: Int64.self) == [0, 5, 5, 17, 30, 33, 37])
        let vocab = try file.openDataset("vocab")
        #expect(vocab.elementType == .string && vocab.shape == [words.count])
        #expect(try vocab.readStrings() == words)
        let dataset = try TokenDataset(path: path)
        #expect(try dataset.vocabulary() == words)
        #expect(try dataset.version() == 2)
        #expect(dataset.eos == "<eos>")
    }

    /// Empty string lists and strings with NUL: the first round-trips, the second is refused
    /// (as before), in datasets and attributes.
    @Test func emptyStringListsRoundTripAndNULIsRefused() throws {
        let dir = try TempDir()
        let path = dir.file("s.h5")
        let file = try H5File.create(path)
        try file.writeStrings("none", [])
        try file.writeStrings("blank", ["", ""])
        try file.setAttribute("empty", string: "")
        #expect(dataErrorMessage { try file.writeStrings("nul", ["a\u{0}b"]) }?.1.contains("NUL") == true)
        #expect(dataErrorMessage { try file.setAttribute("nul", string: "a\u{0}b") }?.1.contains("NUL") == true)
        try file.close()
        let reopened = try H5File.open(path)
        #expect(try reopened.openDataset("none").readStrings() == [])
        #expect(try reopened.openDataset("blank").readStrings() == ["", ""])
        #expect(try reopened.stringAttribute("empty") == "")
    }

    /// A version 1 dataset (original HDF5 format, variable-length string attributes and
    /// vocabulary) opens, reads and inspects as before.
    @Test func version1DatasetsWithVariableLengthStringsStayReadable() throws {
        let dir = try TempDir()
        let path = dir.file("v1.h5")
        try writeVersion1TokenFile(path, vocab: words, splits: ["train": [0, 1, 2, 3, 4, 5, 0], "valid": [1, 2],
                                                                 "test": [5]])
        let raw = try H5File.open(path)
        #expect(try raw.superblockVersion() == 0)
        #expect(try globalHeapUsers(path).contains("/vocab"))
        let dataset = try TokenDataset(path: path)
        #expect(try dataset.version() == 1)
        #expect(try dataset.vocabulary() == words)
        #expect(dataset.eos == "<eos>" && dataset.unk == nil)
        #expect(try dataset.split("train").read(0..<7) == [0, 1, 2, 3, 4, 5, 0])
        let description = try DatasetInspector.describe(path, scan: true)
        #expect(description.contains("format unroll.dataset v1"))
        #expect(description.contains("\"température\""))
    }

    /// Versions other than 1 and 2 are refused, naming both.
    @Test func unknownVersionIsRefused() throws {
        let dir = try TempDir()
        let path = dir.file("v3.h5")
        var raw = RawTokenFile()
        raw.version = 3
        try raw.write(path)
        let message = dataErrorMessage { _ = try TokenDataset(path: path) }?.1 ?? ""
        #expect(message.contains("version") && message.contains("1 to 2") && message.contains("found 3"), "\(message)")
    }

    /// Writes a `writeStrings`-shaped group with the given bytes and offsets.
    private func writeEncoded(_ path: String, bytes: [UInt8], offsets: [Int64], encoding: String = "utf8-offsets") throws {
        let file = try H5File.create(path)
        let group = try file.createGroup("vocab")
        try group.setAttribute("encoding", string: encoding)
        try group.write("bytes", bytes, chunk: [4], fletcher32: true)
        try group.write("offsets", offsets, chunk: [4], fletcher32: true)
        try file.close()
    }

    private func readMessage(_ path: String) -> String {
        dataErrorMessage { _ = try H5File.open(path).openDataset("vocab").readStrings() }?.1 ?? "(no error)"
    }

    /// Offsets that do not start at 0, decrease, run past the bytes or end short, bytes that are
    /// not UTF-8, and an unknown encoding: each refused with one line naming file and field.
    @Test func damagedStringOffsetsAndBytesAreRefused() throws {
        let dir = try TempDir()
        let abc = Array("abcdef".utf8)
        let cases: [(bytes: [UInt8], offsets: [Int64], field: String, words: [String])] = [
            (abc, [1, 3, 6], "/vocab/offsets", ["first offset"]),
            (abc, [0, 4, 2, 6], "/vocab/offsets[2]", ["non-decreasing", "2 after 4"]),
            (abc, [0, 3, 9], "/vocab/offsets[2]", ["within the 6 bytes"]),
            (abc, [0, 3, 5], "/vocab/offsets", ["last offset", "found 5"]),
            ([0x61, 0xFF, 0x62], [0, 1, 3], "/vocab[1]", ["UTF-8"]),
        ]
        for (i, c) in cases.enumerated() {
            let path = dir.file("bad\(i).h5")
            try writeEncoded(path, bytes: c.bytes, offsets: c.offsets)
            let message = readMessage(path)
            #expect(message.hasPrefix("\(path): \(c.field): expected"), "\(message)")
            for word in c.words { #expect(message.contains(word), "\(message)") }
            #expect(!message.contains("\n"))
        }
        let other = dir.file("other.h5")
        try writeEncoded(other, bytes: abc, offsets: [0, 6], encoding: "utf16")
        #expect(readMessage(other).contains("a group with encoding \"utf16\""))
    }

    /// A dataset whose stored extent claims more elements than the file can hold is refused when
    /// opened, before anything is allocated: here the dimension in the dataspace message of a
    /// version 1 file (no checksum) is patched from 77777 to 2^40.
    @Test func extentLargerThanTheFileIsRefusedBeforeReading() throws {
        let dir = try TempDir()
        let path = dir.file("big.h5")
        do {
            let file = try createVersion1File(path)
            try file.write("tokens", [UInt8](repeating: 7, count: 77777))
            try file.close()
        }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let needle = withUnsafeBytes(of: UInt64(77777).littleEndian, Array.init)
        let huge = withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init)
        // Every copy (dataspace dimension and maximum, layout size), so HDF5's own consistency
        // checks pass and only the comparison with the file's size remains.
        let places = (0..<(bytes.count - 8)).filter { bytes[$0..<($0 + 8)].elementsEqual(needle) }
        #expect(!places.isEmpty, "dimension 77777 not found in \(path)")
        for at in places { bytes.replaceSubrange(at..<(at + 8), with: huge) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let message = dataErrorMessage { _ = try H5File.open(path).openDataset("tokens") }?.1 ?? "(no error)"
        #expect(message.hasPrefix("\(path): /tokens: expected"), "\(message)")
        #expect(message.contains("\(bytes.count) bytes") && !message.contains("\n"), "\(message)")
    }

    /// Attributes read into room for one value must hold exactly one value.
    @Test func multiValuedAttributesAreRefused() throws {
        let dir = try TempDir()
        let path = dir.file("attrs.h5")
        let file = try H5File.create(path)
        let space = H5Screate_simple(1, [3], nil)
        defer { H5Sclose(space) }
        let type = try H5Handle.fixedUTF8String(size: 4, file: path, object: "s")
        for (name, t) in [("s", type.id), ("i", H5T_STD_I64LE), ("d", H5T_IEEE_F64LE)] {
            let attr = H5Acreate2(file.objectID, name, t, space, H5P_DEFAULT, H5P_DEFAULT)
            #expect(attr >= 0)
            H5Aclose(attr)
        }
        for (name, read) in [("s", { _ = try file.stringAttribute("s") }), ("i", { _ = try file.intAttribute("i") }),
                             ("d", { _ = try file.doubleAttribute("d") })] as [(String, () throws -> Void)] {
            let message = dataErrorMessage(read)?.1 ?? "(no error)"
            #expect(message == "\(path): /@\(name): expected a single value, found 3 values", "\(message)")
        }
    }

    /// A version 1 file whose global heap collection has a zeroed object header (which makes
    /// libhdf5 1.10 loop forever) or an object size past the collection (which makes it copy out
    /// of bounds) is refused on open, naming the collection and the object.
    @Test func damagedGlobalHeapOfAVersion1FileIsRefusedOnOpen() throws {
        let dir = try TempDir()
        let good = dir.file("v1.h5")
        try writeVersion1TokenFile(good, vocab: words, splits: ["train": [0, 1], "valid": [1], "test": [0]])
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))
        let gcol = Array("GCOL".utf8)
        guard let heap = (0..<(original.count - 4)).first(where: { original[$0..<($0 + 4)].elementsEqual(gcol) }) else {
            Issue.record("no global heap collection in \(good)")
            return
        }
        // The first object's header starts 16 bytes in: index (2), references (2), reserved (4), size (8).
        let first = heap + 16
        var zeroed = original
        for i in first..<(first + 16) { zeroed[i] = 0 }
        var oversized = original
        oversized[first + 8 + 5] = 0x7F
        for (name, bytes, words) in [("zeroed.h5", zeroed, ["free space of 0 bytes"]),
                                     ("oversized.h5", oversized, ["object 1", "bytes"])] {
            let path = try dir.write(name, bytes: bytes)
            let message = dataErrorMessage { _ = try TokenDataset(path: path) }?.1 ?? "(no error)"
            #expect(message.hasPrefix("\(path): global heap collection at offset \(heap): object"), "\(message)")
            for word in words { #expect(message.contains(word), "\(message)") }
        }
        #expect(try TokenDataset(path: good).vocabulary() == words)
    }
}
