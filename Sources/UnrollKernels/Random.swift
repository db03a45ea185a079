// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011, "Parallel random numbers: as
// easy as 1, 2, 3") for dropout masks and initialisation. A value depends only on (seed, counter),
// never on call history, so masks are reproducible across resumes, ranks and thread schedules.

/// Philox4x32 with 10 rounds: maps a 128-bit counter and a 64-bit key to 128 random bits.
public enum Philox {
    /// The four 32-bit outputs for `counter` under `key`.
    @inlinable @inline(__always)
    public static func block(_ c0: UInt32, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32,
                             key: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var x0 = c0, x1 = c1, x2 = c2, x3 = c3
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(x0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(x2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            x0 = hi1 ^ x1 ^ k0
            x1 = lo1
            x2 = hi0 ^ x3 ^ k1
            x3 = lo0
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return (x0, x1, x2, x3)
    }

    /// Uniform Float in [0, 1) from 32 random bits (24 significant bits).
    @inlinable @inline(__always)
    public static func unitFloat(_ u: UInt32) -> Float { Float(u >> 8) * (1.0 / 16_777_216.0) }

    /// Fills `out` with uniform values in [low, high) for stream (`seed`, `stream`): element i
    /// depends only on (seed, stream, i).
    @inlinable
    public static func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, low: Float, high: Float,
                                   seed: UInt64, stream: UInt64) {
        var i = 0
        while i < count {
            let block = UInt64(i / 4)
            let r = Philox.block(UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                                 UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32),
                                 key: seed)
            let span = high - low
            out[i] = low + span * unitFloat(r.0)
            if i + 1 < count { out[i + 1] = low + span * unitFloat(r.1) }
            if i + 2 < count { out[i + 2] = low + span * unitFloat(r.2) }
            if i + 3 < count { out[i + 3] = low + span * unitFloat(r.3) }
            i += 4
        }
    }
}

/// Inverted dropout (Srivastava et al. 2014): kept units are scaled by 1/(1−p) at training time so
/// evaluation needs no rescaling.
public enum DropoutKernels {
    /// mask (count) = 0 with probability p, else 1/(1−p). Mask element i is the element
    /// `startIndex + i` of the random sequence of (seed, step, site) and depends on nothing else:
    /// `site` names the dropout location (layer input, readout input, …), and `startIndex` lets a
    /// rank generate exactly its own part of a mask defined over the global batch.
    @inlinable
    public static func makeMask(_ mask: UnsafeMutablePointer<Float>, count: Int, probability p: Float,
                                seed: UInt64, step: UInt64, site: UInt32, startIndex: Int = 0) {
        precondition(p >= 0 && p < 1, "dropout probability \(p) outside [0, 1)")
        let keep = 1 / (1 - p)
        let threshold = UInt32(min(Double(p) * 4_294_967_296.0, 4_294_967_295.0))
        var i = 0
        while i < count {
            let g = startIndex + i
            let block = UInt64(g >> 2)
            let r = Philox.block(UInt32(truncatingIfNeeded: block), site | UInt32(truncatingIfNeeded: block >> 32) << 16,
                                 UInt32(truncatingIfNeeded: step), UInt32(truncatingIfNeeded: step >> 32),
                                 key: seed)
            var lane = g & 3
            while lane < 4 && i < count {
                let u: UInt32
                switch lane { case 0: u = r.0; case 1: u = r.1; case 2: u = r.2; default: u = r.3 }
                mask[i] = u < threshold ? 0 : keep
                lane += 1
                i += 1
            }
        }
    }

    /// y = x ⊙ mask (forward) or dx = dy ⊙ mask (backward); y may alias x.
    @inlinable
    public static func apply(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                             mask: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = x[i] * mask[i] }
    }
}
