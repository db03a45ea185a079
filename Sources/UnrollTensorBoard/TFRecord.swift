// TFRecord framing, the container of TensorBoard event files: each record is
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data.
// The encoder builds one record's bytes; the reader splits a whole file into records and checks
// both CRCs and the lengths, naming the record and byte offset of the first that does not fit.
import Foundation

/// Errors reading TFRecord files.
public enum TFRecordError: Error, CustomStringConvertible, Equatable {
    /// The record starting at `offset` (the `index`-th, from 0) is cut off or fails a check.
    case corrupt(index: Int, offset: Int, reason: String)

    public var description: String {
        switch self {
        case let .corrupt(index, offset, reason): "record \(index) at byte \(offset): \(reason)"
        }
    }
}

/// Encoding and decoding of TFRecord framing.
public enum TFRecord {
    /// The framed bytes of one record holding `payload`.
    public static func encode(_ payload: Data) -> Data {
        var out = Data(capacity: payload.count + 16)
        var length = UInt64(payload.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Data($0) }
        out.append(lengthBytes)
        appendLE(&out, CRC32C.masked(lengthBytes))
        out.append(payload)
        appendLE(&out, CRC32C.masked(payload))
        return out
    }

    /// The payloads of every record in `data`, in order.
    /// - Throws: `TFRecordError.corrupt` for a truncated record or a CRC that does not match.
    public static func decode(_ data: Data) throws -> [Data] {
        let bytes = [UInt8](data)
        var records: [Data] = []
        var offset = 0
        while offset < bytes.count {
            let index = records.count
            func corrupt(_ reason: String) -> TFRecordError { .corrupt(index: index, offset: offset, reason: reason) }
            guard bytes.count - offset >= 12 else { throw corrupt("truncated header (\(bytes.count - offset) bytes)") }
            let lengthBytes = bytes[offset..<offset + 8]
            let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard readLE(bytes, offset + 8) == CRC32C.masked(lengthBytes) else { throw corrupt("length CRC mismatch") }
            guard length <= UInt64(bytes.count - offset - 16) else {
                throw corrupt("truncated data (length \(length), \(bytes.count - offset - 16) bytes left)")
            }
            let start = offset + 12, end = start + Int(length)
            let payload = bytes[start..<end]
            guard readLE(bytes, end) == CRC32C.masked(payload) else { throw corrupt("data CRC mismatch") }
            records.append(Data(payload))
            offset = end + 4
        }
        return records
    }

    private static func appendLE(_ out: inout Data, _ value: UInt32) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
    }

    private static func readLE(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }
    }
}
