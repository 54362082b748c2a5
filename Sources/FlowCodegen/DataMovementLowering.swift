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
    func copy(from source: ValueID, sourceStrides: [Int], sourceBase: IRBuilder.Value? = nil, to destination: ValueID,
              destinationBase: Int = 0, shapeOf: ValueID? = nil, gather: (axis: Int, indices: [Int])? = nil) throws {
        let iteration = shapeOf ?? destination
        let src = f.address(source), dst = f.address(destination)
        let dstStrides = strides(destination)
        var table: IRBuilder.Value?
        if let gather { table = b.constantIndexArray(gather.indices, name: "gather") }
        /// The source offset of `index` over the leading `count` axes (the gather axis through its table).
        func sourceOffset(_ index: [IRBuilder.Value], axes count: Int) -> IRBuilder.Value {
            var s = Array(sourceStrides[..<count])
            var base = sourceBase ?? b.i64(0)
            if let gather, let table {
                s[gather.axis] = 0
                base = b.add(base, b.mul(b.loadIndex(table, index[gather.axis]), b.i64(sourceStrides[gather.axis])))
            }
            return b.offset(index, s, base: base)
        }
        let extents = f.extents(iteration)
        let outer = contiguousSuffixStart(shape: staticShape(iteration), batched: g.type(of: iteration).batched,
                                          sourceStrides, dstStrides, except: gather?.axis)
        if outer < extents.count {
            // one memcpy per index of the outer axes: far less code to optimise than an element
            // loop, and LLVM expands the short constant-size ones inline
            let run = extents[outer...].dropFirst().reduce(extents[outer]) { b.mul($0, $1) }
            let bytes = b.mul(run, b.i64(MemoryLayout<Float>.size))
            b.loops(Array(extents[..<outer])) { index in
                let from = b.element(src, sourceOffset(index, axes: outer))
                let to = b.element(dst, b.offset(index, Array(dstStrides[..<outer]), base: b.i64(destinationBase)))
                LLVMBuildMemCpy(b.builder, to, 4, from, 4, bytes)
            }
            return
        }
        b.loops(extents) { index in
            b.store(b.load(src, sourceOffset(index, axes: extents.count)), dst, b.offset(index, dstStrides, base: b.i64(destinationBase)))
        }
    }

    /// concat(cache, new) along the first axis after the batch, per sample one block of memory
    /// each: the cache's t·inner values (t the kernel's extent argument, DecodingStepFolding, or
    /// the cache's static length), then the new tokens'. Each sample's row of the result is
    /// those floats, or, in a cache chain's buffer (CacheChains), `capacity` floats, of which the
    /// chain's first concat copies the cache and the others find it in place and write only the
    /// new tokens after it.
    func appendToCache(_ node: Node) throws {
        let (cache, new, out) = (node.operands[0], node.operands[1], node.results[0])
        let inner = g.type(of: new).dims.dropFirst().reduce(1, *), newLength = g.type(of: new).dims[0]
        let t = node.attributes[DecodingStepFolding.positionAttribute] != nil ? f.kernelExtent! : b.i64(g.type(of: cache).dims[0])
        let cacheFloats = b.mul(t, b.i64(inner)), newFloats = b.i64(newLength * inner)
        let chained = node.attributes[CacheChains.capacityAttribute] != nil
        let rowFloats = chained ? b.i64(int(node, CacheChains.capacityAttribute)) : b.add(cacheFloats, newFloats)
        let inPlace = node.attributes[CacheChains.inPlaceAttribute] != nil
        let (from, appended, to) = (f.address(cache), f.address(new), f.address(out))
        let floatSize = b.i64(MemoryLayout<Float>.size)
        b.loop(f.batch) { sample in
            let row = b.mul(sample, rowFloats)
            if !inPlace {
                LLVMBuildMemCpy(b.builder, b.element(to, row), 4, b.element(from, b.mul(sample, cacheFloats)), 4, b.mul(cacheFloats, floatSize))
            }
            LLVMBuildMemCpy(b.builder, b.element(to, b.add(row, cacheFloats)), 4, b.element(appended, b.mul(sample, newFloats)), 4,
                            b.mul(newFloats, floatSize))
        }
    }

    /// The first axis of the longest run of trailing axes over which both strides are C-order
    /// contiguous (so that part of the copy is one block of memory on each side); `shape.count`
    /// when not even the last axis is. Axes of extent 1 join the run whatever their stride; the
    /// batch axis (extent known at run time) can only close it; the gather axis never joins.
    func contiguousSuffixStart(shape: [Int], batched: Bool, _ source: [Int], _ destination: [Int], except gatherAxis: Int?) -> Int {
        var start = shape.count, block = 1
        while start > 0 {
            let axis = start - 1
            if axis == gatherAxis { break }
            if batched && axis == 0 {
                if source[0] == block && destination[0] == block { start = 0 }
                break
            }
            if shape[axis] != 1 {
                guard source[axis] == block, destination[axis] == block else { break }
                block *= shape[axis]
            }
            start = axis
        }
        return start
    }

}
