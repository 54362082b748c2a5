"""JAX jit timings of the reference models that issue 8's peer table has JAX rows for (c_realnvp64,
e_fm with 8 Euler or RK4 steps, f_meanflow), on the weights Flowc's benchmark uses, in the same run
as Flowc's, so that the ratio against JAX is measured side by side.

  python3 Benchmarks/jax_peer.py MODEL=WEIGHTS.safetensors ... [--batches=1,256] [--rounds=3]

Run by `make bench` (flowc-bench) when jax is importable (`pip install jax`); never a build or
test dependency. Each model is a port written here in jax.numpy from ../shared/baselines/MODELS.md
(the math of pytorch_eager.py's ports, whose cells and inputs it reuses), jitted once per pass and
batch size (static shapes, as the peers' run), and checked against PyTorch eager on the timed
input ("check": max |JAX − eager|). Models without a port here are skipped. Timing as
pytorch_eager.py (3 warm-up calls, then the median of calls until 0.3 s have passed, at least 7;
the median over rounds), each call waited for with block_until_ready. XLA's CPU thread pool is
fixed per process, so the script runs itself once more with XLA limited to one thread (the XLA
flags of the peers' run) and keeps the faster of 1 and 2 threads per cell. Prints one JSON object
per line: model, pass, batch, us, threads, check.
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def ports():
    """key → (log_prob or None, sample), functions of (weights as jnp arrays, input)."""
    import jax.numpy as jnp

    def linear(w, prefix, x):
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    def realnvp_couplings(w):
        """MODELS.md c: per coupling k, the conditioning and transformed columns (mask, ~mask)."""
        count = len({k.split(".")[2] for k in w if k.startswith("transform.transforms.")})
        result = []
        for k in range(count):
            mask = np.asarray(w[f"transform.transforms.{k}.mask"]).astype(bool)
            result.append((f"transform.transforms.{k}.hyper.", np.nonzero(mask)[0], np.nonzero(~mask)[0]))
        return result

    def realnvp_shift_log_scale(w, hyper, xa):
        h = jnp.maximum(linear(w, hyper + "0", xa), 0)
        h = jnp.maximum(linear(w, hyper + "2", h), 0)
        phi = linear(w, hyper + "4", h).reshape(xa.shape[0], -1, 2)
        a = phi[..., 1]
        return phi[..., 0], a / (1 + jnp.abs(a / math.log(1e-3)))   # zuko's soft clamp

    def realnvp_log_prob(w, x):
        ladj = jnp.zeros(x.shape[0], x.dtype)
        for hyper, a_index, b_index in realnvp_couplings(w):
            shift, log_scale = realnvp_shift_log_scale(w, hyper, x[:, a_index])
            x = x.at[:, b_index].set(x[:, b_index] * jnp.exp(log_scale) + shift)
            ladj = ladj + log_scale.sum(1)
        z = (x - w["base.loc"]) / w["base.scale"]
        return (-0.5 * z * z - jnp.log(w["base.scale"]) - 0.5 * math.log(2 * math.pi)).sum(1) + ladj

    def realnvp_sample(w, e):
        for hyper, a_index, b_index in reversed(realnvp_couplings(w)):
            shift, log_scale = realnvp_shift_log_scale(w, hyper, e[:, a_index])
            e = e.at[:, b_index].set((e[:, b_index] - shift) * jnp.exp(-log_scale))
        return e

    def mlp(w, x):
        """Linear SiLU (Linear SiLU)* Linear, the layers main.0, main.2, ..."""
        layers = sorted({int(k.split(".")[1]) for k in w if k.startswith("main.")})
        for i in layers[:-1]:
            x = linear(w, f"main.{i}", x)
            x = x * (1 / (1 + jnp.exp(-x)))
        return linear(w, f"main.{layers[-1]}", x)

    def velocity(w, x, t):
        """MODELS.md e: v(x, t) = main(cat(x, t))."""
        return mlp(w, jnp.concatenate([x, jnp.full((x.shape[0], 1), t, x.dtype)], 1))

    def euler(w, x, steps=8):
        h = 1.0 / steps
        for i in range(steps):
            x = x + h * velocity(w, x, i * h)
        return x

    def rk4_three_eighths(w, x, steps=8):
        """torchdiffeq's "rk4" step, the Runge-Kutta 3/8 rule."""
        h = 1.0 / steps
        for i in range(steps):
            t = i * h
            k1 = velocity(w, x, t)
            k2 = velocity(w, x + h * k1 / 3, t + h / 3)
            k3 = velocity(w, x + h * (k2 - k1 / 3), t + 2 * h / 3)
            k4 = velocity(w, x + h * (k1 - k2 + k3), t + h)
            x = x + h * (k1 + 3 * (k2 + k3) + k4) / 8
        return x

    def meanflow_sample(w, e):
        """MODELS.md f: x = e − (t − r)·u(e, r = 0, t = 1), u = main(cat(z, emb(t), emb(t − r))),
        emb(s) = cat(cos(s·f), sin(s·f)), f_k = 10000^(−k/half)."""
        layers = sorted({int(k.split(".")[1]) for k in w if k.startswith("main.")})
        half = (w["main.0.weight"].shape[1] - w[f"main.{layers[-1]}.bias"].shape[0]) // 4
        freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)

        def embed(s):
            a = jnp.full((e.shape[0], 1), s, e.dtype) * freqs
            return jnp.concatenate([jnp.cos(a), jnp.sin(a)], 1)

        r, t = 0.0, 1.0
        return e - (t - r) * mlp(w, jnp.concatenate([e, embed(t), embed(t - r)], 1))

    return {"c_realnvp64": (realnvp_log_prob, realnvp_sample), "e_fm": (None, euler),
            "e_fm_rk4": (None, rk4_three_eighths), "f_meanflow": (None, meanflow_sample)}


def median_seconds(call, x):
    for _ in range(3):
        call(x).block_until_ready()
    times, budget = [], time.perf_counter() + 0.3
    while len(times) < 7 or time.perf_counter() < budget:
        start = time.perf_counter()
        call(x).block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(arguments):
    """This process's (cell, µs, check) for every ported cell, at XLA's thread count here."""
    import jax
    import jax.numpy as jnp
    import torch
    from safetensors.numpy import load_file

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pytorch_eager

    pairs, batches, rounds = pytorch_eager.parse_arguments(arguments)
    table = ports()
    pairs = [(key, path) for key, path in pairs if key in table]
    weights = {}
    for key, path in pairs:
        tensors = load_file(path)
        weights[key] = {k[2:]: jnp.asarray(v) for k, v in tensors.items() if k.startswith("w.")}
    prepared = []
    for key, name, batch, call, x, _ in pytorch_eager.cells(pairs, batches):
        port = table[key][0 if name == "log_prob" else 1]
        if port is None:
            continue
        w = weights[key]
        jitted = jax.jit(lambda x, port=port, w=w: port(w, x))
        xj = jnp.asarray(x.numpy())
        with torch.inference_mode():
            expected = call(x).numpy()
        check = float(np.abs(np.asarray(jitted(xj)) - expected).max())
        prepared.append(((key, name, batch), jitted, xj, check))
    times = [[] for _ in prepared]
    for _ in range(rounds):
        for i, (_, jitted, xj, _) in enumerate(prepared):
            times[i].append(median_seconds(jitted, xj))
    return [(cell, statistics.median(t) * 1e6, check) for (cell, _, _, check), t in zip(prepared, times)]


def main():
    if sys.argv[1:2] == ["--this-process"]:
        for cell, micros, check in measure(sys.argv[2:]):
            print(json.dumps({"cell": cell, "us": micros, "check": check}), flush=True)
        return
    one = subprocess.run([sys.executable, __file__, "--this-process"] + sys.argv[1:], capture_output=True, text=True,
                         env=dict(os.environ, XLA_FLAGS=ONE_THREAD_FLAGS), check=True)
    single = {tuple(o["cell"]): o["us"] for o in map(json.loads, one.stdout.splitlines())}
    for (key, name, batch), micros, check in measure(sys.argv[1:]):
        threads, best = (1, single[(key, name, batch)]) if single.get((key, name, batch), math.inf) < micros else (2, micros)
        print(json.dumps({"model": key, "pass": name, "batch": batch, "us": best, "threads": threads, "check": check}), flush=True)


if __name__ == "__main__":
    main()
