// A small typed wrapper over the HDF5 C API: files, groups, datasets (whole-array and hyperslab
// I/O of Float/Double/Int32/Int64/UInt8, chunked + Fletcher32 creation, a fast checksummed writer
// that stores finished chunks directly, UTF-8 string datasets) and attributes. Every call silences
// HDF5's automatic error printing on the calling thread first (silencing is per thread) and turns
// a failure into `DataError.hdf5` carrying HDF5's error stack.
// Files are written in the HDF5 1.10 format (superblock, object headers and chunk indexes carry
// checksums) and keep nothing on HDF5's global heap, whose bytes have no checksum: string
// attributes are fixed-length UTF-8, and a string dataset is a group of two checksummed datasets
// (UTF-8 bytes and int64 offsets, see `writeStrings`). Readers also accept the older encodings
// (variable-length strings, the pre-1.8 format). Every size, offset and dimension read from a file
// is checked against the file's size and the other fields before anything is allocated or read.
// Every handle is closed in `deinit`; child objects retain their file so the file closes last.
// Every file's descriptor is made close-on-exec as soon as it is opened, and every chunked dataset
// is checked on open to have all its chunks (a missing chunk would read as zeros, silently).
// Reads never leave the file: only hard links are followed, datasets with external storage or a
// virtual layout are refused, and only regular files are opened (a FIFO would block).
import Foundation
import HDF5Shim

// MARK: - Element types

/// A Swift scalar that maps to an HDF5 memory type and a little-endian file type.
public protocol H5Scalar: Sendable {
    /// Memory (native) type used for reads and writes.
    static var h5NativeType: hid_t { get }
    /// Portable type used when creating datasets and attributes.
    static var h5FileType: hid_t { get }
}

extension Float: H5Scalar {
    public static var h5NativeType: hid_t { H5T_NATIVE_FLOAT }
    public static var h5FileType: hid_t { H5T_IEEE_F32LE }
}
extension Double: H5Scalar {
    public static var h5NativeType: hid_t { H5T_NATIVE_DOUBLE }
    public static var h5FileType: hid_t { H5T_IEEE_F64LE }
}
extension Int32: H5Scalar {
    public static var h5NativeType: hid_t { H5T_NATIVE_INT32 }
    public static var h5FileType: hid_t { H5T_STD_I32LE }
}
extension Int64: H5Scalar {
    public static var h5NativeType: hid_t { H5T_NATIVE_INT64 }
    public static var h5FileType: hid_t { H5T_STD_I64LE }
}
extension UInt8: H5Scalar {
    public static var h5NativeType: hid_t { H5T_NATIVE_UINT8 }
    public static var h5FileType: hid_t { H5T_STD_U8LE }
}

/// The element type of a dataset or attribute as stored in the file.
public enum H5ElementType: Equatable, Sendable, CustomStringConvertible {
    case integer(signed: Bool, bytes: Int)
    case float(bytes: Int)
    case string
    case other

    public static let uint8 = H5ElementType.integer(signed: false, bytes: 1)
    public static let int32 = H5ElementType.integer(signed: true, bytes: 4)
    public static let int64 = H5ElementType.integer(signed: true, bytes: 8)
    public static let float32 = H5ElementType.float(bytes: 4)
    public static let float64 = H5ElementType.float(bytes: 8)

    /// numpy-style name: `uint8`, `int32`, `float32`, `string`, ...
    public var description: String {
        switch self {
        case let .integer(signed, bytes): return "\(signed ? "" : "u")int\(bytes * 8)"
        case let .float(bytes): return "float\(bytes * 8)"
        case .string: return "string"
        case .other: return "non-numeric type"
        }
    }

    static func of(typeID t: hid_t) -> H5ElementType {
        let size = H5Tget_size(t)
        switch H5Tget_class(t) {
        case H5T_INTEGER: return .integer(signed: H5Tget_sign(t) != H5T_SGN_NONE, bytes: size)
        case H5T_FLOAT: return .float(bytes: size)
        case H5T_STRING: return .string
        default: return .other
        }
    }
}

// MARK: - Error plumbing

/// Collects the lines of an HDF5 error stack during `H5Ewalk2`. File scope on purpose: a class
/// declared inside a function body crashes swift-frontend 6.3.1 under cross-module optimisation.
final class H5ErrorLines {
    var lines: [String] = []
}

/// Internal helpers shared by all wrapper types.
enum H5 {
    /// Turns off HDF5's printing of error stacks on the calling thread. Per-thread in the
    /// thread-safe build, so it is repeated before every call rather than done once.
    @inline(__always)
    static func silence() {
        _ = H5Eset_auto2(H5E_DEFAULT, nil, nil)
    }

    /// The current thread's error stack as one line (outermost call first), then clears it.
    static func currentErrorStack() -> String {
        let stack = H5Eget_current_stack()
        guard stack >= 0 else { return "(no HDF5 error stack)" }
        defer { H5Eclose_stack(stack) }
        let box = H5ErrorLines()
        _ = H5Ewalk2(stack, H5E_WALK_DOWNWARD, { _, errPointer, context in
            guard let err = errPointer?.pointee, let context else { return 0 }
            let box = Unmanaged<H5ErrorLines>.fromOpaque(context).takeUnretainedValue()
            let function = err.func_name.map { String(cString: $0) } ?? "?"
            let desc = err.desc.map { String(cString: $0) } ?? ""
            var buffer = [CChar](repeating: 0, count: 256)
            _ = H5Eget_msg(err.min_num, nil, &buffer, 256)
            let minor = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            box.lines.append("\(function): \(desc) (\(minor))")
            return 0
        }, Unmanaged.passUnretained(box).toOpaque())
        let text = box.lines.isEmpty ? "(empty HDF5 error stack)" : box.lines.joined(separator: " | ")
        return text.replacingOccurrences(of: "\n", with: " ")
    }

    /// Runs one HDF5 call with printing silenced; a negative result throws `DataError.hdf5`.
    @discardableResult
    static func call<R: BinaryInteger>(_ operation: String, file: String, object: String,
                                       _ body: () -> R) throws -> R {
        silence()
        let result = body()
        if result < 0 {
            throw DataError.hdf5(file: file, object: object, operation: operation,
                                 detail: currentErrorStack())
        }
        return result
    }

    /// Closes an identifier from a `deinit`, where nothing can be thrown.
    static func closeQuietly(_ id: hid_t, _ close: (hid_t) -> herr_t) {
        guard id >= 0 else { return }
        silence()
        _ = close(id)
    }

    /// Prepares the library once per process, before its first use through this wrapper: HDF5's
    /// own clean-up at exit is switched off (see `HDF5Library.prepareProcess`).
    static let prepared: Bool = {
        // Fails (harmlessly) when something already initialised the library: then its at-exit
        // clean-up stays registered.
        let disabled = H5dont_atexit() >= 0
        _ = H5open()
        return disabled
    }()

    /// Whether this libhdf5 build serialises calls from several threads (Debian's does).
    static let isThreadSafe: Bool = {
        var flag: hbool_t = false
        return H5is_library_threadsafe(&flag) >= 0 && flag
    }()
}

/// Process-wide set-up of the HDF5 library.
public enum HDF5Library {
    /// Switches off HDF5's clean-up at process exit (`H5dont_atexit`) and initialises the library.
    /// Call it first thing in `main`, before any other HDF5 use (`H5File` also calls it, so it
    /// takes effect whenever this wrapper is the first HDF5 user).
    ///
    /// Why: when writing a file fails for lack of space (or the file-size limit), closing it fails
    /// too, and HDF5 1.10 then frees the file's state but keeps its identifier; its at-exit
    /// clean-up closes that identifier again and crashes the process (SIGSEGV in `H5F__close_cb`)
    /// after the error was reported. Nothing is lost by skipping the clean-up: Unroll's writers
    /// close (and fsync) every file they write before using it, and readers have nothing to flush.
    /// - Returns: whether the clean-up is off (false if the library was initialised before).
    @discardableResult
    public static func prepareProcess() -> Bool { H5.prepared }

    /// Whether this libhdf5 serialises calls made from several threads (Debian's build does:
    /// `H5is_library_threadsafe`). Unroll uses HDF5 from a second thread (window read-ahead,
    /// background checkpoint writes) only when it does, and does that work on the calling thread
    /// otherwise.
    public static var isThreadSafe: Bool { H5.isThreadSafe }
}

/// A dataspace identifier that closes itself.
final class H5Space {
    let id: hid_t
    init(_ id: hid_t) { self.id = id }
    deinit { H5.closeQuietly(id, H5Sclose) }

    static func simple(_ dims: [Int], file: String, object: String) throws -> H5Space {
        let d = dims.map { hsize_t($0) }
        return H5Space(try H5.call("H5Screate_simple", file: file, object: object) {
            H5Screate_simple(Int32(d.count), d, nil)
        })
    }

    static func scalar(file: String, object: String) throws -> H5Space {
        H5Space(try H5.call("H5Screate", file: file, object: object) { H5Screate(H5S_SCALAR) })
    }
}

/// A datatype or property-list identifier that closes itself.
final class H5Handle {
    let id: hid_t
    let closer: (hid_t) -> herr_t
    init(_ id: hid_t, closer: @escaping (hid_t) -> herr_t) { self.id = id; self.closer = closer }
    deinit { H5.closeQuietly(id, closer) }

    /// A UTF-8 fixed-length string type of `size` bytes, padded with NULs.
    static func fixedUTF8String(size: Int, file: String, object: String) throws -> H5Handle {
        let t = H5Handle(try H5.call("H5Tcopy", file: file, object: object) { H5Tcopy(H5T_C_S1) },
                         closer: H5Tclose)
        try H5.call("H5Tset_size", file: file, object: object) { H5Tset_size(t.id, Swift.max(size, 1)) }
        try H5.call("H5Tset_cset", file: file, object: object) { H5Tset_cset(t.id, H5T_CSET_UTF8) }
        try H5.call("H5Tset_strpad", file: file, object: object) { H5Tset_strpad(t.id, H5T_STR_NULLPAD) }
        return t
    }

    /// A UTF-8 variable-length string type (for reading files of format version 1, and for tests
    /// that write such files; Unroll's writers no longer use it).
    static func utf8String(file: String, object: String) throws -> H5Handle {
        let t = H5Handle(try H5.call("H5Tcopy", file: file, object: object) { H5Tcopy(H5T_C_S1) },
                         closer: H5Tclose)
        try H5.call("H5Tset_size", file: file, object: object) { H5Tset_size(t.id, H5T_VARIABLE) }
        try H5.call("H5Tset_cset", file: file, object: object) { H5Tset_cset(t.id, H5T_CSET_UTF8) }
        return t
    }

    static func propertyList(_ cls: hid_t, file: String, object: String) throws -> H5Handle {
        H5Handle(try H5.call("H5Pcreate", file: file, object: object) { H5Pcreate(cls) },
                 closer: H5Pclose)
    }
}

// MARK: - Objects with attributes

/// An HDF5 object that can carry attributes (file root, group or dataset).
public protocol H5AttributeHolder {
    /// The open HDF5 identifier of this object.
    var objectID: hid_t { get }
    /// The file this object belongs to.
    var file: H5File { get }
    /// Absolute path of the object inside the file, for error messages.
    var objectPath: String { get }
}

extension H5AttributeHolder {
    private func attrObject(_ name: String) -> String { "\(objectPath)@\(name)" }

    /// Whether an attribute `name` exists on this object.
    public func hasAttribute(_ name: String) throws -> Bool {
        try H5.call("H5Aexists", file: file.path, object: attrObject(name)) {
            H5Aexists(objectID, name)
        } > 0
    }

    /// Names of all attributes, in name order.
    public func attributeNames() throws -> [String] {
        let box = H5NameList()
        try H5.call("H5Aiterate2", file: file.path, object: objectPath) {
            H5Aiterate2(objectID, H5_INDEX_NAME, H5_ITER_INC, nil, { _, name, _, context in
                guard let name, let context else { return 0 }
                Unmanaged<H5NameList>.fromOpaque(context).takeUnretainedValue().names
                    .append(String(cString: name))
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        }
        return box.names
    }

    private func replaceAttribute(_ name: String, type: hid_t, space: H5Space) throws -> H5Handle {
        let object = attrObject(name)
        if try hasAttribute(name) {
            try H5.call("H5Adelete", file: file.path, object: object) { H5Adelete(objectID, name) }
        }
        return H5Handle(try H5.call("H5Acreate2", file: file.path, object: object) {
            H5Acreate2(objectID, name, type, space.id, H5P_DEFAULT, H5P_DEFAULT)
        }, closer: H5Aclose)
    }

    /// Writes (or replaces) a scalar UTF-8 string attribute, stored as a fixed-length string of
    /// exactly its bytes (NUL-padded to 1 byte when empty) inside the object's header, which
    /// carries a checksum: nothing goes to HDF5's global heap.
    /// - Throws: `DataError.argument` if `value` contains NUL (a fixed-length string ends there).
    public func setAttribute(_ name: String, string value: String) throws {
        let object = attrObject(name)
        let bytes = Array(value.utf8)
        guard !bytes.contains(0) else {
            throw DataError.argument(name: "\(file.path): \(object)", expected: "a string without NUL",
                                     found: quoted(value))
        }
        let type = try H5Handle.fixedUTF8String(size: bytes.count, file: file.path, object: object)
        let space = try H5Space.scalar(file: file.path, object: object)
        let attr = try replaceAttribute(name, type: type.id, space: space)
        let padded = bytes.isEmpty ? [UInt8(0)] : bytes
        try H5.call("H5Awrite", file: file.path, object: object) { H5Awrite(attr.id, type.id, padded) }
    }

    /// Writes (or replaces) a scalar numeric attribute.
    public func setAttribute<T: H5Scalar>(_ name: String, _ value: T) throws {
        let object = attrObject(name)
        let space = try H5Space.scalar(file: file.path, object: object)
        let attr = try replaceAttribute(name, type: T.h5FileType, space: space)
        try withUnsafePointer(to: value) { pointer in
            _ = try H5.call("H5Awrite", file: file.path, object: object) {
                H5Awrite(attr.id, T.h5NativeType, UnsafeRawPointer(pointer))
            }
        }
    }

    private func openAttribute(_ name: String) throws -> H5Handle {
        H5Handle(try H5.call("H5Aopen", file: file.path, object: attrObject(name)) {
            H5Aopen(objectID, name, H5P_DEFAULT)
        }, closer: H5Aclose)
    }

    /// Checks, before an attribute is read into room for one value, that it holds exactly one
    /// value and that its stored size fits in the file (a damaged dataspace could claim more).
    private func requireSingleValue(_ attr: H5Handle, _ name: String) throws {
        let object = attrObject(name)
        let space = H5Space(try H5.call("H5Aget_space", file: file.path, object: object) { H5Aget_space(attr.id) })
        let n = try H5.call("H5Sget_simple_extent_npoints", file: file.path, object: object) {
            H5Sget_simple_extent_npoints(space.id)
        }
        guard n == 1 else {
            throw DataError.invalid(file: file.path, field: object, expected: "a single value", found: "\(n) values")
        }
        H5.silence()
        let stored = Int(clamping: H5Aget_storage_size(attr.id))
        let fileSize = try file.byteSize()
        guard stored <= fileSize else {
            throw DataError.invalid(file: file.path, field: object,
                                    expected: "a value that fits in the file (\(fileSize) bytes)", found: "\(stored) bytes")
        }
    }

    /// Element type of attribute `name`.
    public func attributeType(_ name: String) throws -> H5ElementType {
        let attr = try openAttribute(name)
        let type = H5Handle(try H5.call("H5Aget_type", file: file.path, object: attrObject(name)) {
            H5Aget_type(attr.id)
        }, closer: H5Tclose)
        return H5ElementType.of(typeID: type.id)
    }

    /// Reads a scalar string attribute (variable or fixed length).
    public func stringAttribute(_ name: String) throws -> String {
        let object = attrObject(name)
        let attr = try openAttribute(name)
        let fileType = H5Handle(try H5.call("H5Aget_type", file: file.path, object: object) {
            H5Aget_type(attr.id)
        }, closer: H5Tclose)
        guard H5Tget_class(fileType.id) == H5T_STRING else {
            throw DataError.invalid(file: file.path, field: object, expected: "a string attribute",
                                    found: H5ElementType.of(typeID: fileType.id).description)
        }
        try requireSingleValue(attr, name)
        if H5Tis_variable_str(fileType.id) > 0 {
            let memType = try H5Handle.utf8String(file: file.path, object: object)
            var pointer: UnsafeMutablePointer<CChar>? = nil
            try H5.call("H5Aread", file: file.path, object: object) { H5Aread(attr.id, memType.id, &pointer) }
            guard let pointer else { return "" }
            defer { H5free_memory(pointer) }
            return String(cString: pointer)
        }
        let size = H5Tget_size(fileType.id)
        H5.silence()
        let stored = Int(clamping: H5Aget_storage_size(attr.id))
        guard size >= 1, size == stored else {
            throw DataError.invalid(file: file.path, field: object, expected: "a string of its stored size (\(stored) bytes)",
                                    found: "a string type of \(size) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: size + 1)
        try H5.call("H5Aread", file: file.path, object: object) { H5Aread(attr.id, fileType.id, &bytes) }
        let end = bytes.firstIndex(of: 0) ?? size
        guard let text = String(validating: bytes[..<end], as: UTF8.self) else {
            throw DataError.invalid(file: file.path, field: object, expected: "UTF-8 text", found: "invalid UTF-8 bytes")
        }
        return text
    }

    /// Reads a scalar integer attribute (any stored integer width) as `Int`.
    public func intAttribute(_ name: String) throws -> Int {
        let type = try attributeType(name)
        guard case .integer = type else {
            throw DataError.invalid(file: file.path, field: attrObject(name), expected: "an integer attribute",
                                    found: type.description)
        }
        let attr = try openAttribute(name)
        try requireSingleValue(attr, name)
        var value: Int64 = 0
        try H5.call("H5Aread", file: file.path, object: attrObject(name)) {
            H5Aread(attr.id, H5T_NATIVE_INT64, &value)
        }
        return Int(value)
    }

    /// Reads a scalar numeric attribute (integer or float) as `Double`.
    public func doubleAttribute(_ name: String) throws -> Double {
        let type = try attributeType(name)
        switch type {
        case .integer, .float: break
        default:
            throw DataError.invalid(file: file.path, field: attrObject(name), expected: "a numeric attribute",
                                    found: type.description)
        }
        let attr = try openAttribute(name)
        try requireSingleValue(attr, name)
        var value: Double = 0
        try H5.call("H5Aread", file: file.path, object: attrObject(name)) {
            H5Aread(attr.id, H5T_NATIVE_DOUBLE, &value)
        }
        return value
    }
}

/// Collects names during `H5Literate`/`H5Aiterate2` (file scope for the same reason as H5ErrorLines).
final class H5NameList {
    var names: [String] = []
}

// MARK: - Locations (file root and groups)

/// An object that can hold links: the file's root group or a group.
public protocol H5Location: H5AttributeHolder {}

extension H5Location {
    private func childPath(_ name: String) -> String {
        name.hasPrefix("/") ? name : (objectPath == "/" ? "/" + name : objectPath + "/" + name)
    }

    /// Whether a link `name` exists directly below this location.
    public func contains(_ name: String) throws -> Bool {
        try H5.call("H5Lexists", file: file.path, object: childPath(name)) {
            H5Lexists(objectID, name, H5P_DEFAULT)
        } > 0
    }

    /// Names of the links directly below this location, in name order.
    public func memberNames() throws -> [String] {
        let box = H5NameList()
        try H5.call("H5Literate", file: file.path, object: objectPath) {
            H5Literate(objectID, H5_INDEX_NAME, H5_ITER_INC, nil, { _, name, _, context in
                guard let name, let context else { return 0 }
                Unmanaged<H5NameList>.fromOpaque(context).takeUnretainedValue().names
                    .append(String(cString: name))
                return 0
            }, Unmanaged.passUnretained(box).toOpaque())
        }
        return box.names
    }

    /// Creates a group below this location.
    public func createGroup(_ name: String) throws -> H5Group {
        let path = childPath(name)
        let gcpl = try file.groupCreationList()
        let id = try H5.call("H5Gcreate2", file: file.path, object: path) {
            H5Gcreate2(objectID, name, H5P_DEFAULT, gcpl.id, H5P_DEFAULT)
        }
        return H5Group(id: id, file: file, path: path)
    }

    /// Checks, without following anything, that every link on the way to `name` is a hard link:
    /// a soft link, an external link (to another file) or a user-defined link is refused, so a
    /// data file can only ever be read from its own bytes. Checked before any open, because
    /// opening would already follow the link (and open the other file). A link that does not
    /// exist is left for the open to report as before.
    /// - Throws: `DataError.invalid` naming the link and where it points.
    func requireHardLinks(to name: String) throws {
        let components = name.split(separator: "/", omittingEmptySubsequences: true)
        var prefix = name.hasPrefix("/") ? "/" : ""
        for component in components where component != "." {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            H5.silence()
            var info = H5L_info_t()
            guard H5Lget_info(objectID, prefix, &info, H5P_DEFAULT) >= 0 else {
                _ = H5.currentErrorStack()  // clears the stack; the open reports the missing link
                return
            }
            guard info.type != H5L_TYPE_HARD else { continue }
            let found: String
            switch info.type {
            case H5L_TYPE_SOFT:
                found = "a soft link to \(quoted(linkValue(prefix, size: info.u.val_size, external: false).target))"
            case H5L_TYPE_EXTERNAL:
                let value = linkValue(prefix, size: info.u.val_size, external: true)
                found = "an external link to \(quoted(value.file + ":" + value.target))"
            default:
                found = "a user-defined link (type \(info.type.rawValue))"
            }
            throw DataError.invalid(file: file.path, field: childPath(prefix), expected: "an object stored in this file",
                                    found: found + " (refused: a data file must hold its own data)")
        }
    }

    /// The stored value of a soft link (its target path) or an external link (file and object
    /// path), read from this file without following the link; "?" parts if it cannot be read.
    private func linkValue(_ name: String, size: Int, external: Bool) -> (file: String, target: String) {
        guard size > 0, size < 1 << 20 else { return ("?", "?") }
        var buffer = [UInt8](repeating: 0, count: size + 1)
        H5.silence()
        guard H5Lget_val(objectID, name, &buffer, size, H5P_DEFAULT) >= 0 else {
            _ = H5.currentErrorStack()
            return ("?", "?")
        }
        if external {
            var flags: UInt32 = 0
            var fileName: UnsafePointer<CChar>? = nil, objectName: UnsafePointer<CChar>? = nil
            guard H5Lunpack_elink_val(buffer, size, &flags, &fileName, &objectName) >= 0 else {
                _ = H5.currentErrorStack()
                return ("?", "?")
            }
            return (fileName.map { String(cString: $0) } ?? "?", objectName.map { String(cString: $0) } ?? "?")
        }
        let end = buffer.firstIndex(of: 0) ?? size
        return ("", String(decoding: buffer[..<end], as: UTF8.self))
    }

    /// Opens an existing group below this location. Only hard links are followed (see
    /// `requireHardLinks`).
    public func openGroup(_ name: String) throws -> H5Group {
        let path = childPath(name)
        try requireHardLinks(to: name)
        let id = try H5.call("H5Gopen2", file: file.path, object: path) { H5Gopen2(objectID, name, H5P_DEFAULT) }
        return H5Group(id: id, file: file, path: path)
    }

    /// Opens an existing dataset below this location. `chunkCacheBytes` sizes HDF5's per-dataset
    /// chunk cache (default 1 MiB); readers that touch many chunks per read should raise it.
    /// Only hard links are followed (see `requireHardLinks`), and a dataset whose elements live
    /// outside this file (external storage, or a virtual dataset mapping other datasets) is
    /// refused before any element is read, so no byte of another file reaches the caller. Its
    /// shape, element size and stored size are checked against each other and the file's size
    /// (`requirePlausibleStorage`) before anything is read.
    /// A string dataset written by `writeStrings` (a group of UTF-8 bytes and offsets) opens as
    /// one 1-D dataset of strings, like a variable-length string dataset of format version 1.
    /// - Throws: `DataError.invalid` for a refused link or storage, `DataError.hdf5` otherwise.
    public func openDataset(_ name: String, chunkCacheBytes: Int? = nil) throws -> H5Dataset {
        let path = childPath(name)
        try requireHardLinks(to: name)
        if try isGroup(name) { return try openStringGroup(name) }
        let dapl = try H5Handle.propertyList(H5P_DATASET_ACCESS, file: file.path, object: path)
        if let bytes = chunkCacheBytes {
            // 12421 slots (prime) keeps hash collisions rare for caches of a few hundred chunks.
            try H5.call("H5Pset_chunk_cache", file: file.path, object: path) {
                H5Pset_chunk_cache(dapl.id, 12421, bytes, 0.75)
            }
        }
        let id = try H5.call("H5Dopen2", file: file.path, object: path) { H5Dopen2(objectID, name, dapl.id) }
        do {
            try H5Dataset.requireOwnStorage(id: id, file: file.path, path: path)
        } catch {
            H5.closeQuietly(id, H5Dclose)
            throw error
        }
        let dataset = H5Dataset(id: id, file: file, path: path)
        try dataset.requirePlausibleStorage()
        try dataset.verifyChunksComplete()
        return dataset
    }

    /// Whether `name` (an existing hard link) is a group; false if it does not exist.
    private func isGroup(_ name: String) throws -> Bool {
        guard try contains(name) else { return false }
        var info = H5O_info_t()
        try H5.call("H5Oget_info_by_name2", file: file.path, object: childPath(name)) {
            H5Oget_info_by_name2(objectID, name, &info, UInt32(H5O_INFO_BASIC), H5P_DEFAULT)
        }
        return info.type == H5O_TYPE_GROUP
    }

    /// Opens a string dataset stored by `writeStrings` (group `name` with `encoding` =
    /// `H5StringEncoding.name`, uint8 `bytes` and int64 `offsets`) as one dataset of
    /// `offsets.count - 1` strings. Both parts are opened (and checked) like any dataset.
    private func openStringGroup(_ name: String) throws -> H5Dataset {
        let path = childPath(name)
        let group = try openGroup(name)
        let encoding = try group.hasAttribute("encoding") ? try group.stringAttribute("encoding") : nil
        guard encoding == H5StringEncoding.name else {
            throw DataError.invalid(file: file.path, field: path, expected: "a dataset",
                                    found: encoding.map { "a group with encoding \(quoted($0))" } ?? "a group")
        }
        for part in ["bytes", "offsets"] where !(try group.contains(part)) {
            throw DataError.invalid(file: file.path, field: "\(path)/\(part)", expected: "a dataset", found: "missing")
        }
        let bytes = try group.openDataset("bytes")
        let offsets = try group.openDataset("offsets")
        guard bytes.elementType == .uint8, bytes.shape.count == 1 else {
            throw DataError.invalid(file: file.path, field: bytes.path, expected: "uint8 (total UTF-8 bytes)",
                                    found: "\(bytes.elementType) shape \(bytes.shape)")
        }
        guard offsets.elementType == .int64, offsets.shape.count == 1, offsets.count >= 1 else {
            throw DataError.invalid(file: file.path, field: offsets.path, expected: "int64 (N+1 offsets)",
                                    found: "\(offsets.elementType) shape \(offsets.shape)")
        }
        let id = try H5.call("H5Dopen2", file: file.path, object: bytes.path) {
            H5Dopen2(group.id, "bytes", H5P_DEFAULT)
        }
        return H5Dataset(stringsWithBytesID: id, file: file, path: path, bytes: bytes, offsets: offsets)
    }

    /// Creates a numeric dataset of the given shape. With `chunk`, the dataset is chunked (chunk
    /// dimensions are clamped to the shape) and `fletcher32` adds a checksum per chunk.
    public func createDataset<T: H5Scalar>(_ name: String, of type: T.Type, shape: [Int],
                                           chunk: [Int]? = nil, fletcher32: Bool = false) throws -> H5Dataset {
        try createDataset(name, fileType: T.h5FileType, shape: shape, chunk: chunk, fletcher32: fletcher32)
    }

    fileprivate func createDataset(_ name: String, fileType: hid_t, shape: [Int], chunk: [Int]?,
                                   fletcher32: Bool) throws -> H5Dataset {
        let path = childPath(name)
        guard !shape.isEmpty, shape.allSatisfy({ $0 >= 0 }) else {
            throw DataError.argument(name: "\(file.path): \(path): shape", expected: "non-negative dimensions",
                                     found: "\(shape)")
        }
        let space = try H5Space.simple(shape, file: file.path, object: path)
        let dcpl = try H5Handle.propertyList(H5P_DATASET_CREATE, file: file.path, object: path)
        // No timestamps in object headers, so the same content gives the same file bytes.
        try H5.call("H5Pset_obj_track_times", file: file.path, object: path) {
            H5Pset_obj_track_times(dcpl.id, false)
        }
        // A chunk may not exceed a fixed extent, and an empty extent cannot be chunked.
        if let chunk, !shape.contains(0) {
            guard chunk.count == shape.count, chunk.allSatisfy({ $0 > 0 }) else {
                throw DataError.argument(name: "\(file.path): \(path): chunk",
                                         expected: "\(shape.count) positive dimensions", found: "\(chunk)")
            }
            let dims = zip(chunk, shape).map { hsize_t(Swift.min($0, $1)) }
            try H5.call("H5Pset_chunk", file: file.path, object: path) {
                H5Pset_chunk(dcpl.id, Int32(dims.count), dims)
            }
            if fletcher32 {
                try H5.call("H5Pset_fletcher32", file: file.path, object: path) { H5Pset_fletcher32(dcpl.id) }
            }
        }
        let id = try H5.call("H5Dcreate2", file: file.path, object: path) {
            H5Dcreate2(objectID, name, fileType, space.id, H5P_DEFAULT, dcpl.id, H5P_DEFAULT)
        }
        return H5Dataset(id: id, file: file, path: path)
    }

    /// Creates a dataset and writes `data` into it. `shape` defaults to 1-D `[data.count]`.
    @discardableResult
    public func write<T: H5Scalar>(_ name: String, _ data: [T], shape: [Int]? = nil, chunk: [Int]? = nil,
                                   fletcher32: Bool = false) throws -> H5Dataset {
        let dims = shape ?? [data.count]
        guard dims.reduce(1, *) == data.count else {
            throw DataError.argument(name: "\(file.path): \(childPath(name)): shape",
                                     expected: "\(data.count) elements", found: "\(dims)")
        }
        let dataset = try createDataset(name, of: T.self, shape: dims, chunk: chunk, fletcher32: fletcher32)
        try dataset.write(data)
        return dataset
    }

    /// Creates a dataset chunked by whole rows (`rowsPerChunk` along the first dimension, every other
    /// dimension in full) with a Fletcher32 checksum per chunk, and writes `data` (row-major, `shape`)
    /// into it. The file is the same as `write(_:_:shape:chunk:fletcher32: true)` with that chunk
    /// shape, and HDF5 and h5py verify the checksums on read as usual; but the writing is several
    /// times faster: each chunk is one contiguous run of `data`, copied once into a staging buffer,
    /// checksummed by `ch5_fletcher32` and stored with `H5Dwrite_chunk`, bypassing HDF5's filter
    /// pipeline (whose Fletcher32 runs at about 2 GB/s and which copies every chunk twice more).
    @discardableResult
    public func writeChecksummed<T: H5Scalar>(_ name: String, _ data: UnsafeBufferPointer<T>, shape: [Int],
                                              rowsPerChunk: Int) throws -> H5Dataset {
        let object = childPath(name)
        guard !shape.isEmpty, shape.reduce(1, *) == data.count else {
            throw DataError.argument(name: "\(file.path): \(object): shape", expected: "\(data.count) elements",
                                     found: "\(shape)")
        }
        let rowElements = shape.dropFirst().reduce(1, *)
        let rows = Swift.max(1, Swift.min(rowsPerChunk, shape[0]))
        let dataset = try createDataset(name, of: T.self, shape: shape, chunk: [rows] + shape.dropFirst(),
                                        fletcher32: true)
        guard !data.isEmpty, let base = data.baseAddress else { return dataset }
        // Raw chunks bypass type conversion, so they must already be in the file's byte order: on
        // a host whose native layout differs, let HDF5 convert and checksum.
        guard H5Tequal(T.h5NativeType, T.h5FileType) > 0 else {
            try dataset.write(from: data)
            return dataset
        }
        let stride = MemoryLayout<T>.stride
        let chunkElements = rows * rowElements, chunkBytes = chunkElements * stride
        // The stored chunk is the data followed by its checksum (4 bytes, little-endian).
        let staging = UnsafeMutableRawPointer.allocate(byteCount: chunkBytes + 4, alignment: 64)
        defer { staging.deallocate() }
        var offset = [hsize_t](repeating: 0, count: shape.count)
        for first in Swift.stride(from: 0, to: shape[0], by: rows) {
            let n = Swift.min(rows, shape[0] - first) * rowElements
            staging.copyMemory(from: base + first * rowElements, byteCount: n * stride)
            // An edge chunk is stored full size; HDF5 zero-fills the part past the extent too.
            if n < chunkElements {
                (staging + n * stride).initializeMemory(as: UInt8.self, repeating: 0, count: (chunkElements - n) * stride)
            }
            staging.storeBytes(of: ch5_fletcher32(staging, chunkBytes).littleEndian, toByteOffset: chunkBytes,
                               as: UInt32.self)
            offset[0] = hsize_t(first)
            // Filter mask 0: every filter of the pipeline (here only Fletcher32) has been applied.
            try H5.call("H5Dwrite_chunk", file: file.path, object: object) {
                H5Dwrite_chunk(dataset.id, H5P_DEFAULT, 0, offset, chunkBytes + 4, staging)
            }
            file.noteRawWrite(chunkBytes + 4)
        }
        return dataset
    }

    /// Creates a 1-D dataset of UTF-8 strings (e.g. a vocabulary). Stored without HDF5's global
    /// heap, so every byte is covered by a checksum: `name` is a group with attribute `encoding` =
    /// "utf8-offsets", a uint8 dataset `bytes` (all strings back to back, chunked with
    /// Fletcher32) and an int64 dataset `offsets` (N+1 entries; string i is
    /// `bytes[offsets[i]..<offsets[i+1]]`, chunked with Fletcher32). `openDataset(name)` opens it
    /// as one dataset of N strings and `readStrings()` reads it. In h5py:
    /// `b = f[name]["bytes"][:]; o = f[name]["offsets"][:]; [b[o[i]:o[i+1]].tobytes().decode() for i in range(len(o) - 1)]`.
    /// Strings must not contain NUL characters (as before, when they were C strings).
    @discardableResult
    public func writeStrings(_ name: String, _ strings: [String]) throws -> H5Dataset {
        let path = childPath(name)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(strings.reduce(0) { $0 + $1.utf8.count })
        var offsets: [Int64] = [0]
        offsets.reserveCapacity(strings.count + 1)
        for (i, string) in strings.enumerated() {
            for byte in string.utf8 {
                guard byte != 0 else {
                    throw DataError.argument(name: "\(file.path): \(path)[\(i)]", expected: "a string without NUL",
                                             found: quoted(string))
                }
                bytes.append(byte)
            }
            offsets.append(Int64(bytes.count))
        }
        let group = try createGroup(name)
        try group.setAttribute("encoding", string: H5StringEncoding.name)
        try group.write("bytes", bytes, chunk: [H5StringEncoding.byteChunk], fletcher32: true)
        try group.write("offsets", offsets, chunk: [H5StringEncoding.offsetChunk], fletcher32: true)
        return try openStringGroup(name)
    }
}

/// How `writeStrings` stores a string dataset.
enum H5StringEncoding {
    /// Value of the group's `encoding` attribute.
    static let name = "utf8-offsets"
    /// Elements per chunk of `bytes` (64 KiB) and of `offsets` (64 KiB of int64).
    static let byteChunk = 65536
    static let offsetChunk = 8192
}

// MARK: - File

/// An open HDF5 file. Closed when the last reference (including child objects) goes away, or
/// explicitly with `close()`, which reports flush errors.
public final class H5File: H5Location {
    /// How to open an existing file.
    public enum Mode: Sendable {
        /// Read only, without taking a file lock (see `open`).
        case readOnly
        /// Read and write, with HDF5's default (exclusive) file lock.
        case readWrite
    }

    /// Path the file was opened or created with.
    public let path: String
    let id: hid_t
    private let lock = NSLock()
    private var isClosed = false

    private init(id: hid_t, path: String) {
        self.id = id
        self.path = path
    }

    deinit {
        if !isClosed { H5.closeQuietly(id, H5Fclose) }
    }

    public var objectID: hid_t { id }
    public var file: H5File { self }
    public var objectPath: String { "/" }

    /// Creates (truncating) a file in the HDF5 1.10 file format (`ch5_use_checksummed_format`):
    /// its superblock, object headers and chunk indexes carry checksums, so damaged metadata is
    /// refused instead of misread. Up to 64 attributes per object stay in the object header
    /// (compact storage, covered by its checksum). h5py and HDF5 ≥ 1.10 read these files.
    /// Writers should normally go through `AtomicFile`.
    /// - Parameter writebackBytes: if set, every time `writeChecksummed` has written about this
    ///   many bytes the kernel is asked to start writing the file's dirty pages to storage (Linux
    ///   `sync_file_range`, which does not wait). For files that are fsynced right after they are
    ///   written: the device then works while the rest of the file is produced, and the fsync has
    ///   less left to wait for. Durability still comes from the fsync alone.
    public static func create(_ path: String, writebackBytes: Int? = nil) throws -> H5File {
        _ = H5.prepared
        let fapl = try H5Handle.propertyList(H5P_FILE_ACCESS, file: path, object: "/")
        try H5.call("H5Pset_libver_bounds", file: path, object: "/") { ch5_use_checksummed_format(fapl.id) }
        let fcpl = try H5Handle.propertyList(H5P_FILE_CREATE, file: path, object: "/")
        try H5.call("H5Pset_attr_phase_change", file: path, object: "/") { H5Pset_attr_phase_change(fcpl.id, 64, 0) }
        // The root group's object header would otherwise carry creation and modification times in
        // this format, and the same content would not give the same bytes a second later.
        try H5.call("H5Pset_obj_track_times", file: path, object: "/") { H5Pset_obj_track_times(fcpl.id, false) }
        let id = try H5.call("H5Fcreate", file: path, object: "/") {
            H5Fcreate(path, H5F_ACC_TRUNC, fcpl.id, fapl.id)
        }
        let file = H5File(id: id, path: path)
        try file.setCloseOnExec()
        file.writebackBytes = writebackBytes
        return file
    }

    /// Makes the file's descriptor close-on-exec. HDF5 opens files without O_CLOEXEC and holds an
    /// flock on them: a process forked and exec'd later (Open MPI's singleton MPI_Init starts
    /// `orted`) would keep the descriptor, and the lock, for its whole life, and a later
    /// read-write open of the file would fail ("unable to lock the file", errno 11). A fork between
    /// the open and this call still inherits it, which is why MPI is initialised before any file
    /// is opened (the CLI and the test bundle do so).
    private func setCloseOnExec() throws {
        H5.silence()
        if ch5_set_close_on_exec(id) < 0 {
            let error = DataError.posix(path, "set close-on-exec on its descriptor")
            try? close()  // already failing: the first error is the one to report
            throw error
        }
    }

    private var writebackBytes: Int?
    private var bytesSinceWriteback = 0

    /// The file's size in bytes (HDF5's end of file): the bound for every size read from it.
    public func byteSize() throws -> Int {
        var size: hsize_t = 0
        try H5.call("H5Fget_filesize", file: path, object: "/") { H5Fget_filesize(id, &size) }
        return Int(clamping: size)
    }

    /// Version of the file's superblock: 0 or 1 for the original format (no checksums), 2 or 3
    /// for the 1.8/1.10 formats that Unroll writes (checksummed metadata).
    public func superblockVersion() throws -> Int {
        var info = H5F_info2_t()
        try H5.call("H5Fget_info2", file: path, object: "/") { H5Fget_info2(id, &info) }
        return Int(info.super.version)
    }

    /// Counts `bytes` of raw data just written and starts writeback when `writebackBytes` is reached.
    func noteRawWrite(_ bytes: Int) {
        guard let threshold = writebackBytes else { return }
        bytesSinceWriteback += bytes
        if bytesSinceWriteback >= threshold { startWriteback() }
    }

    /// Asks the kernel to start writing the file's dirty pages to storage now, without waiting
    /// (Linux `sync_file_range`; nothing elsewhere). Writers that fsync at the end call it after
    /// the bulk of the data, so the device works while they produce the rest.
    public func startWriteback() {
        bytesSinceWriteback = 0
        // Failure only loses the head start, so it is ignored.
        H5.silence()
        _ = ch5_start_writeback(id)
    }

    /// Opens an existing file. Read-only opens take no file lock: Unroll's writers never modify
    /// a file in place (they write a temporary file and rename it), so readers need no protection,
    /// and a lock-free open also works on parallel filesystems without flock support, where many
    /// ranks read the same file.
    /// A file in HDF5's original format (superblock 0 or 1) has its global heap collections
    /// checked first (`GlobalHeapCheck`), since libhdf5 would crash or hang on damaged ones.
    /// Only a regular file is opened: anything else (a FIFO, a directory, a device, a socket) is
    /// refused from `stat` alone, without opening it, since opening a FIFO blocks until a writer
    /// appears. A path that does not exist is left to HDF5 to report.
    /// - Throws: `DataError.invalid` ("PATH: file: expected a regular file, found a FIFO") or
    ///   `DataError.hdf5`.
    public static func open(_ path: String, mode: Mode = .readOnly) throws -> H5File {
        _ = H5.prepared
        if let kind = nonRegularKind(path) {
            throw DataError.invalid(file: path, field: "file", expected: "a regular file", found: kind)
        }
        let fapl = try H5Handle.propertyList(H5P_FILE_ACCESS, file: path, object: "/")
        if mode == .readOnly {
            try H5.call("H5Pset_file_locking", file: path, object: "/") {
                H5Pset_file_locking(fapl.id, false, true)
            }
        }
        let flags = mode == .readOnly ? H5F_ACC_RDONLY : H5F_ACC_RDWR
        let id = try H5.call("H5Fopen", file: path, object: "/") { H5Fopen(path, flags, fapl.id) }
        let file = H5File(id: id, path: path)
        try file.setCloseOnExec()
        // The original format (Unroll's format version 1) has unchecksummed global heap
        // collections that libhdf5 trusts: checked before any variable-length string is read.
        if try file.superblockVersion() < 2 {
            try GlobalHeapCheck.validate(path, fileSize: try file.byteSize())
        }
        return file
    }

    /// What `path` is when it exists but is not a regular file ("a FIFO", "a directory", ...),
    /// from `stat` (which follows symbolic links, as opening would); nil for a regular file or a
    /// path that cannot be stat'ed.
    public static func nonRegularKind(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "something other than a regular file"
        }
    }

    /// Whether `path` is a regular file that starts with an HDF5 signature (false for missing
    /// files and for FIFOs, directories and devices, which are not opened: a FIFO would block).
    public static func isHDF5(_ path: String) -> Bool {
        _ = H5.prepared
        if nonRegularKind(path) != nil { return false }
        H5.silence()
        return H5Fis_hdf5(path) > 0
    }

    /// Flushes everything to the OS and closes the file identifier. Objects still open keep the
    /// file open until they are released; callers that need the bytes on disk release them first.
    /// The identifier is closed even when the flush fails (e.g. a full disk), and never touched
    /// again after a failed close: HDF5 may already have freed the file's state behind it.
    public func close() throws {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { return }
        isClosed = true
        var flushError: (any Error)?
        do {
            try H5.call("H5Fflush", file: path, object: "/") { H5Fflush(id, H5F_SCOPE_GLOBAL) }
        } catch {
            flushError = error
        }
        do {
            try H5.call("H5Fclose", file: path, object: "/") { H5Fclose(id) }
        } catch {
            throw flushError ?? error
        }
        if let flushError { throw flushError }
    }

    /// A group-creation property list without timestamps (for reproducible bytes). The shim has no
    /// getter for the group-creation class, so a copy of the root group's list is used.
    func groupCreationList() throws -> H5Handle {
        let root = H5Handle(try H5.call("H5Gopen2", file: path, object: "/") { H5Gopen2(id, "/", H5P_DEFAULT) },
                            closer: H5Gclose)
        let gcpl = H5Handle(try H5.call("H5Gget_create_plist", file: path, object: "/") {
            H5Gget_create_plist(root.id)
        }, closer: H5Pclose)
        try H5.call("H5Pset_obj_track_times", file: path, object: "/") { H5Pset_obj_track_times(gcpl.id, false) }
        return gcpl
    }
}

// MARK: - Group

/// An open group.
public final class H5Group: H5Location {
    let id: hid_t
    /// The file this group belongs to (retained so the file closes after the group).
    public let file: H5File
    /// Absolute path inside the file.
    public let path: String

    init(id: hid_t, file: H5File, path: String) {
        self.id = id
        self.file = file
        self.path = path
    }

    deinit { H5.closeQuietly(id, H5Gclose) }

    public var objectID: hid_t { id }
    public var objectPath: String { path }
}

// MARK: - Dataset

/// An open dataset.
public final class H5Dataset: H5AttributeHolder {
    let id: hid_t
    /// The file this dataset belongs to (retained so the file closes after the dataset).
    public let file: H5File
    /// Absolute path inside the file.
    public let path: String
    /// Extent, slowest-varying dimension first.
    public let shape: [Int]
    /// Element type as stored.
    public let elementType: H5ElementType
    /// For a string dataset stored by `writeStrings`: its two parts (`id` is then the bytes').
    let stringParts: (bytes: H5Dataset, offsets: H5Dataset)?

    init(id: hid_t, file: H5File, path: String) {
        self.id = id
        self.file = file
        self.path = path
        H5.silence()
        let space = H5Space(H5Dget_space(id))
        let rank = Int(H5Sget_simple_extent_ndims(space.id))
        var dims = [hsize_t](repeating: 0, count: Swift.max(rank, 0))
        if rank > 0 { _ = H5Sget_simple_extent_dims(space.id, &dims, nil) }
        // Clamped, not trapping: a damaged extent is refused by `requirePlausibleStorage`.
        shape = dims.map { Int(clamping: $0) }
        let type = H5Handle(H5Dget_type(id), closer: H5Tclose)
        elementType = type.id >= 0 ? H5ElementType.of(typeID: type.id) : .other
        stringParts = nil
    }

    /// A dataset of `offsets.count - 1` strings stored as UTF-8 `bytes` and `offsets`; `id` is
    /// another handle of the bytes dataset (for attributes).
    init(stringsWithBytesID id: hid_t, file: H5File, path: String, bytes: H5Dataset, offsets: H5Dataset) {
        self.id = id
        self.file = file
        self.path = path
        shape = [offsets.count - 1]
        elementType = .string
        stringParts = (bytes, offsets)
    }

    /// Size in bytes of one element as HDF5 stores it (16 for a variable-length string: length,
    /// heap address and index).
    func storedElementSize() throws -> Int {
        let type = H5Handle(try H5.call("H5Dget_type", file: file.path, object: path) { H5Dget_type(id) },
                            closer: H5Tclose)
        if H5Tis_variable_str(type.id) > 0 || H5Tget_class(type.id) == H5T_VLEN { return 16 }
        return H5Tget_size(type.id)
    }

    /// Checks a dataset's sizes against each other and the file before anything is read: the
    /// extent times the element size (no overflow) must fit in the file unless a compression
    /// filter is present (then within 1100 times the stored bytes: deflate's limit is 1032:1);
    /// the stored size must fit in the file; a contiguous or compact dataset must store exactly
    /// its elements' bytes, a contiguous one inside the file. So a damaged dataspace or layout
    /// cannot make a reader allocate or read more than the file holds.
    /// - Throws: `DataError.invalid` naming the file and dataset.
    func requirePlausibleStorage() throws {
        let fileSize = try file.byteSize()
        let elementSize = try storedElementSize()
        var bytes = elementSize, overflow = elementSize <= 0
        for d in shape where !overflow {
            (bytes, overflow) = bytes.multipliedReportingOverflow(by: d)
        }
        let described = "shape \(shape) of \(elementSize)-byte elements"
        guard !overflow else {
            throw DataError.invalid(file: file.path, field: path, expected: "an extent that fits in the file (\(fileSize) bytes)",
                                    found: described)
        }
        H5.silence()
        let stored = Int(clamping: H5Dget_storage_size(id))
        guard stored <= fileSize else {
            throw DataError.invalid(file: file.path, field: path, expected: "stored data within the file (\(fileSize) bytes)",
                                    found: "\(stored) bytes stored")
        }
        let dcpl = H5Handle(try H5.call("H5Dget_create_plist", file: file.path, object: path) {
            H5Dget_create_plist(id)
        }, closer: H5Pclose)
        let layout = H5Pget_layout(dcpl.id)
        let filters = Int(try H5.call("H5Pget_nfilters", file: file.path, object: path) { H5Pget_nfilters(dcpl.id) })
        var compressed = false
        for i in 0..<filters {
            var flags: UInt32 = 0, nValues = 0, config: UInt32 = 0
            var name = [CChar](repeating: 0, count: 64)
            if H5Pget_filter2(dcpl.id, UInt32(i), &flags, &nValues, nil, 64, &name, &config) != H5Z_FILTER_FLETCHER32 {
                compressed = true
            }
        }
        let limit = compressed ? stored.multipliedReportingOverflow(by: 1100).partialValue : fileSize
        guard bytes <= limit else {
            throw DataError.invalid(file: file.path, field: path,
                                    expected: compressed ? "an extent within 1100 × its \(stored) stored bytes"
                                                         : "an extent that fits in the file (\(fileSize) bytes)",
                                    found: "\(described) (\(bytes) bytes)")
        }
        guard bytes > 0 else { return }
        switch layout {
        case H5D_CONTIGUOUS, H5D_COMPACT:
            guard stored == bytes else {
                throw DataError.invalid(file: file.path, field: path, expected: "\(bytes) bytes stored (\(described))",
                                        found: "\(stored)")
            }
            if layout == H5D_CONTIGUOUS {
                H5.silence()
                let offset = H5Dget_offset(id)
                guard offset != haddr_t.max, Int(clamping: offset) <= fileSize - stored else {
                    throw DataError.invalid(file: file.path, field: path,
                                            expected: "data inside the file (\(fileSize) bytes)",
                                            found: offset == haddr_t.max ? "no data address"
                                                : "\(stored) bytes at offset \(offset)")
                }
            }
        default:
            break
        }
    }

    deinit { H5.closeQuietly(id, H5Dclose) }

    public var objectID: hid_t { id }
    public var objectPath: String { path }

    /// Refuses a dataset whose elements are not stored in its own file: external storage
    /// (raw data in other files, `H5Pset_external`) or the virtual layout (elements mapped from
    /// datasets, possibly in other files, `H5Pset_virtual`). HDF5 reads those files only when
    /// elements are read, so checking right after `H5Dopen2` is early enough. The message names
    /// the external file (stored in this file) but never reads it.
    static func requireOwnStorage(id: hid_t, file: String, path: String) throws {
        let dcpl = H5Handle(try H5.call("H5Dget_create_plist", file: file, object: path) {
            H5Dget_create_plist(id)
        }, closer: H5Pclose)
        let external = try H5.call("H5Pget_external_count", file: file, object: path) { H5Pget_external_count(dcpl.id) }
        if external > 0 {
            var name = [CChar](repeating: 0, count: 4096)
            var offset = off_t(0), size = hsize_t(0)
            H5.silence()
            let named = H5Pget_external(dcpl.id, 0, name.count - 1, &name, &offset, &size) >= 0
            if !named { _ = H5.currentErrorStack() }
            let first = named ? quoted(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                              as: UTF8.self)) : "another file"
            let more = external > 1 ? " and \(external - 1) more" : ""
            throw DataError.invalid(file: file, field: path, expected: "a dataset stored in this file",
                                    found: "external storage in \(first)\(more) (refused: a data file must hold its own data)")
        }
        if H5Pget_layout(dcpl.id) == H5D_VIRTUAL {
            throw DataError.invalid(file: file, field: path, expected: "a dataset stored in this file",
                                    found: "a virtual dataset (refused: a data file must hold its own data)")
        }
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Chunk shape (nil when not chunked) and whether chunks carry a Fletcher32 checksum; for a
    /// string dataset stored by `writeStrings`, those of its bytes.
    public func storage() throws -> (chunk: [Int]?, fletcher32: Bool) {
        if let parts = stringParts { return try parts.bytes.storage() }
        let dcpl = H5Handle(try H5.call("H5Dget_create_plist", file: file.path, object: path) {
            H5Dget_create_plist(id)
        }, closer: H5Pclose)
        guard H5Pget_layout(dcpl.id) == H5D_CHUNKED else { return (nil, false) }
        var dims = [hsize_t](repeating: 0, count: shape.count)
        try H5.call("H5Pget_chunk", file: file.path, object: path) { H5Pget_chunk(dcpl.id, Int32(dims.count), &dims) }
        guard dims.allSatisfy({ $0 >= 1 }) else {
            throw DataError.invalid(file: file.path, field: path, expected: "chunk dimensions ≥ 1", found: "\(dims)")
        }
        let filters = try H5.call("H5Pget_nfilters", file: file.path, object: path) { H5Pget_nfilters(dcpl.id) }
        var fletcher = false
        for i in 0..<UInt32(filters) {
            var flags: UInt32 = 0, nValues = 0, config: UInt32 = 0
            var name = [CChar](repeating: 0, count: 64)
            let filter = H5Pget_filter2(dcpl.id, i, &flags, &nValues, nil, 64, &name, &config)
            if filter == H5Z_FILTER_FLETCHER32 { fletcher = true }
        }
        return (dims.map { Int($0) }, fletcher)
    }

    /// Number of chunks the shape implies (0 for a dataset that is not chunked or is empty).
    public func expectedChunkCount() throws -> Int {
        if let parts = stringParts { return try parts.bytes.expectedChunkCount() + parts.offsets.expectedChunkCount() }
        guard let chunk = try storage().chunk, !shape.contains(0) else { return 0 }
        return zip(shape, chunk).reduce(1) { $0 * (($1.0 + $1.1 - 1) / Swift.max($1.1, 1)) }
    }

    /// Number of chunks stored in the file (in the chunk index); 0 when not chunked.
    public func storedChunkCount() throws -> Int {
        if let parts = stringParts { return try parts.bytes.storedChunkCount() + parts.offsets.storedChunkCount() }
        guard try storage().chunk != nil else { return 0 }
        // HDF5 1.10 wants a real dataspace here (H5S_ALL is refused); the whole extent counts all.
        let space = H5Space(try H5.call("H5Dget_space", file: file.path, object: path) { H5Dget_space(id) })
        var n: hsize_t = 0
        try H5.call("H5Dget_num_chunks", file: file.path, object: path) { H5Dget_num_chunks(id, space.id, &n) }
        return Int(n)
    }

    /// Checks that a chunked dataset has every chunk its shape implies. HDF5 reads a missing chunk
    /// as the fill value (zeros) without any error, so a damaged chunk index or an incomplete
    /// write would otherwise go unnoticed. `openDataset` calls it; every Unroll writer writes all
    /// chunks of the datasets it creates.
    /// - Throws: `DataError.invalid` ("FILE: DATASET: expected N chunks, found M ...").
    public func verifyChunksComplete() throws {
        let expected = try expectedChunkCount()
        guard expected > 0 else { return }
        let found = try storedChunkCount()
        if found != expected {
            throw DataError.invalid(file: file.path, field: path,
                                    expected: "\(expected) chunk\(expected == 1 ? "" : "s")",
                                    found: "\(found) (damaged chunk index or incomplete write: missing chunks read as zeros)")
        }
    }

    /// Writes the whole dataset; `data.count` must equal `count`.
    public func write<T: H5Scalar>(_ data: [T]) throws {
        try data.withUnsafeBufferPointer { try write(from: $0) }
    }

    /// Writes the whole dataset from `buffer` (no intermediate copy); `buffer.count` must equal `count`.
    public func write<T: H5Scalar>(from buffer: UnsafeBufferPointer<T>) throws {
        guard buffer.count == count else {
            throw DataError.argument(name: "\(file.path): \(path)", expected: "\(count) elements to write",
                                     found: "\(buffer.count)")
        }
        guard count > 0 else { return }
        try H5.call("H5Dwrite", file: file.path, object: path) {
            H5Dwrite(id, T.h5NativeType, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.baseAddress)
        }
    }

    /// Reads the whole dataset, converting to `T` (e.g. uint8 in the file → Int32 in memory).
    public func read<T: H5Scalar>(as type: T.Type) throws -> [T] {
        guard count > 0 else { return [] }
        try requireNumeric(T.self)
        return try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            try H5.call("H5Dread", file: file.path, object: path) {
                H5Dread(id, T.h5NativeType, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.baseAddress)
            }
            initialized = count
        }
    }

    /// Reads elements `range` of a 1-D dataset.
    public func read<T: H5Scalar>(range: Range<Int>, as type: T.Type) throws -> [T] {
        try [T](unsafeUninitializedCapacity: range.count) { buffer, initialized in
            try read(range: range, into: buffer)
            initialized = range.count
        }
    }

    /// Reads elements `range` of a 1-D dataset into `buffer` (which must hold `range.count`).
    public func read<T: H5Scalar>(range: Range<Int>, into buffer: UnsafeMutableBufferPointer<T>) throws {
        guard shape.count == 1 else {
            throw DataError.invalid(file: file.path, field: path, expected: "a 1-D dataset", found: "shape \(shape)")
        }
        try readSelection(start: [range.lowerBound], stride: nil, count: [range.count], block: nil,
                          total: range.count, into: buffer)
    }

    /// Reads rows `rows` of a 2-D dataset, row-major `(rows.count, shape[1])`.
    public func readRows<T: H5Scalar>(_ rows: Range<Int>, as type: T.Type) throws -> [T] {
        guard shape.count == 2 else {
            throw DataError.invalid(file: file.path, field: path, expected: "a 2-D dataset", found: "shape \(shape)")
        }
        let total = rows.count * shape[1]
        return try [T](unsafeUninitializedCapacity: total) { buffer, initialized in
            try readSelection(start: [rows.lowerBound, 0], stride: nil, count: [rows.count, shape[1]], block: nil,
                              total: total, into: buffer)
            initialized = total
        }
    }

    /// Reads `count` blocks of `block` consecutive elements of a 1-D dataset, block k starting at
    /// `start + k * stride`, into `buffer` (blocks back to back). One HDF5 read for all blocks.
    public func readStrided<T: H5Scalar>(start: Int, stride: Int, count: Int, block: Int,
                                         into buffer: UnsafeMutableBufferPointer<T>) throws {
        guard shape.count == 1 else {
            throw DataError.invalid(file: file.path, field: path, expected: "a 1-D dataset", found: "shape \(shape)")
        }
        guard block <= stride || count <= 1 else {
            throw DataError.argument(name: "\(file.path): \(path): block", expected: "≤ stride \(stride)",
                                     found: "\(block)")
        }
        try readSelection(start: [start], stride: [Swift.max(stride, 1)], count: [count], block: [block],
                          total: count * block, into: buffer)
    }

    private func requireNumeric<T: H5Scalar>(_: T.Type) throws {
        switch elementType {
        case .integer, .float: return
        default:
            throw DataError.invalid(file: file.path, field: path, expected: "a numeric dataset to read as \(T.self)",
                                    found: elementType.description)
        }
    }

    private func readSelection<T: H5Scalar>(start: [Int], stride: [Int]?, count: [Int], block: [Int]?,
                                            total: Int, into buffer: UnsafeMutableBufferPointer<T>) throws {
        guard buffer.count >= total else {
            throw DataError.argument(name: "\(file.path): \(path): buffer", expected: "≥ \(total) elements",
                                     found: "\(buffer.count)")
        }
        // Bounds are checked here so the error names the request, not HDF5's internal function.
        for d in 0..<start.count {
            let extent = (count[d] - 1) * (stride?[d] ?? 1) + (block?[d] ?? 1)
            guard start[d] >= 0, count[d] >= 0, count[d] == 0 || start[d] + extent <= shape[d] else {
                throw DataError.argument(name: "\(file.path): \(path): selection",
                                         expected: "within shape \(shape)",
                                         found: "start \(start) count \(count) block \(block ?? [])")
            }
        }
        try requireNumeric(T.self)
        guard total > 0 else { return }
        let fileSpace = H5Space(try H5.call("H5Dget_space", file: file.path, object: path) { H5Dget_space(id) })
        let s = start.map { hsize_t($0) }, c = count.map { hsize_t($0) }
        let st = stride?.map { hsize_t($0) }, b = block?.map { hsize_t($0) }
        try H5.call("H5Sselect_hyperslab", file: file.path, object: path) {
            H5Sselect_hyperslab(fileSpace.id, H5S_SELECT_SET, s, st, c, b)
        }
        let memSpace = try H5Space.simple([total], file: file.path, object: path)
        try H5.call("H5Dread", file: file.path, object: path) {
            H5Dread(id, T.h5NativeType, memSpace.id, fileSpace.id, H5P_DEFAULT, buffer.baseAddress)
        }
    }

    /// Reads a 1-D dataset of strings: one stored by `writeStrings` (UTF-8 bytes and offsets; the
    /// offsets must start at 0, never decrease and end at the number of bytes, and the bytes must
    /// be UTF-8), or, from files of format version 1, variable- or fixed-length HDF5 strings.
    public func readStrings() throws -> [String] {
        guard elementType == .string, shape.count == 1 else {
            throw DataError.invalid(file: file.path, field: path, expected: "a 1-D string dataset",
                                    found: "\(elementType) shape \(shape)")
        }
        if let parts = stringParts { return try readEncodedStrings(bytes: parts.bytes, offsets: parts.offsets) }
        let n = count
        guard n > 0 else { return [] }
        let fileType = H5Handle(try H5.call("H5Dget_type", file: file.path, object: path) { H5Dget_type(id) },
                                closer: H5Tclose)
        if H5Tis_variable_str(fileType.id) > 0 {
            let memType = try H5Handle.utf8String(file: file.path, object: path)
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
            try H5.call("H5Dread", file: file.path, object: path) {
                H5Dread(id, memType.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, &pointers)
            }
            let strings = pointers.map { $0.map { String(cString: $0) } ?? "" }
            let space = H5Space(try H5.call("H5Dget_space", file: file.path, object: path) { H5Dget_space(id) })
            try H5.call("H5Dvlen_reclaim", file: file.path, object: path) {
                H5Dvlen_reclaim(memType.id, space.id, H5P_DEFAULT, &pointers)
            }
            return strings
        }
        let size = H5Tget_size(fileType.id)
        // `requirePlausibleStorage` (at open) bounded size × n by the file's size.
        var bytes = [UInt8](repeating: 0, count: size * n)
        try H5.call("H5Dread", file: file.path, object: path) {
            H5Dread(id, fileType.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, &bytes)
        }
        return (0..<n).map { i in
            let slice = bytes[(i * size)..<((i + 1) * size)]
            let end = slice.firstIndex(of: 0) ?? slice.endIndex
            return String(decoding: slice[..<end], as: UTF8.self)
        }
    }

    /// Reads the strings of a `writeStrings` dataset, checking the offsets before slicing.
    private func readEncodedStrings(bytes: H5Dataset, offsets: H5Dataset) throws -> [String] {
        let ends = try offsets.read(as: Int64.self)
        let total = Int64(bytes.count)
        guard ends.first == 0 else {
            throw DataError.invalid(file: file.path, field: offsets.path, expected: "0 as the first offset",
                                    found: ends.first.map { "\($0)" } ?? "no offsets")
        }
        for i in 1..<ends.count where ends[i] < ends[i - 1] || ends[i] > total {
            throw DataError.invalid(file: file.path, field: "\(offsets.path)[\(i)]",
                                    expected: "non-decreasing offsets within the \(total) bytes of \(bytes.path)",
                                    found: "\(ends[i]) after \(ends[i - 1])")
        }
        guard ends.last == total else {
            throw DataError.invalid(file: file.path, field: offsets.path,
                                    expected: "a last offset equal to the \(total) bytes of \(bytes.path)",
                                    found: "\(ends.last ?? 0)")
        }
        let utf8 = try bytes.read(as: UInt8.self)
        return try (0..<(ends.count - 1)).map { i in
            let slice = utf8[Int(ends[i])..<Int(ends[i + 1])]
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw DataError.invalid(file: file.path, field: "\(path)[\(i)]", expected: "UTF-8 text",
                                        found: "invalid UTF-8 bytes")
            }
            return text
        }
    }
}
