"""PyTorch eager timings of the reference and example models on the same weights Flowc's benchmark uses.

  python3 Benchmarks/pytorch_eager.py MODEL=WEIGHTS.safetensors ... [--batches=1,256] [--rounds=3]

Run by `make bench` (flowc-bench) when torch is importable; never a build or test dependency.
Each model is written here in plain PyTorch from ../shared/baselines/MODELS.md (zuko's own
classes for a, b, c; nn.Modules with the reference state_dict names for e, f, g, as the peers'
models.py has them), loads the weights file Flowc compiled, checks itself against the fixture
outputs stored in that file when present (max |difference| printed as "check"; for an example
model, its mean log_prob over its held-out data against its training script's, reference.json), then times
log_prob and sample at each batch size under torch.inference_mode, as the peers' runs of
results-peers.md were: 3 rounds over all cells (--rounds), each cell 3 warm-up calls then the
median of calls until 0.3 s have passed (at least 7), with 1 and with 2 threads; a cell's time is
the median of its round values, at the faster thread count. (flowc-bench runs it once per round,
--rounds=1, between its own rounds.) Prints one JSON object per line: model, pass, batch, us,
threads, check.
"""
import functools
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from safetensors.torch import load_file

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def normal_log_prob(z):
    return (-0.5 * z * z - HALF_LOG_2PI).flatten(1).sum(1)


def zuko_flow(w, kind):
    import zuko
    first = w["transform.transforms.0.hyper.0.weight"]
    count = len({k.split(".")[2] for k in w if k.startswith("transform.transforms.")})
    hidden = (first.shape[0], w["transform.transforms.0.hyper.2.weight"].shape[0])
    features = w["base.loc"].shape[0] if "base.loc" in w else None
    if kind == "realnvp":
        features = w["transform.transforms.0.mask"].shape[0]
        flow = zuko.flows.RealNVP(features, transforms=count, hidden_features=hidden)
    elif kind == "nsf":
        bins = (w["transform.transforms.0.hyper.4.weight"].shape[0] // features + 1) // 3   # 3K − 1 per feature
        flow = zuko.flows.NSF(features, transforms=count, hidden_features=hidden, bins=bins)
    else:
        flow = zuko.flows.MAF(features, transforms=count, hidden_features=hidden)
    flow.load_state_dict(w)
    flow.eval()
    return (lambda x: flow().log_prob(x)), (lambda e: flow().transform.inv(e))


def squeeze(x):
    """[B, C, H, W] → [B, 4C, H/2, W/2], each 2×2 patch's pixels as channels (c, i, j order)."""
    b, c, hh, ww = x.shape
    return x.reshape(b, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, hh // 2, ww // 2)


def unsqueeze(h):
    b, c4, hh, ww = h.shape
    return h.reshape(b, c4 // 4, 2, 2, hh, ww).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * hh, 2 * ww)


def glow_steps(w, prefix):
    """MODELS.md d: the steps {prefix}0., {prefix}1., ... of ActNorm → LU 1×1 convolution →
    affine coupling; (forward h → (h, log-det), inverse h → h)."""
    steps = len({k[len(prefix):].split(".")[0] for k in w if k.startswith(prefix)})
    mats, inverses = [], []
    for s in range(steps):
        p = f"{prefix}{s}.invconv."
        c = w[p + "w_p"].shape[0]
        lower = torch.tril(w[p + "w_l"], -1) + torch.eye(c)
        upper = torch.triu(w[p + "w_u"], 1) + torch.diag(w[p + "sign_s"] * w[p + "log_s"].exp())
        m = w[p + "w_p"] @ lower @ upper
        mats.append(m.reshape(c, c, 1, 1))
        inverses.append(torch.inverse(m).reshape(c, c, 1, 1))   # folded once, as a deployed model would

    def net(s, xa):
        p = f"{prefix}{s}.coupling.net."
        h = F.relu(F.conv2d(xa, w[p + "0.weight"], w[p + "0.bias"], padding=1))
        h = F.relu(F.conv2d(h, w[p + "2.weight"], w[p + "2.bias"]))
        h = F.conv2d(h, w[p + "4.weight"], w[p + "4.bias"], padding=1)
        return h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2)

    def forward(h):
        area = h.shape[2] * h.shape[3]
        logdet = torch.zeros(h.shape[0])
        for s in range(steps):
            p = f"{prefix}{s}."
            h = (h + w[p + "actnorm.loc"]) * w[p + "actnorm.logs"].exp()
            h = F.conv2d(h, mats[s])
            half = h.shape[1] // 2
            shift, scale = net(s, h[:, :half])
            h = torch.cat([h[:, :half], (h[:, half:] + shift) * scale], 1)
            logdet = logdet + area * (w[p + "actnorm.logs"].sum() + w[p + "invconv.log_s"].sum()) + scale.log().flatten(1).sum(1)
        return h, logdet

    def inverse(h):
        for s in reversed(range(steps)):
            p = f"{prefix}{s}."
            half = h.shape[1] // 2
            shift, scale = net(s, h[:, :half])
            h = torch.cat([h[:, :half], h[:, half:] / scale - shift], 1)
            h = F.conv2d(h, inverses[s])
            h = h * (-w[p + "actnorm.logs"]).exp() - w[p + "actnorm.loc"]
        return h

    return forward, inverse


def glow(w):
    """MODELS.md d: squeeze, then the steps."""
    forward, inverse = glow_steps(w, "steps.")

    def log_prob(x):
        h, logdet = forward(squeeze(x))
        return normal_log_prob(h) + logdet

    return log_prob, lambda e: unsqueeze(inverse(e))


def digits_glow(w):
    """examples/digits/glow.flow (its training script's model): squeeze, steps, split with the
    learned conditional prior (openai/glow's split2d: a zero-initialised 3×3 convolution scaled
    by exp(3·logs) gives the mean and log-scale of the second half), squeeze, steps, learned top
    prior; the latent is (ε of the split, ε of the top), flattened."""
    level0, level1 = glow_steps(w, "levels.0.steps."), glow_steps(w, "levels.1.steps.")

    def prior(h):
        p = F.conv2d(h, w["levels.0.prior.weight"], w["levels.0.prior.bias"], padding=1) * (3 * w["levels.0.prior.logs"]).exp()
        return p[:, 0::2], p[:, 1::2]

    def log_prob(x):
        h, logdet = level0[0](squeeze(x))
        half = h.shape[1] // 2
        h, z = h[:, :half], h[:, half:]
        mean, logs = prior(h)
        eps = (z - mean) * (-logs).exp()
        h, top_logdet = level1[0](squeeze(h))
        top = (h - w["top.mean"]) * (-w["top.logs"]).exp()
        logdet = logdet - logs.sum(dim=[1, 2, 3]) + top_logdet - w["top.logs"].sum()
        return normal_log_prob(torch.cat([eps.flatten(1), top.flatten(1)], 1)) + logdet

    def sample(e):
        b, top_shape = len(e), w["top.mean"].shape[1:]
        split = e.shape[1] - top_shape.numel()
        h = e[:, split:].reshape(b, *top_shape) * w["top.logs"].exp() + w["top.mean"]
        h = unsqueeze(level1[1](h))
        mean, logs = prior(h)
        z = e[:, :split].reshape(b, h.shape[1], h.shape[2], h.shape[3]) * logs.exp() + mean
        return unsqueeze(level0[1](torch.cat([h, z], 1)))

    return log_prob, sample


# e, f and g as nn.Modules loaded with load_state_dict(strict=True), the way the reference
# implementations are written and the way results-peers.md timed eager PyTorch (its models.py
# classes): a module's call costs eager time that a functional rewrite would not have.


class VelocityField(nn.Module):
    """MODELS.md e: v(x, t) = main(cat(x, t)), main = Linear SiLU (Linear SiLU)* Linear."""

    def __init__(self, w):
        super().__init__()
        linears = sorted({int(k.split(".")[1]) for k in w if k.startswith("main.")})
        shapes = [w[f"main.{i}.weight"].shape for i in linears]
        modules = []
        for i, (out_features, in_features) in enumerate(shapes):
            modules.append(nn.Linear(in_features, out_features))
            if i < len(shapes) - 1:
                modules.append(nn.SiLU())
        self.main = nn.Sequential(*modules)
        self.load_state_dict(w, strict=True)
        self.eval()

    def forward(self, x, t):
        return self.main(torch.cat([x, t.reshape(-1, 1).to(x.dtype).expand(len(x), 1)], 1))


def flow_matching(w, steps=8):
    """MODELS.md e: Euler from noise (t = 0) to data (t = 1), t a one-element tensor per step."""
    v = VelocityField(w)

    def sample(x):
        h = 1.0 / steps
        for i in range(steps):
            x = x + h * v(x, torch.full((1,), i * h))
        return x

    return None, sample


def flow_matching_rk4(w, steps=8):
    """MODELS.md e with torchdiffeq's "rk4" step (Runge-Kutta 3/8 rule), 8 steps from t = 0 to 1."""
    v = VelocityField(w)

    def sample(x):
        h = 1.0 / steps
        for i in range(steps):
            t = i * h
            k1 = v(x, torch.full((1,), t))
            k2 = v(x + h * k1 / 3, torch.full((1,), t + h / 3))
            k3 = v(x + h * (k2 - k1 / 3), torch.full((1,), t + 2 * h / 3))
            k4 = v(x + h * (k1 - k2 + k3), torch.full((1,), t + h))
            x = x + h * (k1 + 3 * (k2 + k3) + k4) / 8
        return x

    return None, sample


class MeanVelocityField(VelocityField):
    """MODELS.md f: u(z, r, t) = main(cat(z, emb(t), emb(t − r))), emb the sinusoidal timestep
    embedding cat(cos(s·f), sin(s·f)), f_k = 10000^(−k/half)."""

    def __init__(self, w):
        super().__init__(w)
        self.half = (w["main.0.weight"].shape[1] - w[f"main.{len(self.main) - 1}.bias"].shape[0]) // 4
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(self.half, dtype=torch.float32) / self.half))

    def embed(self, s):
        a = s.reshape(-1, 1) * self.freqs
        return torch.cat([torch.cos(a), torch.sin(a)], 1)

    def forward(self, z, r, t):
        r, t = r.reshape(-1).expand(len(z)), t.reshape(-1).expand(len(z))
        return self.main(torch.cat([z, self.embed(t), self.embed(t - r)], 1))


def meanflow(w):
    """MODELS.md f: one step x = e − (t − r)·u(e, r = 0, t = 1)."""
    u = MeanVelocityField(w)

    def sample(e):
        return e - 1.0 * u(e, torch.full((1,), 0.0), torch.full((1,), 1.0))

    return None, sample


class TarFlowAttention(nn.Module):
    def __init__(self, channels, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, h, cache=None):
        """Causal self-attention of the tokens h; with a KV cache (a list), of h's one token
        over every token cached so far."""
        b, t, c = h.shape
        q, k, v = self.qkv(self.norm(h)).reshape(b, t, 3 * self.heads, c // self.heads).transpose(1, 2).chunk(3, dim=1)
        if cache is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            cache.append((k, v))
            o = F.scaled_dot_product_attention(q, torch.cat([kv[0] for kv in cache], 2), torch.cat([kv[1] for kv in cache], 2))
        return self.proj(o.transpose(1, 2).reshape(b, t, c))


class TarFlowMLP(nn.Module):
    def __init__(self, channels, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.main = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, h):
        return self.main(self.norm(h))


class TarFlowLayer(nn.Module):
    def __init__(self, channels, heads, hidden):
        super().__init__()
        self.attention = TarFlowAttention(channels, heads)
        self.mlp = TarFlowMLP(channels, hidden)

    def forward(self, h, cache=None):
        h = h + self.attention(h, cache)
        return h + self.mlp(h)


class TarFlowBlock(nn.Module):
    """One autoregressive block: z = (x − b(x<))·e^(−a(x<)) over the tokens, the odd blocks' in
    reverse order; a and b from a causal transformer on the tokens shifted by one."""

    def __init__(self, w, p, flip):
        super().__init__()
        self.flip = flip
        channels, tokens = w[p + "pos_embed"].shape[1], w[p + "pos_embed"].shape[0]
        layers = len({k.split(".")[3] for k in w if k.startswith(p + "attn_blocks.")})
        hidden = w[p + "attn_blocks.0.mlp.main.0.weight"].shape[0]
        self.proj_in = nn.Linear(w[p + "proj_in.weight"].shape[1], channels)
        self.pos_embed = nn.Parameter(torch.zeros(tokens, channels))
        self.attn_blocks = nn.ModuleList([TarFlowLayer(channels, channels // 64, hidden) for _ in range(layers)])
        self.proj_out = nn.Linear(channels, w[p + "proj_out.weight"].shape[0])
        # ml-tarflow keeps its causal mask as a buffer (here is_causal=True does that work)
        self.register_buffer("attn_mask", torch.tril(torch.ones(tokens, tokens)))

    def ordered(self, x, dim=1):
        return x.flip(dim) if self.flip else x

    def forward(self, x):
        x = self.ordered(x)
        h = self.proj_in(x) + self.ordered(self.pos_embed, 0)
        for layer in self.attn_blocks:
            h = layer(h)
        out = self.proj_out(h)
        xa, xb = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], 1).chunk(2, dim=2)
        return self.ordered((x - xb) * torch.exp(-xa)), -xa.mean(dim=[1, 2])

    def reverse(self, z):
        x = self.ordered(z).clone()
        pos = self.ordered(self.pos_embed, 0)
        caches = [[] for _ in self.attn_blocks]
        for i in range(x.shape[1] - 1):
            h = self.proj_in(x[:, i:i + 1]) + pos[i:i + 1]
            for layer, cache in zip(self.attn_blocks, caches):
                h = layer(h, cache)
            xa, xb = self.proj_out(h).chunk(2, dim=2)
            x[:, i + 1:i + 2] = x[:, i + 1:i + 2] * torch.exp(xa) + xb
        return self.ordered(x)


class TarFlow(nn.Module):
    """MODELS.md g: apple/ml-tarflow's Model (patch 2, its state_dict names); sampling decodes
    token by token with a KV cache."""

    def __init__(self, w):
        super().__init__()
        count = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
        self.blocks = nn.ModuleList([TarFlowBlock(w, f"blocks.{b}.", b % 2 == 1) for b in range(count)])
        self.register_buffer("var", torch.ones_like(w["var"]))
        self.load_state_dict(w, strict=True)
        self.eval()

    def log_prob(self, x):
        h = F.unfold(x, 2, stride=2).transpose(1, 2)
        total = 0
        for block in self.blocks:
            h, log_det = block(h)
            total = total + log_det
        return normal_log_prob(h) + total * h.shape[1] * h.shape[2]

    def sample(self, e):
        h = e * self.var.sqrt()
        for block in reversed(self.blocks):
            h = block.reverse(h)
        return F.fold(h.transpose(1, 2), (8, 8), 2, stride=2)


def tarflow(w):
    model = TarFlow(w)
    return model.log_prob, model.sample


BUILDERS = {
    "a_nsf": lambda w: zuko_flow(w, "nsf"), "b_maf": lambda w: zuko_flow(w, "maf"),
    "c_realnvp2": lambda w: zuko_flow(w, "realnvp"), "c_realnvp64": lambda w: zuko_flow(w, "realnvp"),
    "d_glow": glow, "e_fm": flow_matching, "e_fm_rk4": flow_matching_rk4, "f_meanflow": meanflow, "g_tarflow": tarflow,
}
FIXTURE_SAMPLE = {"e_fm": "sample_euler", "e_fm_rk4": "sample_rk4", "f_meanflow": "sample_1step"}


# The trained example models (examples/*/, weights as their training scripts saved them, without
# "w." prefixes or fixture inputs): the same ports, and the shapes of one sample's x and noise
# (TarFlow's noise is its 16 tokens of 2×2 patches).
BUILDERS.update({
    "two_moons_realnvp": lambda w: zuko_flow(w, "realnvp"), "two_moons_nsf": lambda w: zuko_flow(w, "nsf"),
    "two_moons_fm": flow_matching_rk4, "two_moons_meanflow": meanflow,
    "digits_glow": digits_glow, "digits_tarflow": tarflow,
})
EXAMPLE_SHAPES = {"two_moons_realnvp": ((2,), (2,)), "two_moons_nsf": ((2,), (2,)), "two_moons_fm": ((2,), (2,)),
                  "two_moons_meanflow": ((2,), (2,)), "digits_glow": ((1, 8, 8), (64,)), "digits_tarflow": ((1, 8, 8), (16, 4))}
# The examples' sampling temperatures (examples/digits/README.md), as flowc-bench samples them.
EXAMPLE_TEMPERATURES = {"digits_glow": 0.7, "digits_tarflow": 0.8}
# The held-out mean log-likelihood each training script measured (reference.json) and its data:
# an example's log_prob port is checked against it.
EXAMPLE_CHECKS = {"two_moons_realnvp": ("two_moons", "heldout.npy", "realnvp"), "two_moons_nsf": ("two_moons", "heldout.npy", "nsf"),
                  "digits_glow": ("digits", "heldout_glow.npy", "glow"), "digits_tarflow": ("digits", "heldout.npy", "tarflow")}


def example_folder(key):
    import os
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", EXAMPLE_CHECKS[key][0])


@functools.lru_cache(maxsize=None)
def example_held_out(key):
    """The example's held-out data (its log_prob inputs, as flowc-bench's), or None; read once."""
    import os
    import numpy as np
    return torch.from_numpy(np.load(os.path.join(example_folder(key), EXAMPLE_CHECKS[key][1]))) if key in EXAMPLE_CHECKS else None


def example_check(key, log_prob):
    """|mean log_prob over the example's held-out set − its training script's value|, or None."""
    import os
    if key not in EXAMPLE_CHECKS or log_prob is None:
        return None
    with open(os.path.join(example_folder(key), "reference.json")) as f:
        reference = json.load(f)[EXAMPLE_CHECKS[key][2]]
    return abs(log_prob(example_held_out(key)).double().mean().item() - reference)


ROUNDS = 3  # unless --rounds=N


def median_seconds(call, arg):
    for _ in range(3):
        call(arg)
    times, budget = [], time.perf_counter() + 0.3
    while len(times) < 7 or time.perf_counter() < budget:
        start = time.perf_counter()
        call(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_arguments(arguments):
    """MODEL=WEIGHTS pairs, --batches=1,256 and --rounds=3 → ([(key, path)], [batch], rounds)."""
    batches, rounds = [1, 256], ROUNDS
    pairs = []
    for arg in arguments:
        if arg.startswith("--batches="):
            batches = [int(b) for b in arg.split("=", 1)[1].split(",")]
        elif arg.startswith("--rounds="):
            rounds = int(arg.split("=", 1)[1])
        else:
            pairs.append(arg.split("=", 1))
    return pairs, batches, rounds


def cells(pairs, batches):
    """The timed cells: (key, pass, batch, call, input, check) per model, pass and batch size;
    check is the pass's max |difference| from the fixture outputs in the weights file."""
    torch.manual_seed(0)
    result = []
    for key, path in pairs:
        tensors = load_file(path)
        weights = {k[2:]: v for k, v in tensors.items() if k.startswith("w.")} if key not in EXAMPLE_SHAPES else tensors
        log_prob, sample = BUILDERS[key](weights)
        with torch.inference_mode():
            checks = {"log_prob": example_check(key, log_prob)} if key in EXAMPLE_SHAPES else {}
            if log_prob and "x" in tensors and "log_prob" in tensors:
                checks["log_prob"] = (log_prob(tensors["x"]) - tensors["log_prob"]).abs().max().item()
            reference = FIXTURE_SAMPLE.get(key, "sample")
            if "noise" in tensors and reference in tensors:
                drawn = sample(tensors["noise"])
                checks["sample"] = (drawn - tensors[reference].reshape(drawn.shape)).abs().max().item()
            if key in EXAMPLE_SHAPES:
                shape, noise_shape = EXAMPLE_SHAPES[key]
            else:
                shape = tuple(tensors["x"].shape[1:]) if "x" in tensors else None
                noise_shape = tuple(tensors["noise"].shape[1:])
            for batch in batches:
                for name, call, arg in (("log_prob", log_prob, shape), ("sample", sample, noise_shape)):
                    if call is None or arg is None:
                        continue
                    x = torch.randn(batch, *arg) * (0.5 if name == "log_prob" else EXAMPLE_TEMPERATURES.get(key, 1.0))
                    if name == "log_prob" and key in EXAMPLE_CHECKS:
                        x = example_held_out(key)[:batch]
                    result.append((key, name, batch, call, x, checks.get(name)))
    return result


def best_of_rounds(calls, set_threads, rounds):
    """calls[i](threads) → (callable, argument); `rounds` rounds over all cells, 1 and 2 threads
    each; per cell the (median over rounds, threads) of the faster thread count."""
    times = {}  # (cell index, threads) -> round values
    for _ in range(rounds):
        for i, prepare in enumerate(calls):
            for threads in (1, 2):
                set_threads(threads)
                call, arg = prepare(threads)
                times.setdefault((i, threads), []).append(median_seconds(call, arg))
    return [min((statistics.median(times[(i, n)]), n) for n in (1, 2)) for i in range(len(calls))]


def main():
    pairs, batches, rounds = parse_arguments(sys.argv[1:])
    timed = cells(pairs, batches)
    with torch.inference_mode():
        best = best_of_rounds([lambda threads, c=c: (c[3], c[4]) for c in timed], torch.set_num_threads, rounds)
    for (key, name, batch, _, _, check), (t, threads) in zip(timed, best):
        print(json.dumps({"model": key, "pass": name, "batch": batch, "us": t * 1e6,
                          "threads": threads, "check": check}), flush=True)


if __name__ == "__main__":
    main()
