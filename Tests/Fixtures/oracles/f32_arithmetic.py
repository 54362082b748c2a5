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
