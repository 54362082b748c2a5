import Foundation

/// Pictures of samples: a density plot for 2-D samples (log-scaled counts on a 256×256 grid, 512×512 pixels, over
/// the central 99.8% of each axis, with the axes through 0), an image grid for image samples
/// ([N, C, H, W] with C = 1 or 3, each image scaled from its own min…max, up to 8×8 images).
public enum SamplePlot {
    /// RGB bytes and size for samples of `shape` = [N, …]; nil when they are neither 2-D points nor images.
    public static func render(_ values: [Float], shape: [Int]) -> (width: Int, height: Int, rgb: [UInt8])? {
        if shape.count == 2 && shape[1] == 2 { return density(values, count: shape[0]) }
        if shape.count == 4 && (shape[1] == 1 || shape[1] == 3) { return grid(values, shape: shape) }
        return nil
    }

    static func density(_ values: [Float], count: Int, bins: Int = 256, pixels: Int = 2) -> (width: Int, height: Int, rgb: [UInt8]) {
        let size = bins
        func range(_ axis: Int) -> (Float, Float) {
            let sorted = stride(from: axis, to: values.count, by: 2).map { values[$0] }.filter(\.isFinite).sorted()
            guard let first = sorted.first else { return (-1, 1) }
            let low = sorted[Int(Double(sorted.count - 1) * 0.001)], high = sorted[Int(Double(sorted.count - 1) * 0.999)]
            let pad = max(1e-3, (high - low) * 0.05)
            return low < high ? (low - pad, high + pad) : (first - 1, first + 1)
        }
        let (xr, yr) = (range(0), range(1))
        var counts = [Int](repeating: 0, count: size * size)
        func column(_ x: Float) -> Int { Int((x - xr.0) / (xr.1 - xr.0) * Float(size - 1)) }
        func row(_ y: Float) -> Int { size - 1 - Int((y - yr.0) / (yr.1 - yr.0) * Float(size - 1)) }
        for i in 0..<count {
            let (x, y) = (values[2 * i], values[2 * i + 1])
            guard x.isFinite, y.isFinite else { continue }
            let (c, r) = (column(x), row(y))
            if (0..<size).contains(c) && (0..<size).contains(r) { counts[r * size + c] += 1 }
        }
        let peak = log(1 + Double(counts.max() ?? 1))
        var rgb = [UInt8](repeating: 255, count: size * size * 3)
        // axes through 0, light grey
        let zeroColumn = column(0), zeroRow = row(0)
        for k in 0..<size {
            for (r, c) in [(zeroRow, k), (k, zeroColumn)] where (0..<size).contains(r) && (0..<size).contains(c) {
                for ch in 0..<3 { rgb[(r * size + c) * 3 + ch] = 225 }
            }
        }
        for p in 0..<(size * size) where counts[p] > 0 {
            // white → dark blue with log density
            let t = 0.25 + 0.75 * log(1 + Double(counts[p])) / max(peak, 1e-9)
            rgb[p * 3] = UInt8(255 * (1 - t)); rgb[p * 3 + 1] = UInt8(255 * (1 - 0.8 * t)); rgb[p * 3 + 2] = UInt8(255 * (1 - 0.4 * t))
        }
        // each bin drawn as pixels × pixels
        let side = size * pixels
        var scaled = [UInt8](repeating: 0, count: side * side * 3)
        for y in 0..<side {
            for x in 0..<side {
                let from = ((y / pixels) * size + x / pixels) * 3
                for ch in 0..<3 { scaled[(y * side + x) * 3 + ch] = rgb[from + ch] }
            }
        }
        return (side, side, scaled)
    }

    static func grid(_ values: [Float], shape: [Int], columns: Int = 8, scale: Int = 4) -> (width: Int, height: Int, rgb: [UInt8]) {
        let (n, c, h, w) = (min(shape[0], columns * columns), shape[1], shape[2], shape[3])
        let cols = min(columns, n), rows = (n + cols - 1) / cols
        let cell = (h * scale + 2, w * scale + 2)   // 1-pixel white border around each image
        let (width, height) = (cols * cell.1, rows * cell.0)
        var rgb = [UInt8](repeating: 255, count: width * height * 3)
        let perImage = c * h * w
        for i in 0..<n {
            let image = values[(i * perImage)..<((i + 1) * perImage)].filter(\.isFinite)
            let low = image.min() ?? 0, high = image.max() ?? 1
            let span = high > low ? high - low : 1
            let (top, left) = ((i / cols) * cell.0 + 1, (i % cols) * cell.1 + 1)
            for y in 0..<(h * scale) {
                for x in 0..<(w * scale) {
                    let p = (top + y) * width + left + x
                    for ch in 0..<3 {
                        let v = values[i * perImage + (c == 3 ? ch : 0) * h * w + (y / scale) * w + x / scale]
                        rgb[p * 3 + ch] = v.isFinite ? UInt8(max(0, min(255, (v - low) / span * 255))) : 0
                    }
                }
            }
        }
        return (width, height, rgb)
    }

    /// An error writing a picture: what and where.
    public struct PictureError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Writes the picture of the samples; returns what it shows.
    public static func write(_ values: [Float], shape: [Int], to path: String) throws -> String {
        guard let (width, height, rgb) = render(values, shape: shape) else {
            throw PictureError(message: "\(path): a picture is drawn of 2-D points [N, 2] or images [N, 1 or 3, H, W]; these samples have shape \(shape)")
        }
        do { try PNGWriter.encode(width: width, height: height, rgb: rgb).write(to: URL(fileURLWithPath: path)) } catch {
            throw PictureError(message: "\(path): cannot write: \(error.localizedDescription)")
        }
        return shape.count == 2 ? "density of \(shape[0]) points, \(width)×\(height)" : "grid of \(min(shape[0], 64)) images, \(width)×\(height)"
    }
}
