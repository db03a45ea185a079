// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven, and the "masked" form
// TFRecord files store: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so that a CRC computed over
// data that itself holds CRCs does not degenerate (TensorFlow's core/lib/hash/crc32c.h).

/// CRC-32C of byte strings and TFRecord's masking of it.
public enum CRC32C {
    /// The 256-entry table of the reflected polynomial 0x82F63B78.
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// CRC-32C of `bytes` (initial value and final xor 0xFFFFFFFF; "123456789" → 0xE3069283).
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// The masked CRC-32C of `bytes`, as a TFRecord stores it.
    public static func masked<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        mask(checksum(bytes))
    }

    /// TFRecord's mask: rotate right by 15 bits and add 0xa282ead8.
    public static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
