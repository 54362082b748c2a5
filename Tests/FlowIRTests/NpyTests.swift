import FlowIR
import FlowTestSupport
import Foundation
import XCTest

final class NpyTests: XCTestCase {
    func testWriteThenReadRoundTripsBothPrecisions() throws {
        for f64 in [false, true] {
            let path = TestFiles.path("npy-\(f64).npy")
            let a = NpyArray(shape: [2, 3], values: [0, 1.5, -2, 3, 4, 1e-3], isF64: f64)
            try a.write(path: path)
            let b = try NpyArray.read(path: path)
            XCTAssertEqual(b.shape, [2, 3])
            XCTAssertEqual(b.isF64, f64)
            XCTAssertEqual(b.values, f64 ? a.values : a.values.map { Double(Float($0)) })
            // numpy's own reader requires the header to end at a 64-byte boundary
            XCTAssertEqual((try Data(contentsOf: URL(fileURLWithPath: path)).count - 6 * (f64 ? 8 : 4)) % 64, 0)
        }
    }

    /// The f32 path of model inputs and outputs: '<f4' written and read back bit for bit, '<f8'
    /// rounded to the nearest f32 (as `Float(Double)`), and a value no f32 can hold an error that
    /// names its flat index and byte offset.
    func testFloat32ReadAndWrite() throws {
        let path = TestFiles.path("npy-f32.npy")
        let values: [Float] = [0, 1.5, -2, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-3]
        try NpyArray.writeFloat32(values, shape: [3, 2], path: path)
        let read = try NpyArray.readFloat32(path: path)
        XCTAssertEqual(read.shape, [3, 2])
        XCTAssertEqual(read.values.map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try NpyArray.read(path: path).values, values.map(Double.init), "the general reader sees the same file")
        let wide = [0.1, -1e-40, 3.4e38, 2.0 / 3]
        try NpyArray(shape: [4], values: wide, isF64: true).write(path: path)
        XCTAssertEqual(try NpyArray.readFloat32(path: path).values, wide.map { Float($0) })
        try NpyArray(shape: [4], values: [1, 2, 3.5e38, 4], isF64: true).write(path: path)
        XCTAssertThrowsError(try NpyArray.readFloat32(path: path)) { error in
            XCTAssertEqual("\(error)", "\(path) (byte 144): error: value 3.5e+38 at flat index 2 is not a finite f32")
        }
    }

    func npy(_ header: String, _ payload: [UInt8], version: UInt8 = 1) -> Data {
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0])
        if version == 1 {
            d.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        } else {
            d.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8), 0, 0])
        }
        d.append(header.data(using: .utf8)!)
        d.append(contentsOf: payload)
        return d
    }

    func testReadsVersion2AndScalars() throws {
        let one: [UInt8] = [0, 0, 0x80, 0x3F]
        let a = try NpyArray.parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", one, version: 2), path: "m")
        XCTAssertEqual(a.values, [1])
        let s = try NpyArray.parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", one), path: "m")
        XCTAssertEqual(s.shape, [])
    }

    func testMalformedFilesGiveClearErrors() {
        let four = [UInt8](repeating: 0, count: 4)
        let cases: [(String, Data, String)] = [
            ("not npy", Data("hello world".utf8), "not a .npy file"),
            ("big endian", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", four), "element type >f4 is not supported"),
            ("int", npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", four + four), "element type <i8"),
            ("fortran", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", four), "Fortran-order"),
            ("truncated", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", four), "needs 16 data bytes but the file has 4"),
            ("header past end", Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 0xFF, 0x7F]), "runs past the end"),
            ("version", npy("{}", [], version: 9), "unsupported .npy version 9"),
            ("no shape", npy("{'descr': '<f4', 'fortran_order': False}", four), "header has no 'shape'"),
        ]
        for (name, data, expected) in cases {
            XCTAssertThrowsError(try NpyArray.parse(data, path: "x.npy"), name) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(name): \(error)")
                XCTAssertTrue("\(error)".contains("x.npy (byte "), "\(name): \(error)")
            }
        }
    }
}
