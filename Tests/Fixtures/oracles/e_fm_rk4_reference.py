"""The f64 oracle of Dopri5Tests: model e's velocity MLP (MODELS.md: v(x, t) =
main(cat(x, t)), Linear SiLU Linear SiLU Linear SiLU Linear) written out in numpy from the
fixture's weights, integrated from the fixture's noise at t = 0 to t = 1 by classic RK4 with
10^4 uniform steps in float64. Independent of Flowc's interpreter and solvers.

Run from the repository root (numpy only):  python3 Tests/Fixtures/oracles/e_fm_rk4_reference.py
Writes Tests/Fixtures/oracles/e_fm_rk4_10000.npy, shape (16, 2), float64.
"""
import json
import struct

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def main():
    t = read_safetensors("Tests/Fixtures/e_fm.safetensors")
    layers = [(t[f"w.main.{i}.weight"], t[f"w.main.{i}.bias"]) for i in (0, 2, 4, 6)]

    def v(x, time):
        h = np.concatenate([x, np.full((x.shape[0], 1), time)], axis=1)
        for k, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if k < len(layers) - 1:
                h = h / (1 + np.exp(-h))  # SiLU
        return h

    x = t["noise"].copy()
    steps = 10_000
    dt = 1.0 / steps
    for k in range(steps):
        s = k * dt
        k1 = v(x, s)
        k2 = v(x + dt / 2 * k1, s + dt / 2)
        k3 = v(x + dt / 2 * k2, s + dt / 2)
        k4 = v(x + dt * k3, s + dt)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    np.save("Tests/Fixtures/oracles/e_fm_rk4_10000.npy", x)
    print(x)


if __name__ == "__main__":
    main()
