/// Elementwise unary, broadcasting binary, comparison and select ops.
enum ElementwiseOps {
    static let family = "Elementwise"

    /// (name, semantics, PyTorch equivalent)
    static let unaryTable: [(String, String, String)] = [
        ("neg", "-x", "torch.neg"),
        ("abs", "|x|", "torch.abs"),
        ("exp", "e^x", "torch.exp"),
        ("log", "ln x", "torch.log"),
        ("log1p", "ln(1 + x)", "torch.log1p"),
        ("expm1", "e^x - 1", "torch.expm1"),
        ("sqrt", "√x", "torch.sqrt"),
        ("rsqrt", "1/√x", "torch.rsqrt"),
        ("square", "x²", "torch.square"),
        ("tanh", "tanh x", "torch.tanh"),
        ("atanh", "artanh x", "torch.atanh"),
        ("sigmoid", "1/(1 + e^-x)", "torch.sigmoid"),
        ("logit", "ln(x/(1 - x))", "torch.logit"),
        ("softplus", "ln(1 + e^x), computed as max(x,0) + log1p(e^-|x|)", "F.softplus"),
        ("relu", "max(x, 0)", "F.relu"),
        ("gelu", "x·Φ(x) with the exact erf (not the tanh approximation)", "F.gelu"),
        ("silu", "x·sigmoid(x)", "F.silu"),
        ("erf", "error function", "torch.erf"),
        ("sin", "sin x", "torch.sin"),
        ("cos", "cos x", "torch.cos"),
    ]

    static let binaryTable: [(String, String, String)] = [
        ("add", "a + b", "torch.add / +"),
        ("sub", "a - b", "torch.sub / -"),
        ("mul", "a · b", "torch.mul / *"),
        ("div", "a / b", "torch.div / /"),
        ("pow", "a^b", "torch.pow"),
        ("max", "max(a, b)", "torch.maximum"),
        ("min", "min(a, b)", "torch.minimum"),
        ("lt", "1 if a < b else 0", "(a < b).float()"),
        ("le", "1 if a ≤ b else 0", "(a <= b).float()"),
        ("gt", "1 if a > b else 0", "(a > b).float()"),
        ("ge", "1 if a ≥ b else 0", "(a >= b).float()"),
        ("eq", "1 if a = b else 0", "(a == b).float()"),
        ("ne", "1 if a ≠ b else 0", "(a != b).float()"),
    ]

    static var definitions: [OpDefinition] {
        var defs: [OpDefinition] = unaryTable.map { name, meaning, torch in
            OpDefinition(name, family: family, operands: 1...1, summary: meaning, shapes: "same as x", pytorch: torch) { c in
                [c.operands[0]]
            }
        }
        defs.append(OpDefinition("leaky_relu", family: family, operands: 1...1,
                                 attributes: [AttributeSpec("slope", .float, default: .float(0.01))], positional: ["slope"],
                                 summary: "x if x ≥ 0 else slope·x", shapes: "same as x", pytorch: "F.leaky_relu(x, slope)") { c in
            [c.operands[0]]
        })
        defs += binaryTable.map { name, meaning, torch in
            OpDefinition(name, family: family, operands: 2...2, summary: meaning,
                         shapes: "NumPy broadcasting; B matches B or 1 and stays axis 0", pytorch: torch) { c in
                [try Broadcasting.result(c.operands, c)]
            }
        }
        defs.append(OpDefinition("select", family: family, operands: 3...3,
                                 summary: "a where cond ≠ 0 else b", shapes: "broadcast of cond, a, b",
                                 pytorch: "torch.where(cond != 0, a, b)") { c in
            [try Broadcasting.result(c.operands, c)]
        })
        return defs
    }
}
