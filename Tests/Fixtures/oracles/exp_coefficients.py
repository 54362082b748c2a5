"""The coefficients of PolynomialMath.expPolynomial (Sources/FlowCodegen/PolynomialMath.swift),
and the measured error of exp and SiLU in f32 with fused multiply-adds, evaluated as
PolynomialMath.expFactors does.

  python3 Tests/Fixtures/oracles/exp_coefficients.py      (numpy)

e^t = 1 + t + t^2 P(t) on |t| <= ln2/2, P of degree 4: the minimax fit of (e^t - 1 - t)/t^2 in
the relative error of e^t (weight t^2/e^t), by Lawson's iteratively reweighted least squares on
4000 Chebyshev nodes. Its error before rounding is 3.8e-9 relative (f32's half ulp is 6e-8), so
the f32 evaluation's roundings are the error; Cephes' expf uses degree 5 for P.
Prints the coefficients (lowest power first, as the Swift code takes them), the fit's error, and
the worst errors in ulps of exp over [-87, 88] and of silu(x) = x / (1 + e^-x) over [-80, 80].
"""
import math

import numpy as np

from f32_arithmetic import fma, horner

DEGREE = 4
NODES = 4000
HALF_LN2 = math.log(2) / 2
MAGIC = np.float32(12582912 + 127)


def coefficients():
    t = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES) * HALF_LN2
    target = (np.expm1(t) - t) / t**2
    weight = t**2 / np.exp(t)
    powers = np.vander(t, DEGREE + 1, increasing=True)
    lawson = np.full(NODES, 1.0 / NODES)
    for _ in range(200):
        w = weight * np.sqrt(lawson)
        c, *_ = np.linalg.lstsq(powers * w[:, None], target * w, rcond=None)
        lawson *= np.abs((powers @ c - target) * weight)
        lawson /= lawson.sum()
    return [np.float32(v) for v in c]


def exp_factors(x, p, negated):
    """(e^t, 2^n) for e^(+-x), in f32 as the compiled code computes them."""
    sign = np.float32(-1 if negated else 1)
    low, high = (np.float32(-88.72283), np.float32(87.33654)) if negated else (np.float32(-87.33654), np.float32(88.72283))
    clamped = np.minimum(np.maximum(x, low), high)
    shifted = fma(clamped, np.float32(sign * np.float32(1.44269504088896341)), MAGIC)
    n = np.float32(shifted - MAGIC)
    r = fma(n, np.float32(sign * np.float32(2.12194440e-4)), fma(n, np.float32(-sign * np.float32(0.693359375)), clamped))
    signed = [sign * c if k % 2 == 1 else c for k, c in enumerate(p)]
    poly = horner([np.float32(c) for c in reversed(signed)], r)
    reduced = fma(fma(poly, r, sign), r, np.float32(1))
    scale = ((shifted.view(np.uint32) << np.uint32(23)) & np.uint32(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    return reduced, scale


def ulps(value, exact):
    ulp = np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
    return np.max(np.abs(value.astype(np.float64) - exact) / ulp)


def main():
    p = coefficients()
    t = np.linspace(-HALF_LN2, HALF_LN2, 200001)
    fit = 1 + t + t**2 * np.polyval(np.array(p[::-1], dtype=np.float64), t)
    print("P, lowest power first:", ", ".join(repr(float(c)) for c in p))
    print(f"fit: max relative error {np.max(np.abs(fit / np.exp(t) - 1)):.3g} before rounding")
    x = np.linspace(-87, 88, 2_000_001, dtype=np.float32)
    reduced, scale = exp_factors(x, p, negated=False)
    print(f"exp: max error {ulps(np.float32(reduced * scale), np.exp(x.astype(np.float64))):.3f} ulp over [-87, 88]")
    x = np.linspace(-80, 80, 2_000_001, dtype=np.float32)
    x = x[x != 0]
    reduced, scale = exp_factors(x, p, negated=True)
    silu = np.float32(x / fma(reduced, scale, np.float32(1)))
    exact = x.astype(np.float64) / (1 + np.exp(-x.astype(np.float64)))
    print(f"silu: max error {ulps(silu, exact):.3f} ulp over [-80, 80]")


if __name__ == "__main__":
    main()
