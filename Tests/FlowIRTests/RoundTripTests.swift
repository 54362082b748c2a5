import FlowIR
import FlowTestSupport
import XCTest

/// print(parse(text)) is a fixed point: the printed graph parses back to a graph that prints
/// identically, for every reference model (which exercise the whole standard library).
final class RoundTripTests: XCTestCase {
    func testPrintParseIsAFixedPointForEveryReferenceModel() throws {
        for key in ["a_nsf", "b_maf", "c_realnvp2", "c_realnvp64", "d_glow", "g_tarflow"] {
            let weights = Repository.fixture("\(key).safetensors")
            let model = try Elaborator.elaborate(path: Repository.referenceSpec(key), options: .init(weightsPath: weights))
            let printed = Printer.print(model)
            let reparsed = try Elaborator.elaborate(text: printed, path: "printed.flow", options: .init(weightsPath: weights))
            XCTAssertEqual(Printer.print(reparsed), printed, key)
            XCTAssertEqual(reparsed.flow.nodes.count, model.flow.nodes.count, key)
        }
        // a class-conditional velocity field keeps its kind line, classes included
        let conditional = try TestModels.ConditionalVelocity.model()
        let printed = Printer.print(conditional)
        XCTAssertTrue(printed.contains("  kind velocity(noise_at=0, classes=3)\n"), printed)
        let reparsed = try Elaborator.elaborate(text: printed, path: "printed.flow", options: .init(weightsPath: conditional.weightsPath))
        XCTAssertEqual(Printer.print(reparsed), printed)
        XCTAssertEqual(reparsed.classes, 3)
    }

    func testPrintedFormShowsTypesAndAttributes() throws {
        let model = try Elaborator.elaborate(text: """
        model m {
          input x: f32[B, 4]
          flow {
            y = leaky_relu(x * 2.0, 0.2)
            a, b = split(y, axis=1, sizes=[1, 3])
            return concat(b, a, axis=1)
          }
        }
        """, path: "m.flow")
        XCTAssertEqual(Printer.print(model), """
        model m {
          input x: f32[B, 4]
          base normal
          flow {
            v0: f32[] = const(values=[2.0])
            v1: f32[B, 4] = mul(x, v0)
            v2: f32[B, 4] = leaky_relu(v1, slope=0.2)
            v3, v4 = split(v2, axis=1, sizes=[1, 3])
            v5: f32[B, 4] = concat(v4, v3, axis=1)
            return v5
          }
        }

        """)
    }

    func testFloatAttributesRoundTripExactly() throws {
        let values = [0.1, 1e-30, -6.907755278982137, 3.0, 123456789.0]
        for v in values {
            XCTAssertEqual(Double(Attribute.format(v)), v)
            XCTAssertTrue(Attribute.format(v).contains(".") || Attribute.format(v).contains("e"), Attribute.format(v))
        }
    }
}
