"""Trains a two-level Glow on scikit-learn's 8×8 digits (plain PyTorch) and saves what Flowc reads.

  python3 examples/digits/train_glow.py     (torch, scikit-learn, safetensors; about 3 minutes)

The model is written out here from IR/std/glow.flow's definitions (Kingma & Dhariwal 2018, the
layout of MODELS.md model d): squeeze 2×2; 4 steps of ActNorm, LU-parameterised invertible 1×1
convolution and affine coupling (shift, then scale sigmoid(h + 2); 3×3, 1×1, 3×3 convolutions of
32 channels, the last zero-initialised); a split with the learned conditional prior (openai/glow's
split2d, Conv2dZeros with exp(3·logs)); squeeze; 4 more steps; a learned top prior. Parameter names
follow the spec (levels.{l}.steps.{k}..., levels.0.prior, top).
Data: x = (v + u)/17 − 0.5, u ~ U(0, 1), the same split as train_tarflow.py (1500 train, 297
held out with fixed noise: heldout_glow.npy). Adam 1e-3, cosine decay, batch 128, 4000 steps.
Writes glow.safetensors and adds "glow" and "glow_bpd" to reference.json.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))


def squeeze(x):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


class ActNorm(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(1, c, 1, 1))
        self.logs = torch.nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x):
        return (x + self.loc) * self.logs.exp(), self.logs.sum() * x.shape[2] * x.shape[3]


class InvConv(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        w = torch.linalg.qr(torch.randn(c, c))[0]
        p, l, u = torch.linalg.lu(w)
        s = torch.diag(u)
        self.register_buffer("w_p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.w_l = torch.nn.Parameter(l)
        self.w_u = torch.nn.Parameter(torch.triu(u, 1))
        self.log_s = torch.nn.Parameter(s.abs().log())

    def forward(self, x):
        c = x.shape[1]
        lower = torch.tril(self.w_l, -1) + torch.eye(c)
        upper = torch.triu(self.w_u, 1) + torch.diag(self.sign_s * self.log_s.exp())
        w = self.w_p @ lower @ upper
        return F.conv2d(x, w.reshape(c, c, 1, 1)), self.log_s.sum() * x.shape[2] * x.shape[3]


class Coupling(torch.nn.Module):
    def __init__(self, c, hidden=32):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(c // 2, hidden, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(hidden, hidden, 1), torch.nn.ReLU(), torch.nn.Conv2d(hidden, c, 3, padding=1))
        torch.nn.init.zeros_(self.net[4].weight)
        torch.nn.init.zeros_(self.net[4].bias)

    def forward(self, x):
        c = x.shape[1]
        xa, xb = x[:, : c // 2], x[:, c // 2:]
        h = self.net(xa)
        shift, scale = h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2)
        return torch.cat([xa, (xb + shift) * scale], 1), scale.log().sum(dim=[1, 2, 3])


class Step(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.actnorm, self.invconv, self.coupling = ActNorm(c), InvConv(c), Coupling(c)

    def forward(self, x):
        x, a = self.actnorm(x)
        x, b = self.invconv(x)
        x, c = self.coupling(x)
        return x, a + b + c


class ConvZeros(torch.nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(cout, cin, 3, 3))
        self.bias = torch.nn.Parameter(torch.zeros(cout))
        self.logs = torch.nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=1) * (3 * self.logs).exp()


class Level(torch.nn.Module):
    def __init__(self, c, steps, prior):
        super().__init__()
        self.steps = torch.nn.ModuleList([Step(c) for _ in range(steps)])
        if prior:
            self.prior = ConvZeros(c // 2, c)


class Glow(torch.nn.Module):
    def __init__(self, steps=4):
        super().__init__()
        self.levels = torch.nn.ModuleList([Level(4, steps, True), Level(8, steps, False)])
        self.top = torch.nn.ParameterDict({"mean": torch.nn.Parameter(torch.zeros(1, 8, 2, 2)), "logs": torch.nn.Parameter(torch.zeros(1, 8, 2, 2))})

    def log_prob(self, x):
        logdet = torch.zeros(len(x))
        h = squeeze(x)
        for step in self.levels[0].steps:
            h, ld = step(h)
            logdet = logdet + ld
        h, z = h[:, :2], h[:, 2:]
        p = self.levels[0].prior(h)
        eps = (z - p[:, 0::2]) * (-p[:, 1::2]).exp()
        logdet = logdet - p[:, 1::2].sum(dim=[1, 2, 3])
        h = squeeze(h)
        for step in self.levels[1].steps:
            h, ld = step(h)
            logdet = logdet + ld
        top = (h - self.top["mean"]) * (-self.top["logs"]).exp()
        logdet = logdet - self.top["logs"].sum()
        z = torch.cat([eps.flatten(1), top.flatten(1)], 1)
        return (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(1) + logdet


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    images = torch.from_numpy(load_digits().images.astype(np.float32)).unsqueeze(1)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, test = images[order[:1500]], images[order[1500:]]
    heldout = (test + torch.rand(test.shape, generator=torch.Generator().manual_seed(1))) / 17 - 0.5
    model = Glow()
    steps = 4000
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for step in range(steps):
        batch = train[torch.randint(0, len(train), (128,))]
        loss = -model.log_prob((batch + torch.rand_like(batch)) / 17 - 0.5).mean() / 64
        optimizer.zero_grad(); loss.backward(); optimizer.step(); schedule.step()
        if step % 1000 == 0:
            print(f"step {step}: nll per dim {loss.item():.4f}")
    with torch.no_grad():
        ll = model.log_prob(heldout).double().mean().item()
    bpd = -(ll + 64 * math.log(1 / 17)) / (64 * math.log(2))
    print(f"held-out mean log-likelihood {ll:.6f} nats, {bpd:.4f} bits per dimension")
    np.save(os.path.join(HERE, "heldout_glow.npy"), heldout.numpy())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(HERE, "glow.safetensors"))
    path = os.path.join(HERE, "reference.json")
    reference = json.load(open(path)) if os.path.exists(path) else {}
    reference.update({"glow": ll, "glow_bpd": bpd})
    with open(path, "w") as f:
        json.dump(reference, f, indent=2)


if __name__ == "__main__":
    main()
