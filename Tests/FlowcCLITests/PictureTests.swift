import FlowIR
import FlowPictures
import FlowTestSupport
import Foundation
import XCTest

/// The PNG writer against the standards' check values and a decoder written here from the PNG
/// and zlib specifications; the density plot and image grid on inputs whose pictures are known.
final class PictureTests: XCTestCase {
    func testChecksumsMatchTheStandardCheckValues() {
        // CRC-32 of "123456789" is 0xCBF43926 (ISO 3309 check value); Adler-32 of "Wikipedia" is 0x11E60398 (RFC 1950 example)
        XCTAssertEqual(PNGWriter.crc32(Data("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(PNGWriter.adler32(Data("Wikipedia".utf8)), 0x11E6_0398)
    }

    /// Parses a PNG made of stored deflate blocks: chunk CRCs, the zlib header and Adler-32, the
    /// filter bytes; returns width, height and RGB bytes.
    func decode(_ png: Data) throws -> (Int, Int, [UInt8]) {
        let bytes = [UInt8](png)
        XCTAssertEqual(Array(bytes[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func u32(_ i: Int) -> Int { bytes[i..<(i + 4)].reduce(0) { $0 << 8 | Int($1) } }
        var i = 8, width = 0, height = 0
        var idat: [UInt8] = []
        var types: [String] = []
        while i < bytes.count {
            let length = u32(i)
            let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
            types.append(type)
            XCTAssertEqual(UInt32(u32(i + 8 + length)), PNGWriter.crc32(Data(bytes[(i + 4)..<(i + 8 + length)])), "\(type) CRC")
            if type == "IHDR" { (width, height) = (u32(i + 8), u32(i + 12)); XCTAssertEqual(Array(bytes[(i + 16)..<(i + 21)]), [8, 2, 0, 0, 0]) }
            if type == "IDAT" { idat += bytes[(i + 8)..<(i + 8 + length)] }
            i += 12 + length
        }
        XCTAssertEqual(types, ["IHDR", "IDAT", "IEND"])
        XCTAssertEqual((Int(idat[0]) << 8 | Int(idat[1])) % 31, 0, "zlib header check bits")
        var raw: [UInt8] = []
        var p = 2
        while true {
            let final = idat[p] & 1 == 1
            XCTAssertEqual(idat[p] >> 1, 0, "stored block")
            let length = Int(idat[p + 1]) | Int(idat[p + 2]) << 8
            XCTAssertEqual(length ^ 0xFFFF, Int(idat[p + 3]) | Int(idat[p + 4]) << 8)
            raw += idat[(p + 5)..<(p + 5 + length)]
            p += 5 + length
            if final { break }
        }
        let stored = idat[p..<(p + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        XCTAssertEqual(stored, PNGWriter.adler32(Data(raw)))
        XCTAssertEqual(raw.count, height * (1 + 3 * width))
        var rgb: [UInt8] = []
        let stride = 1 + 3 * width
        for row in 0..<height {
            let start: Int = row * stride
            XCTAssertEqual(raw[start], 0, "filter type 0")
            rgb.append(contentsOf: raw[(start + 1)..<(start + stride)])
        }
        return (width, height, rgb)
    }

    func testEncodedImageDecodesBack() throws {
        // 300×300 makes more than one stored block (65535 bytes each)
        let (w, h) = (300, 300)
        let rgb = (0..<(w * h * 3)).map { UInt8($0 % 251) }
        let (dw, dh, back) = try decode(PNGWriter.encode(width: w, height: h, rgb: rgb))
        XCTAssertEqual(dw, w)
        XCTAssertEqual(dh, h)
        XCTAssertEqual(back, rgb)
    }

    /// Two clusters at (−1, 0) and (1, 0): the plot is dark there and white half-way between
    /// them, above and below; an image grid puts each image's minimum at 0 and maximum at 255.
    func testDensityPlotAndImageGrid() throws {
        let points = (0..<2000).flatMap { i -> [Float] in [i % 2 == 0 ? -1 : 1, Float(i % 7) * 1e-3] }
        let (w, h, rgb) = SamplePlot.render(points, shape: [1000, 2])!
        /// the pixel at x on the middle row (the x range is the points' padded by 5%)
        func pixel(_ x: Float) -> UInt8 { rgb[((h / 2) * w + Int((x + 1.1) / 2.2 * Float(w - 1))) * 3] }
        XCTAssertLessThan(pixel(-1), 200, "a cluster is drawn")
        XCTAssertLessThan(pixel(1), 200)
        XCTAssertEqual(rgb[(5 * w + w / 4) * 3], 255, "far from the points the plot is white")
        let images: [Float] = [0, 1, 2, 3, 10, 10, 10, 20]   // two 1×2×2 images
        let (gw, gh, grid) = SamplePlot.render(images, shape: [2, 1, 2, 2])!
        XCTAssertEqual(gh, 2 * 4 + 2)
        XCTAssertEqual(gw, 2 * (2 * 4 + 2))
        XCTAssertEqual(grid[(1 * gw + 1) * 3], 0, "image 0's minimum is black")
        XCTAssertEqual(grid[((1 + 4) * gw + 1 + 4) * 3], 255, "image 0's maximum is white")
        XCTAssertNil(SamplePlot.render([0, 0, 0], shape: [1, 3]), "3-D points have no picture")
    }

    func testSampleCommandWritesAPicture() throws {
        let dir = TestFiles.path("png")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try ProcessResult.run(Repository.flowc, ["run", Repository.path("examples/default/realnvp2.flow"), "--entry", "sample", "-n", "500", "--seed", "1",
                                                         "--output", "\(dir)/s.npy", "--png", "\(dir)/s.png"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let (w, h, _) = try decode(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/s.png")))
        XCTAssertEqual([w, h], [512, 512])
        XCTAssertTrue(r.stdout.contains("density of 500 points"), r.stdout)
    }
}
