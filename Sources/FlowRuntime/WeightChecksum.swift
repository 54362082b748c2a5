import Foundation

/// FNV-1a 64 of a whole weight file: the compiler records it for --external-weights, the
/// runtime checks it when the model is opened (one definition, shared by both).
public enum WeightChecksum {
    public static func fnv1a64(_ data: Data) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
        }
        return hash
    }
}
