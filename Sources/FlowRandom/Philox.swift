import Foundation

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), a
/// counter-based generator: the numbers are a pure function of (key, counter), so a seed gives
/// the same noise in the interpreter, compiled code, any batch split and any thread count.
public enum Philox {
    /// The round multipliers and the key's per-round increments (Weyl sequence) of Philox4x32.
    public static let m0: UInt32 = 0xD251_1F53, m1: UInt32 = 0xCD9E_8D57
    public static let w0: UInt32 = 0x9E37_79B9, w1: UInt32 = 0xBB67_AE85

    /// One 10-round block: four 32-bit outputs for a 128-bit counter and a 64-bit key.
    public static func block(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var (x0, x1, x2, x3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 { k0 &+= w0; k1 &+= w1 }
            let p0 = UInt64(m0) * UInt64(x0), p1 = UInt64(m1) * UInt64(x2)
            (x0, x1, x2, x3) = (UInt32(truncatingIfNeeded: p1 >> 32) ^ x1 ^ k0, UInt32(truncatingIfNeeded: p1),
                                UInt32(truncatingIfNeeded: p0 >> 32) ^ x3 ^ k1, UInt32(truncatingIfNeeded: p0))
        }
        return (x0, x1, x2, x3)
    }

    /// Standard normals for rows `firstRow ..< firstRow + rows` of a noise matrix with `perRow`
    /// entries per row, row-major. Entry k (= row·perRow + column) comes from Philox block k / 4
    /// (counter = (k/4 low, k/4 high, 0, 0), key = (seed low, seed high)); lanes 2p and 2p+1 are the
    /// Box–Muller pair of outputs (2p, 2p+1): u = (x + 0.5)/2³², r = √(-2 ln u₁), θ = 2π u₂,
    /// cos for the even lane, sin for the odd one.
    public static func normals(seed: UInt64, firstRow: Int, rows: Int, perRow: Int) -> [Double] {
        let key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        let first = firstRow * perRow, count = rows * perRow
        return [Double](unsafeUninitializedCapacity: count) { out, initialized in
            // one Box–Muller pair (entries 2q and 2q + 1 of the stream) at a time; the ends of
            // the range may cut a pair or a block in half
            var pair = first / 2
            while 2 * pair < first + count {
                let block = pair / 2, c = UInt64(block)
                let r = Philox.block(counter: (UInt32(truncatingIfNeeded: c), UInt32(truncatingIfNeeded: c >> 32), 0, 0), key: key)
                let (a, b) = pair % 2 == 0 ? (r.0, r.1) : (r.2, r.3)
                let u1 = (Double(a) + 0.5) / 4_294_967_296.0, u2 = (Double(b) + 0.5) / 4_294_967_296.0
                let radius = (-2 * log(u1)).squareRoot(), angle = 2 * Double.pi * u2
                let even = 2 * pair, odd = even + 1
                if even >= first { out[even - first] = radius * cos(angle) }
                if odd < first + count { out[odd - first] = radius * sin(angle) }
                pair += 1
            }
            initialized = count
        }
    }
}
