import FlowIR
import FlowPasses
import FlowTestSupport
import XCTest

/// Derived graphs print in the IR text form, and the parser reads them back to the same text
/// (what `flowc inspect` shows is a spec `flowc check` accepts).
final class DerivedGraphTextTests: XCTestCase {
    func testDerivedGraphsRoundTripThroughText() throws {
        for key in ["a_nsf", "c_realnvp2", "d_glow"] {
            let model = try ReferenceFixture(key).model()
            for entry in EntryPoints.entries(of: model) where entry != .score || key == "c_realnvp2" {   // the spline has no gradient rule
                var derived = model
                derived.flow = try EntryPoints.graph(entry, of: model)
                let text = Printer.print(derived)
                let reparsed = try Elaborator.elaborate(text: text, path: "derived.flow", options: .init(weightsPath: model.weightsPath))
                XCTAssertEqual(Printer.print(reparsed), text, "\(key) \(entry)")
            }
        }
    }
}
