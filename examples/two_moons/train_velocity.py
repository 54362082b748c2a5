"""Trains the two-moons velocity examples (PyTorch) and saves what Flowc reads.

  python3 examples/two_moons/train_velocity.py     (torch, safetensors; about 4 minutes on 2 cores)

Data as train.py (the same 20000 training points and 4000 held-out points).
- Flow matching (Lipman et al. 2023, the flow_matching library's conventions: noise at t = 0,
  x_t = (1 − t)·ε + t·x, target velocity x − ε): v(x, t) = main(cat(x, t)), an MLP with three
  hidden layers of 128 and SiLU (the layout of examples/reference/e_fm.flow). Its held-out
  log-likelihood is the continuous-flow one Flowc computes: the augmented ODE from t = 1 to 0
  with the exact divergence, 32 classic RK4 steps, log N(x(0)) + ∫ div v — written out here in
  PyTorch with autograd for the divergence.
- MeanFlow (Geng et al. 2025; data at t = 0, noise at t = 1, z_t = (1 − t)·x + t·ε,
  u(z, r, t) = main(cat(z, emb(t), emb(t − r))) with the cos-first sinusoidal embedding of width
  32, hidden 256, as examples/reference/f_meanflow.flow): trained with the MeanFlow identity
  u_tgt = v − (t − r)·(v·∂_z u + ∂_t u) (one JVP), logit-normal(−0.4, 1) times, r = t for 75%
  of the pairs, the paper's adaptive loss weight 1/(‖Δ‖² + 10⁻³)^0.5, Adam 3e-4 with cosine
  decay over 20000 steps. Its 1-step samples
  z_1 − u(z_1, 0, 1) from fixed noise are saved for comparison.
Writes fm.safetensors, meanflow.safetensors, meanflow_noise.npy, meanflow_samples.npy, and adds
"fm" to reference.json.
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file

from train import moons, HERE


def mlp(inputs, hidden, outputs):
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, outputs))


class Velocity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.main = mlp(3, 128, 2)

    def forward(self, x, t):
        return self.main(torch.cat([x, t], 1))


def embed(s, dim=32, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    a = s * freqs
    return torch.cat([torch.cos(a), torch.sin(a)], 1)


class MeanVelocity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.main = mlp(2 + 64, 256, 2)

    def forward(self, z, r, t):
        return self.main(torch.cat([z, embed(t), embed(t - r)], 1))


def cnf_log_prob(v, x, steps=32):
    """log p(x): (x, L) from t = 1 to t = 0 with dx/dt = v, dL/dt = div v, classic RK4."""
    def f(x, t):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            out = v(x, torch.full((len(x), 1), t))
            div = sum(torch.autograd.grad(out[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2))
        return out.detach(), div.detach()
    h = -1.0 / steps
    L = torch.zeros(len(x), dtype=torch.float64)
    x = x.clone()
    for k in range(steps):
        t = 1.0 + k * h
        k1, d1 = f(x, t)
        k2, d2 = f(x + h / 2 * k1, t + h / 2)
        k3, d3 = f(x + h / 2 * k2, t + h / 2)
        k4, d4 = f(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        L = L + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4).double()
    return (-0.5 * (x.double() ** 2).sum(1) - math.log(2 * math.pi) + L)


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    data = torch.from_numpy(moons(20000, 0))
    heldout = torch.from_numpy(moons(4000, 1))

    fm = Velocity()
    opt = torch.optim.Adam(fm.parameters(), lr=1e-3)
    for step in range(6000):
        x = data[torch.randint(0, len(data), (512,))]
        eps, t = torch.randn_like(x), torch.rand(len(x), 1)
        loss = ((fm((1 - t) * eps + t * x, t) - (x - eps)) ** 2).sum(1).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 2000 == 0:
            print(f"fm step {step}: loss {loss.item():.4f}")
    with torch.no_grad():
        fm_ll = cnf_log_prob(fm, heldout).mean().item()
    print(f"fm: held-out mean log-likelihood {fm_ll:.6f} nats")
    save_file({k: v.contiguous() for k, v in fm.state_dict().items()}, os.path.join(HERE, "fm.safetensors"))

    mf = MeanVelocity()
    opt = torch.optim.Adam(mf.parameters(), lr=3e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 20000)
    for step in range(20000):
        x = data[torch.randint(0, len(data), (512,))]
        eps = torch.randn_like(x)
        # logit-normal times (the paper's lognorm(−0.4, 1.0))
        t, r = torch.sigmoid(torch.randn(len(x), 1) - 0.4), torch.sigmoid(torch.randn(len(x), 1) - 0.4)
        t, r = torch.maximum(t, r), torch.minimum(t, r)
        same = torch.rand(len(x), 1) < 0.75
        r = torch.where(same, t, r)
        z = (1 - t) * x + t * eps
        v = eps - x
        u, dudt = torch.func.jvp(mf, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))
        target = (v - (t - r) * dudt).detach()
        # the paper's adaptive weighting with p = 0.5: sg(1/(‖Δ‖² + c)^p)·‖Δ‖²
        error = ((u - target) ** 2).sum(1)
        loss = (error / (error.detach() + 1e-3).sqrt()).mean()
        opt.zero_grad(); loss.backward(); opt.step(); schedule.step()
        if step % 2000 == 0:
            print(f"meanflow step {step}: loss {loss.item():.4f}, mse {error.mean().item():.4f}")
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        samples = noise - mf(noise, torch.zeros(2000, 1), torch.ones(2000, 1))
    np.save(os.path.join(HERE, "meanflow_noise.npy"), noise.numpy())
    np.save(os.path.join(HERE, "meanflow_samples.npy"), samples.numpy())
    save_file({k: v.contiguous() for k, v in mf.state_dict().items()}, os.path.join(HERE, "meanflow.safetensors"))

    path = os.path.join(HERE, "reference.json")
    reference = json.load(open(path)) if os.path.exists(path) else {}
    reference["fm"] = fm_ll
    with open(path, "w") as f:
        json.dump(reference, f, indent=2)


if __name__ == "__main__":
    main()
