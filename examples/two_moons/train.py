"""Trains the two-moons examples with zuko (PyTorch) and saves what Flowc reads.

  python3 examples/two_moons/train.py        (torch, zuko, safetensors; about 3 minutes on 2 cores)

Data: two interleaving half circles with Gaussian noise 0.05 (scikit-learn's make_moons, written
out here), scaled by 2 and shifted by (-1, -0.5) so they sit around the origin. 20000 training
points (seed 0), 4000 held-out points (seed 1) saved as heldout.npy.
Models: zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64)) and
zuko.flows.NSF(2, transforms=4, hidden_features=(64, 64), bins=8), Adam 1e-3, batch 512.
Writes realnvp.safetensors, nsf.safetensors, heldout.npy and reference.json (PyTorch's mean
held-out log-likelihood of each model, in nats), next to this script.
"""
import json
import os

import numpy as np
import torch
import zuko
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def moons(n, seed, noise=0.05):
    rng = np.random.default_rng(seed)
    outer = n // 2
    t_out = rng.uniform(0, np.pi, outer)
    t_in = rng.uniform(0, np.pi, n - outer)
    x = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], 1)])
    x += rng.normal(0, noise, x.shape)
    return (2 * x - np.array([1.0, 0.5])).astype(np.float32)


def train(flow, data, steps, seed):
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    x = torch.from_numpy(data)
    for step in range(steps):
        batch = x[torch.randint(0, len(x), (512,))]
        loss = -flow().log_prob(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 1000 == 0:
            print(f"step {step}: nll {loss.item():.4f}")
    return flow


def main():
    torch.set_num_threads(2)
    data, heldout = moons(20000, 0), moons(4000, 1)
    np.save(os.path.join(HERE, "heldout.npy"), heldout)
    reference = {}
    for name, flow, steps in [("realnvp", zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64)), 4000),
                              ("nsf", zuko.flows.NSF(2, transforms=4, hidden_features=(64, 64), bins=8), 3000)]:
        torch.manual_seed(0)
        flow = train(flow, data, steps, seed=0)
        with torch.no_grad():
            reference[name] = flow().log_prob(torch.from_numpy(heldout)).double().mean().item()
        print(f"{name}: held-out mean log-likelihood {reference[name]:.6f} nats")
        save_file({k: v.contiguous() for k, v in flow.state_dict().items()}, os.path.join(HERE, f"{name}.safetensors"))
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(reference, f, indent=2)


if __name__ == "__main__":
    main()
