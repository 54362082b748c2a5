"""f32 arithmetic as Flowc's generated code does it, for the coefficient scripts of this folder
(erf_coefficients.py, gelu_coefficients.py)."""
import numpy as np


def fma(a, b, c):
    """a*b + c rounded once to f32 (the f32 product is exact in f64)."""
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


def horner(c, s):
    """c[0]*s^n + ... + c[n], one fused multiply-add per coefficient, highest power first."""
    acc = c[0]
    for k in c[1:]:
        acc = fma(acc, s, k)
    return acc


def estrin(c, s):
    """The same polynomial as `horner` evaluated as PolynomialMath.estrin does: pairs a + b*s
    (lowest power first), then pairs of those with s^2, s^4, ..., each multiply-add rounded once
    and each power of s rounded to f32."""
    terms = list(reversed(c))
    power = np.float32(s)
    while len(terms) > 1:
        terms = [fma(terms[i + 1], power, terms[i]) if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
        if len(terms) > 1:
            power = np.float32(np.float64(power) * np.float64(power))
    return terms[0]
