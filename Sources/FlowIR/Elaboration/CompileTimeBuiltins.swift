import Foundation

/// Functions evaluated while elaborating, on compile-time values only. They let one spec serve
/// every size of an architecture: sizes read off the weight file, index lists read off masks.
enum CompileTimeBuiltins {
    static let names: [String: String] = [
        "dim": "dim(\"weight\", axis): static size of a weight's axis",
        "size": "size(tensor, axis): static size of a tensor's axis",
        "count_indexed": "count_indexed(\"a.{}.b\"): how many of a.0.b, a.1.b, ... exist in the weight file",
        "has_weight": "has_weight(\"name\"): whether the weight file has the tensor",
        "nonzero": "nonzero(\"weight\"): indices of a 1-D weight's nonzero entries (e.g. a bool mask)",
        "zero_indices": "zero_indices(\"weight\"): indices of a 1-D weight's zero entries",
        "inverse_perm": "inverse_perm(list): the permutation p⁻¹ with p⁻¹[p[i]] = i",
        "reversed": "reversed(list)",
        "range": "range(n): [0, 1, ..., n-1]",
        "len": "len(list)",
        "int": "int(x): truncates a number",
        "float": "float(x)",
        "error": "error(\"message\"): stops elaboration with this message at the call site",
    ]

    /// Scalar math folded at compile time when the argument is a number (`log(1e-3)`).
    static let math: [String: @Sendable (Double) -> Double] = [
        "log": { Foundation.log($0) }, "exp": { Foundation.exp($0) }, "sqrt": { $0.squareRoot() },
        "sin": { Foundation.sin($0) }, "cos": { Foundation.cos($0) }, "tanh": { Foundation.tanh($0) },
        "abs": { Swift.abs($0) }, "log1p": { Foundation.log1p($0) }, "expm1": { Foundation.expm1($0) },
        "neg": { -$0 },
    ]
}
