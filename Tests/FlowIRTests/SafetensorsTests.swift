import FlowIR
import FlowTestSupport
import Foundation
import XCTest

final class SafetensorsTests: XCTestCase {
    /// Builds a file from a header (as JSON text) and a data section.
    func file(_ header: String, _ data: [UInt8], declaredLength: UInt64? = nil) -> Data {
        var out = Data()
        var n = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(header.data(using: .utf8)!)
        out.append(contentsOf: data)
        return out
    }

    func testWriteThenReadRoundTrips() throws {
        let path = TestFiles.path("safetensors-roundtrip.safetensors")
        try SafetensorsFile.write([(name: "a", shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5]), (name: "b", shape: [], values: [0.25])],
                                  metadata: ["k": "v"], to: path)
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(f.names, ["a", "b"])
        XCTAssertEqual(f.tensors["a"]?.shape, [2, 3])
        XCTAssertEqual(try f.values("a"), [1, 2, 3, 4, 5, -6.5])
        XCTAssertEqual(try f.values("b"), [0.25])
        XCTAssertEqual(f.metadata, ["k": "v"])
    }

    func testDecodesEveryReadableDtype() throws {
        // Values chosen with exact encodings: f16 0x3C00 = 1, 0xC000 = -2, 0x0001 = 2^-24 (subnormal);
        // bf16 0x3F80 = 1, 0x4049 = 3.140625; i64 -3; bool 1, 0.
        let data: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00,           // F16 ×3
                             0x80, 0x3F, 0x49, 0x40,                         // BF16 ×2
                             0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // I64 −3
                             0x01, 0x00]                                     // BOOL ×2
        let header = """
        {"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]},\
        "i":{"dtype":"I64","shape":[1],"data_offsets":[10,18]},"m":{"dtype":"BOOL","shape":[2],"data_offsets":[18,20]}}
        """
        let f = try SafetensorsFile(data: file(header, data), path: "mem")
        XCTAssertEqual(try f.values("h"), [1, -2, 0x1p-24])
        XCTAssertEqual(try f.values("b"), [1, 3.140625])
        XCTAssertEqual(try f.values("i"), [-3])
        XCTAssertEqual(try f.values("m"), [1, 0])
    }

    /// Every malformed file is rejected with a message naming the problem and a byte offset.
    func testMalformedFilesGiveClearErrors() {
        let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let cases: [(String, Data, String)] = [
            ("too short", Data([1, 2, 3]), "a safetensors file starts with an 8-byte header length"),
            ("oversized header length", file(good, [UInt8](repeating: 0, count: 8), declaredLength: 1 << 40), "exceeds the limit"),
            ("header past end", file(good, [], declaredLength: 5000), "runs past the end of the file"),
            ("not JSON", file("{nope", []), "the header is not a JSON object"),
            ("truncated data", file(good, [0, 0, 0]), "outside the data section of 3 bytes"),
            ("unknown dtype", file(#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "dtype C64"),
            ("size mismatch", file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "needs 12 bytes but data_offsets span 8"),
            ("overlap", file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, [UInt8](repeating: 0, count: 8)), "overlaps"),
            ("gap", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, [UInt8](repeating: 0, count: 8)), "gap in the data section"),
            ("negative shape", file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, []), "shape must be a list of non-negative integers"),
            ("bad offsets", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, [UInt8](repeating: 0, count: 8)), "data_offsets [8, 4]"),
            ("trailing bytes", file(good, [UInt8](repeating: 0, count: 12)), "data section is 12 bytes but the tensors cover 8"),
        ]
        for (name, data, expected) in cases {
            XCTAssertThrowsError(try SafetensorsFile(data: data, path: "bad.safetensors"), name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(expected), "\(name): \(text)")
                XCTAssertTrue(text.contains("bad.safetensors (byte "), "\(name): \(text)")
            }
        }
    }
}
