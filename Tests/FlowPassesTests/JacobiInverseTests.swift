import FlowIR
import FlowInterpreter
import FlowPasses
import FlowTestSupport
import XCTest

/// The two inverses of autoregressive blocks: sequential (the fixed-point iteration unrolled
/// for the full dependency chain, exact) and Jacobi (the same iteration as a loop that stops
/// when nothing moves by more than 1e-6·(1 + |u|)). They agree within 1e-5 (+1e-5·|x|) in f32.
final class JacobiInverseTests: XCTestCase {
    func testJacobiAgreesWithSequentialAndStopsEarly() throws {
        var report: [String] = []
        for key in ["b_maf", "a_nsf"] {
            let fixture = try ReferenceFixture(key)
            var model = try fixture.model()
            let store = try WeightStore(path: model.weightsPath!)
            let sequential = try Interpreter(graph: try EntryPoints.graph(.inverse, of: model), weights: store, precision: .f32)
            model.causalInverse = .jacobi(tolerance: 1e-6)
            let jacobiGraph = try EntryPoints.graph(.inverse, of: model)
            XCTAssertEqual(jacobiGraph.nodes.filter { $0.op == "fixed_point" }.count, 3, key)   // one loop per transform
            var jacobi = try Interpreter(graph: jacobiGraph, weights: store, precision: .f32)
            let statistics = RunStatistics()
            jacobi.statistics = statistics
            for input in ["noise", "z"] {
                let a = try sequential.run([try fixture.tensor(input)])
                let b = try jacobi.run([try fixture.tensor(input)])
                for (x, y) in zip(a, b) {
                    let c = Closeness.compare(y.values, x.values, atol: 1e-5, rtol: 1e-5)
                    XCTAssertTrue(c.passes, "\(key) \(input): \(c)")
                }
                let c = Closeness.compare(b[0].values, try fixture.tensor(input == "noise" ? "sample" : "x").values, atol: 1e-4, rtol: 1e-4)
                XCTAssertTrue(c.passes, "\(key) \(input) vs fixture: \(c)")
            }
            // each loop runs at most D - 1 = 7 sweeps (plus the final one outside the loop)
            XCTAssertTrue(statistics.sweeps.allSatisfy { $0 <= 7 }, "\(statistics.sweeps)")
            report.append("\(key): Jacobi sweeps per transform (noise, then z) \(statistics.sweeps.map { $0 + 1 }) of at most 8")
        }
        print(report.joined(separator: "\n"))
    }

    func testInverseModeIsDeclaredInTheSpecAndPrinted() throws {
        let text = """
        model m {
          input x: f32[B, 4]
          inverse jacobi(tolerance=0.0001)
          flow {
            return x * exp(linear(x, tril(const([0.5], shape=[4, 4]), -1)))
          }
        }
        """
        let model = try Elaborator.elaborate(text: text, path: "m.flow")
        XCTAssertEqual(model.causalInverse, .jacobi(tolerance: 1e-4))
        var inverse = model
        inverse.flow = try EntryPoints.graph(.inverse, of: model)
        let printed = Printer.print(inverse)
        XCTAssertTrue(printed.contains("inverse jacobi(tolerance=0.0001)"), printed)
        XCTAssertTrue(printed.contains("fixed_point("), printed)
        XCTAssertTrue(printed.contains("  body 0(u: f32[B, 4]"), printed)
        // the printed loop and its body parse back to the same text
        XCTAssertEqual(Printer.print(try Elaborator.elaborate(text: printed, path: "m.flow")), printed)
        // and compute the inverse: x = (1, -2, 0.5, 3) round trip in f64 within 1e-4·(1+|x|) (the loop's tolerance)
        let x = Tensor(shape: [1, 4], values: [1, -2, 0.5, 3])
        let z = try Interpreter(graph: model.flow, weights: nil, precision: .f64).run([x])[0]
        let back = try Interpreter(graph: inverse.flow, weights: nil, precision: .f64).run([z])[0]
        XCTAssertTrue(Closeness.compare(back.values, x.values, atol: 1e-4, rtol: 1e-4).passes, "\(back.values)")
    }
}
