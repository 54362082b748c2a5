"""The coefficients of PolynomialMath.erf (Sources/FlowCodegen/PolynomialMath.swift), and their
measured error in f32 with fused multiply-adds.

  python3 Tests/Fixtures/oracles/erf_coefficients.py      (numpy and mpmath)

|x| <= 1: erf(x) = x * S(x^2), S of degree 6, a least-squares fit of erf(x)/x weighted by
1/(erf(x)/x) (relative error) on 3000 Chebyshev nodes of [0, 1].
1 < |x|: erf(|x|) = T(s), s = (min(|x|, 3.92) - 2.46)/1.46 in [-1, 1], T of degree 13, the
Chebyshev least-squares fit of erf on 3000 Chebyshev nodes of [1, 3.92] written in powers of s
(above 3.92 erf rounds to 1 in f32; T(1) rounds to 1 too). Prints both coefficient lists
(highest power first, as the Swift code's Horner takes them) and the worst error in ulps over
[-6, 6] and log-spaced small |x|, evaluating in f32 with each multiply-add rounded once.
"""
import mpmath as mp
import numpy as np
from numpy.polynomial import chebyshev

from f32_arithmetic import fma, horner

mp.mp.dps = 30
NODES = 3000
LOW, HIGH = 1.0, 3.92
MID, HALF = (LOW + HIGH) / 2, (HIGH - LOW) / 2


def nodes(a, b):
    return np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES) * (b - a) / 2 + (a + b) / 2


def small_coefficients():
    x = nodes(0.0, 1.0)
    g = np.array([float(mp.erf(v) / v) for v in x])
    a = np.vstack([(x * x) ** k for k in range(7)]).T / g[:, None]
    c = np.linalg.lstsq(a, np.ones_like(g), rcond=None)[0]
    return [np.float32(v) for v in c[::-1]]


def tail_coefficients():
    x = nodes(LOW, HIGH)
    c = chebyshev.chebfit((x - MID) / HALF, np.array([float(mp.erf(v)) for v in x]), 13)
    return [np.float32(v) for v in chebyshev.cheb2poly(c)[::-1]]


def erf32(x, small, tail):
    a = abs(x)
    if a <= 1:
        return np.float32(x * horner(small, np.float32(x * x)))
    s = fma(min(a, np.float32(HIGH)), np.float32(1 / HALF), np.float32(-MID / HALF))
    return np.copysign(horner(tail, s), x)


if __name__ == "__main__":
    small, tail = small_coefficients(), tail_coefficients()
    print("small (S):", [float(v) for v in small])
    print("tail (T):", [float(v) for v in tail])
    print("s = |x| *", repr(float(np.float32(1 / HALF))), "+", repr(float(np.float32(-MID / HALF))))
    rng = np.random.default_rng(1)
    grid = np.concatenate([np.linspace(-6, 6, 120001), 10.0 ** rng.uniform(-30, 0, 20000)]).astype(np.float32)
    worst = 0.0
    for x in grid:
        e = float(mp.erf(mp.mpf(float(x))))
        worst = max(worst, abs(float(erf32(x, small, tail)) - e) / float(np.spacing(np.float32(abs(e)))))
    print(f"worst error: {worst:.2f} ulp")
