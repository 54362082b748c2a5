import CBLAS
import Foundation

/// Matrix products through OpenBLAS (sgemm in f32 runs, dgemm in f64), convolution by loops.
enum LinearAlgebraKernels {
    /// C[M×N] = A[M×K] · op(B), with B stored [K×N] or, when `transposeB`, [N×K].
    static func gemm(_ a: ArraySlice<Double>, _ b: ArraySlice<Double>, m: Int, k: Int, n: Int, transposeB: Bool, precision: Precision) -> [Double] {
        let ldb = transposeB ? k : n
        let tb = transposeB ? CblasTrans : CblasNoTrans
        switch precision {
        case .f64:
            var c = [Double](repeating: 0, count: m * n)
            let aa = Array(a), bb = Array(b)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, tb, Int32(m), Int32(n), Int32(k), 1, aa, Int32(k), bb, Int32(ldb), 0, &c, Int32(n))
            return c
        case .f32:
            var c = [Float](repeating: 0, count: m * n)
            let aa = a.map { Float($0) }, bb = b.map { Float($0) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, Int32(m), Int32(n), Int32(k), 1, aa, Int32(k), bb, Int32(ldb), 0, &c, Int32(n))
            return c.map(Double.init)
        }
    }

    /// x[..., K] · Wᵀ + b with W [N, K].
    static func linear(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, precision: Precision) -> Tensor {
        let k = w.shape[1], n = w.shape[0]
        let rows = x.count / k
        var out = gemm(x.values[...], w.values[...], m: rows, k: k, n: n, transposeB: true, precision: precision)
        if let bias {
            for r in 0..<rows { for j in 0..<n { out[r * n + j] += bias.values[j] } }
        }
        return Tensor(shape: Array(x.shape.dropLast()) + [n], values: out)
    }

    static func matmul(_ a: Tensor, _ b: Tensor, precision: Precision) -> Tensor {
        let m = a.shape[a.shape.count - 2], k = a.shape.last!, n = b.shape.last!
        let leadA = Array(a.shape.dropLast(2)), leadB = Array(b.shape.dropLast(2))
        let lead = Layout.broadcastShape([leadA, leadB])
        let ia = Layout.broadcastIndices(from: leadA, to: lead), ib = Layout.broadcastIndices(from: leadB, to: lead)
        var out: [Double] = []
        out.reserveCapacity(lead.reduce(1, *) * m * n)
        for i in 0..<ia.count {
            let sa = ia[i] * m * k, sb = ib[i] * k * n
            out += gemm(a.values[sa..<(sa + m * k)], b.values[sb..<(sb + k * n)], m: m, k: k, n: n, transposeB: false, precision: precision)
        }
        return Tensor(shape: lead + [m, n], values: out)
    }

    /// NCHW cross-correlation with zero padding (PyTorch's conv2d).
    static func conv2d(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, stride: Int, padding: Int) -> Tensor {
        let (batch, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (wd + 2 * padding - kw) / stride + 1
        var out = [Double](repeating: 0, count: batch * o * oh * ow)
        for b in 0..<batch {
            for oc in 0..<o {
                let base = (b * o + oc) * oh * ow
                for i in 0..<oh {
                    for j in 0..<ow {
                        var acc = bias?.values[oc] ?? 0
                        for ic in 0..<c {
                            for u in 0..<kh {
                                let y = i * stride + u - padding
                                guard y >= 0 && y < h else { continue }
                                for v in 0..<kw {
                                    let xcol = j * stride + v - padding
                                    guard xcol >= 0 && xcol < wd else { continue }
                                    acc += w.values[((oc * c + ic) * kh + u) * kw + v] * x.values[((b * c + ic) * h + y) * wd + xcol]
                                }
                            }
                        }
                        out[base + i * ow + j] = acc
                    }
                }
            }
        }
        return Tensor(shape: [batch, o, oh, ow], values: out)
    }

    /// Keeps entries with (col - row) ≤ k (lower) or ≥ k (upper) in the last two axes.
    static func triangle(_ x: Tensor, k: Int, lower: Bool) -> Tensor {
        let rows = x.shape[x.shape.count - 2], cols = x.shape.last!
        var out = x.values
        for flat in 0..<x.count {
            let j = flat % cols, i = (flat / cols) % rows
            let keep = lower ? (j - i <= k) : (j - i >= k)
            if !keep { out[flat] = 0 }
        }
        return Tensor(shape: x.shape, values: out)
    }

    /// ln |det A| by Gaussian elimination with partial pivoting in f64; -inf for a singular matrix.
    static func logAbsDeterminant(_ a: Tensor) -> Double {
        let n = a.shape[0]
        var m = a.values
        var total = 0.0
        for col in 0..<n {
            var pivot = col
            for r in col..<n where abs(m[r * n + col]) > abs(m[pivot * n + col]) { pivot = r }
            let p = m[pivot * n + col]
            if p == 0 { return -.infinity }
            if pivot != col { for j in 0..<n { m.swapAt(col * n + j, pivot * n + j) } }
            total += log(abs(p))
            for r in (col + 1)..<n {
                let f = m[r * n + col] / p
                if f != 0 { for j in col..<n { m[r * n + j] -= f * m[col * n + j] } }
            }
        }
        return total
    }

    /// A⁻¹ by Gauss–Jordan elimination with partial pivoting in f64; nil if A is singular.
    static func inverse(_ a: Tensor) -> Tensor? {
        let n = a.shape[0]
        var m = a.values
        var inv = [Double](repeating: 0, count: n * n)
        for i in 0..<n { inv[i * n + i] = 1 }
        for col in 0..<n {
            var pivot = col
            for r in col..<n where abs(m[r * n + col]) > abs(m[pivot * n + col]) { pivot = r }
            let p = m[pivot * n + col]
            if p == 0 || !p.isFinite { return nil }
            if pivot != col {
                for j in 0..<n { m.swapAt(col * n + j, pivot * n + j); inv.swapAt(col * n + j, pivot * n + j) }
            }
            for j in 0..<n { m[col * n + j] /= p; inv[col * n + j] /= p }
            for r in 0..<n where r != col {
                let f = m[r * n + col]
                if f == 0 { continue }
                for j in 0..<n { m[r * n + j] -= f * m[col * n + j]; inv[r * n + j] -= f * inv[col * n + j] }
            }
        }
        return Tensor(shape: a.shape, values: inv)
    }
}

/// Matrix functions the compiler uses at compile time on constant matrices.
public enum MatrixMath {
    /// ln |det A| of a square matrix in f64; -inf when A is singular.
    public static func logAbsDeterminant(_ a: Tensor) -> Double { LinearAlgebraKernels.logAbsDeterminant(a) }
}
