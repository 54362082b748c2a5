import Foundation

/// Multi-head scaled dot-product attention, directly from its definition (two passes per query:
/// scores with their maximum, then the normalised weighted sum), in f64.
enum AttentionKernel {
    /// q: [B, T, C], k, v: [B, S, C] (T ≤ S; query t is position t + S − T); per head m the
    /// channels m·d ..< (m+1)·d with d = C/heads.
    static func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int, causal: Bool, temperature: Double = 1) -> Tensor {
        let (batch, tokens, channels) = (q.shape[0], q.shape[1], q.shape[2])
        let keys = k.shape[1], offset = keys - tokens
        let d = channels / heads
        let scale = 1 / (Double(d).squareRoot() * temperature)
        var out = [Double](repeating: 0, count: q.count)
        var scores = [Double](repeating: 0, count: keys)
        for b in 0..<batch {
            let base = b * tokens * channels, keyBase = b * keys * channels
            for m in 0..<heads {
                let h = m * d
                for t in 0..<tokens {
                    let visible = causal ? t + offset + 1 : keys
                    var largest = -Double.infinity
                    for s in 0..<visible {
                        var dot = 0.0
                        for j in 0..<d { dot += q.values[base + t * channels + h + j] * k.values[keyBase + s * channels + h + j] }
                        scores[s] = dot * scale
                        largest = max(largest, scores[s])
                    }
                    var total = 0.0
                    for s in 0..<visible { scores[s] = exp(scores[s] - largest); total += scores[s] }
                    for s in 0..<visible {
                        let p = scores[s] / total
                        for j in 0..<d { out[base + t * channels + h + j] += p * v.values[keyBase + s * channels + h + j] }
                    }
                }
            }
        }
        return Tensor(shape: q.shape, values: out)
    }
}
