import CLLVM
import FlowIR

/// Elementwise maps and strided copies: the loops of every op that moves or maps values one by one.
extension OpLowering {
    /// Sets every element of v to `value`.
    func fill(_ v: ValueID, with value: Double) throws {
        let address = f.address(v)
        let count = b.mul(g.type(of: v).batched ? f.batch : b.i64(1), b.i64(g.type(of: v).elementsPerSample))
        b.loop(count) { i in b.store(b.f32(value), address, i) }
    }

    /// Copies a strided view of `source` into `destination` (or into a sub-block of it shaped
    /// like `shapeOf`): element at index i of the iteration shape reads source at
    /// sourceBase + Σ i·sourceStrides (or the gather table along one axis) and writes
    /// destination at destinationBase + Σ i·destinationStrides.
    func copy(from source: ValueID, sourceStrides: [Int], sourceBase: Int = 0, to destination: ValueID,
              destinationBase: Int = 0, shapeOf: ValueID? = nil, gather: (axis: Int, indices: [Int])? = nil) throws {
        let iteration = shapeOf ?? destination
        let src = f.address(source), dst = f.address(destination)
        let dstStrides = strides(destination)
        var table: IRBuilder.Value?
        if let gather { table = b.constantIndexArray(gather.indices, name: "gather") }
        b.loops(f.extents(iteration)) { index in
            var s = sourceStrides
            var base = b.i64(sourceBase)
            if let gather, let table {
                s[gather.axis] = 0
                base = b.add(base, b.mul(b.loadIndex(table, index[gather.axis]), b.i64(sourceStrides[gather.axis])))
            }
            b.store(b.load(src, b.offset(index, s, base: base)), dst, b.offset(index, dstStrides, base: b.i64(destinationBase)))
        }
    }

}
