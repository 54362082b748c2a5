/// The vector registers the GEMM microkernel's tiles are planned for (`OpLowering.tileWidth`,
/// `accumulatorSets`, `tallestTile`; `TargetEmitter.registerFile` tells which): a tile's
/// accumulators, its weight vectors and the broadcast must fit, or LLVM spills the accumulators
/// to the stack on every FMA (measured on a Zen 3 core with the AVX-512 tiles: e_fm's batch-256
/// sample at 35 GFLOP/s, a fifth of the FMA peak).
enum RegisterFile: Sendable {
    /// AVX-512: 32 zmm registers of 16 lanes.
    case zmm32
    /// AVX2: 16 ymm registers of 8 lanes; a 16-lane vector takes two.
    case ymm16
}
