"""The coefficients of PolynomialMath.gelu (Sources/FlowCodegen/PolynomialMath.swift), and the
measured error of GELU in f32 with fused multiply-adds.

  python3 Tests/Fixtures/oracles/gelu_coefficients.py      (numpy)

gelu(x) = x/2 * (1 + erf(x/sqrt 2)) = h + h * E(x), h = x/2, E(x) = erf(x/sqrt 2). GELU's error is
measured against max(1, |x|) (PolynomialMathTests, bound 3e-7: PyTorch's own f32 GELU cancels in
1 + erf for x < 0 alike), so E needs an absolute error only, and one polynomial serves all |x|:
E(x) = sign(x) * G(s), s = min(|x|, X) * (2/X) - 1 in [-1, 1], X = 3.92 * sqrt 2 (erf(x/sqrt 2)
rounds to 1 in f32 beyond), G of degree 15, the Chebyshev least-squares fit of erf(|x|/sqrt 2)
on 4000 Chebyshev nodes of [0, X], written in powers of s, with two more points of weight 100:
G = 1 at the s that |x| >= X gives in f32 (1 + 2^-23, as 2/X rounds), so that gelu(x) is x
exactly there and 0 for x <= -X (G(1) of the plain fit is 1 + 2^-23, and gelu(-100) came out
+6e-6), and G = 0 at s = -1 (x = 0); then the constant term moved by the fewest ulps that make
G exactly 1 at the clamp as the compiled code evaluates it (Estrin's tree: PolynomialMath.estrin).
Prints the coefficients (highest power first, as the Swift code takes them), G at both ends,
and the worst |error| / max(1, |x|) over [-9, 9] and small |x|, evaluating in f32 with each
multiply-add rounded once.
"""
import math

import numpy as np
from numpy.polynomial import chebyshev

from f32_arithmetic import estrin, fma

DEGREE = 15
END = 3.92 * math.sqrt(2)
NODES = 4000
ENDS_WEIGHT = 100


def coefficients():
    t = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES)
    x = (t + 1) * END / 2
    ends = [float(clamped_s()), -1.0]
    c = chebyshev.chebfit(np.concatenate([t, ends]), np.concatenate([[math.erf(v / math.sqrt(2)) for v in x], [1.0, 0.0]]),
                          DEGREE, w=np.concatenate([np.ones(NODES), [ENDS_WEIGHT, ENDS_WEIGHT]]))
    g = [np.float32(v) for v in chebyshev.cheb2poly(c)[::-1]]
    # the constant term moved by the fewest ulps that make G exactly 1 at the clamp as the
    # compiled code evaluates it (the fit's rounded coefficients give 1 - 2^-24 there)
    for step in sorted(range(-8, 9), key=abs):
        candidate = g[:-1] + [np.float32(g[-1] + np.float32(step) * np.spacing(g[-1]))]
        if estrin(candidate, clamped_s()) == np.float32(1):
            return candidate
    raise SystemExit("no constant term within 8 ulps gives G = 1 at the clamp")


def clamped_s():
    """s for |x| >= X, as the compiled code computes it in f32."""
    return fma(np.float32(END), np.float32(2 / END), np.float32(-1))


def gelu32(x, g):
    x = np.float32(x)
    h = np.float32(np.float32(0.5) * x)
    s = fma(min(abs(x), np.float32(END)), np.float32(2 / END), np.float32(-1))
    return fma(h, np.copysign(estrin(g, s), x), h)


if __name__ == "__main__":
    g = coefficients()
    print("G:", [float(v) for v in g])
    print("s = min(|x|,", repr(float(np.float32(END))), ") *", repr(float(np.float32(2 / END))), "- 1")
    print("G at |x| >= X:", repr(float(estrin(g, clamped_s()))), " G(-1):", repr(float(estrin(g, np.float32(-1)))))
    print("gelu(-100), gelu(100):", float(gelu32(-100, g)), float(gelu32(100, g)))
    grid = np.concatenate([np.linspace(-9, 9, 72001), 10.0 ** np.linspace(-30, 0, 3001),
                           -(10.0 ** np.linspace(-30, 0, 3001))]).astype(np.float32)
    worst = 0.0
    for x in grid:
        e = 0.5 * float(x) * (1 + math.erf(float(x) / math.sqrt(2)))
        worst = max(worst, abs(float(gelu32(x, g)) - e) / max(1.0, abs(float(x))))
    print(f"worst |error| / max(1, |x|): {worst:.3g}")
