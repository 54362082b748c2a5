import CFlowcABI
import FlowSolvers

/// A compiled model's `flowc_field` entry point as a vector field for the solvers, with its own
/// workspace (one per thread).
final class CompiledField: VectorField {
    let model: CompiledModel
    let layout: FieldLayout
    private let workspace: UnsafeMutableRawPointer
    private let capacity: Int

    /// A field for batches of at most `rows` rows.
    init(model: CompiledModel, layout: FieldLayout, rows: Int) {
        self.model = model
        self.layout = layout
        capacity = rows
        workspace = UnsafeMutableRawPointer.allocate(byteCount: max(64, Int(model.workspaceSize(FLOWC_ENTRY_FIELD, Int64(rows)))), alignment: 64)
    }

    deinit { workspace.deallocate() }

    func evaluate(_ input: UnsafeBufferPointer<Float>, rows: Int, into output: UnsafeMutableBufferPointer<Float>) throws {
        precondition(rows <= capacity && input.count >= rows * layout.width && output.count >= rows * layout.stateWidth, "field buffers sized by FieldEvaluator")
        let code = model.fieldEntry(input.baseAddress, output.baseAddress, Int64(rows), workspace, model.table)
        guard code == FLOWC_OK else { throw RuntimeError(message: "\(model.metadata.name): field: \(CompiledModel.describe(code))") }
    }
}
