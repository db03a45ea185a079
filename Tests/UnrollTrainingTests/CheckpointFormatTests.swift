// Checkpoint format versions: a saved checkpoint (v2) uses HDF5's checksummed 1.10 format and
// keeps nothing on the global heap; a v1 checkpoint (variable-length string attributes and
// vocabulary, made here by rewriting those parts of a saved one with raw HDF5 calls) still loads
// to the same content, and resumes and inspects like a v2 one.
import Foundation
import HDF5Shim
import Testing
import UnrollData
@testable import UnrollTraining

@Suite struct CheckpointFormatTests {
    typealias F = CheckpointFixtures

    /// Replaces string attribute `name` of `holder` by a variable-length one with the same value.
    private func makeVariableLength(_ holder: some H5AttributeHolder, _ name: String) throws {
        let value = try holder.stringAttribute(name)
        let type = H5Tcopy(H5T_C_S1)
        defer { H5Tclose(type) }
        H5Tset_size(type, H5T_VARIABLE)
        H5Tset_cset(type, H5T_CSET_UTF8)
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        H5Adelete(holder.objectID, name)
        let attr = H5Acreate2(holder.objectID, name, type, space, H5P_DEFAULT, H5P_DEFAULT)
        defer { H5Aclose(attr) }
        let status = value.withCString { c -> herr_t in
            var pointer: UnsafePointer<CChar>? = c
            return H5Awrite(attr, type, &pointer)
        }
        #expect(attr >= 0 && status >= 0)
        #expect(H5Tis_variable_str(H5Aget_type(attr)) > 0)
    }

    /// Replaces `/vocab` by a 1-D dataset of variable-length strings, as v1 wrote it.
    private func writeVariableLengthVocabulary(_ file: H5File, _ words: [String]) throws {
        try F.delete(file, "/vocab")
        let type = H5Tcopy(H5T_C_S1)
        defer { H5Tclose(type) }
        H5Tset_size(type, H5T_VARIABLE)
        H5Tset_cset(type, H5T_CSET_UTF8)
        let space = H5Screate_simple(1, [hsize_t(words.count)], nil)
        defer { H5Sclose(space) }
        let d = H5Dcreate2(file.objectID, "vocab", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
        defer { H5Dclose(d) }
        let copies = words.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        var pointers = copies.map { $0.map { UnsafePointer<CChar>($0) } }
        #expect(d >= 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &pointers) >= 0)
    }

    @Test func savedCheckpointsUseTheChecksummedFormatWithoutVariableLengthStrings() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        let file = try H5File.open(path)
        #expect(try file.superblockVersion() >= 2)
        #expect(try file.intAttribute("version") == CheckpointFormat.version)
        for name in try file.attributeNames() where try file.attributeType(name) == .string {
            let attr = H5Aopen(file.objectID, name, H5P_DEFAULT)
            let type = H5Aget_type(attr)
            #expect(H5Tis_variable_str(type) == 0, "attribute \(name) is variable-length")
            H5Tclose(type)
            H5Aclose(attr)
        }
        let vocab = try file.openGroup("vocab")
        #expect(try vocab.stringAttribute("encoding") == "utf8-offsets")
        #expect(try vocab.openDataset("bytes").storage().fletcher32)
        #expect(try file.openDataset("vocab").readStrings() == t.languageModel.vocabulary)
    }

    /// A v1 checkpoint: variable-length strings everywhere they were, version 1. It loads to the
    /// same content as before the rewrite and describes itself as a checkpoint.
    @Test func version1CheckpointsWithVariableLengthStringsStayReadable() throws {
        let dir = try CheckpointScratch()
        let (path, t) = try F.savedCheckpoint(in: dir)
        let before = try Checkpoint.load(path)
        try F.edit(path) { file in
            for name in ["format", "unroll_version", "config", "created", "data_file", "data_sha256"] {
                try makeVariableLength(file, name)
            }
            try makeVariableLength(file.openGroup("optimizer"), "kind")
            try makeVariableLength(file.openGroup("state"), "progress")
            try writeVariableLengthVocabulary(file, t.languageModel.vocabulary)
            try file.setAttribute("version", Int64(1))
        }
        let after = try Checkpoint.load(path)
        #expect(after.vocabulary == t.languageModel.vocabulary)
        #expect(after.parameters == before.parameters)
        #expect(after.optimizerSlots == before.optimizerSlots)
        #expect(after.progress == before.progress)
        #expect(after.taskState == before.taskState)
        #expect(after.dataSHA256 == before.dataSHA256 && after.dataFile == before.dataFile)
        #expect(Checkpoint.isCheckpoint(path))
        #expect(try Checkpoint.describe(path).contains("checkpoint, format unroll.checkpoint v1,"))
        let resumed = try F.trainer(t.config)
        try Checkpoint.restore(after, into: resumed, file: path)
        #expect(F.arenaBits(resumed) == F.arenaBits(t))
    }
}
