"""PyTorch eager timings of the reference models on the same weights Flowc's benchmark uses.

  python3 Benchmarks/pytorch_eager.py MODEL=WEIGHTS.safetensors ... [--batches 1,256]

Run by `make bench` (flowc-bench) when torch is importable; never a build or test dependency.
Each model is written here in plain PyTorch from ../shared/baselines/MODELS.md (zuko's own
classes for a, b, c), loads the weights file Flowc compiled, checks itself against the fixture
outputs stored in that file when present (max |difference| printed as "check"), then times
log_prob and sample at each batch size under torch.inference_mode, as the peers' runs of
results-peers.md were: 3 rounds over all cells, each cell 3 warm-up calls then the median of
calls until 0.3 s have passed (at least 5), with 1 and with 2 threads; a cell's time is the
median of its 3 round values, at the faster thread count. Prints one JSON object per line:
model, pass, batch, us, threads, check.
"""
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def normal_log_prob(z):
    return (-0.5 * z * z - HALF_LOG_2PI).flatten(1).sum(1)


def linear(w, name, x):
    return F.linear(x, w[name + ".weight"], w[name + ".bias"])


def mlp(w, prefix, x, layers, activation):
    """Linear (activation Linear)^layers with names prefix.0, prefix.2, ... (nn.Sequential)."""
    for i in range(layers):
        x = activation(linear(w, f"{prefix}.{2 * i}", x))
    return linear(w, f"{prefix}.{2 * layers}", x)


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


def glow(w):
    """MODELS.md d: squeeze, then ActNorm → LU 1×1 convolution → affine coupling per step."""
    steps = len({k.split(".")[1] for k in w if k.startswith("steps.")})
    mats, inverses = [], []
    for s in range(steps):
        p = f"steps.{s}.invconv."
        c = w[p + "w_p"].shape[0]
        lower = torch.tril(w[p + "w_l"], -1) + torch.eye(c)
        upper = torch.triu(w[p + "w_u"], 1) + torch.diag(w[p + "sign_s"] * w[p + "log_s"].exp())
        m = w[p + "w_p"] @ lower @ upper
        mats.append(m.reshape(c, c, 1, 1))
        inverses.append(torch.inverse(m).reshape(c, c, 1, 1))   # folded once, as a deployed model would

    def net(s, xa):
        p = f"steps.{s}.coupling.net."
        h = F.relu(F.conv2d(xa, w[p + "0.weight"], w[p + "0.bias"], padding=1))
        h = F.relu(F.conv2d(h, w[p + "2.weight"], w[p + "2.bias"]))
        h = F.conv2d(h, w[p + "4.weight"], w[p + "4.bias"], padding=1)
        return h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2)

    def log_prob(x):
        b, c, hh, ww = x.shape
        h = x.reshape(b, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, hh // 2, ww // 2)
        area = h.shape[2] * h.shape[3]
        logdet = torch.zeros(b)
        for s in range(steps):
            p = f"steps.{s}."
            h = (h + w[p + "actnorm.loc"]) * w[p + "actnorm.logs"].exp()
            h = F.conv2d(h, mats[s])
            half = h.shape[1] // 2
            shift, scale = net(s, h[:, :half])
            h = torch.cat([h[:, :half], (h[:, half:] + shift) * scale], 1)
            logdet = logdet + area * (w[p + "actnorm.logs"].sum() + w[p + "invconv.log_s"].sum()) + scale.log().flatten(1).sum(1)
        return normal_log_prob(h) + logdet

    def sample(e):
        h = e
        for s in reversed(range(steps)):
            p = f"steps.{s}."
            half = h.shape[1] // 2
            shift, scale = net(s, h[:, :half])
            h = torch.cat([h[:, :half], h[:, half:] / scale - shift], 1)
            h = F.conv2d(h, inverses[s])
            h = h * (-w[p + "actnorm.logs"]).exp() - w[p + "actnorm.loc"]
        b, c4, hh, ww = h.shape
        return h.reshape(b, c4 // 4, 2, 2, hh, ww).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * hh, 2 * ww)

    return log_prob, sample


def velocity_mlp(w):
    layers = len([k for k in w if k.startswith("main.") and k.endswith(".weight")]) - 1
    return lambda x: mlp(w, "main", x, layers, F.silu)


def flow_matching(w, steps=8):
    """MODELS.md e: v(x, t) = main(cat(x, t)); Euler from noise (t = 0) to data (t = 1)."""
    v = velocity_mlp(w)

    def sample(x):
        dt = 1.0 / steps
        for i in range(steps):
            x = x + dt * v(torch.cat([x, torch.full((len(x), 1), i * dt)], 1))
        return x

    return None, sample


def flow_matching_rk4(w, steps=8):
    """MODELS.md e with torchdiffeq's "rk4" step (Runge-Kutta 3/8 rule), 8 steps from t = 0 to 1."""
    v = velocity_mlp(w)

    def f(t, x):
        return v(torch.cat([x, torch.full((len(x), 1), t)], 1))

    def sample(x):
        dt = 1.0 / steps
        for i in range(steps):
            t = i * dt
            k1 = f(t, x)
            k2 = f(t + dt / 3, x + dt * k1 / 3)
            k3 = f(t + 2 * dt / 3, x + dt * (k2 - k1 / 3))
            k4 = f(t + dt, x + dt * (k1 - k2 + k3))
            x = x + dt * (k1 + 3 * (k2 + k3) + k4) / 8
        return x

    return None, sample


def meanflow(w):
    """MODELS.md f: one step x = e − u(e, r = 0, t = 1), u = main(cat(z, emb(t), emb(t − r)))."""
    u = velocity_mlp(w)
    half = (w["main.0.weight"].shape[1] - w["main.6.bias"].shape[0]) // 4
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)

    def embed(s):
        a = s * freqs
        return torch.cat([torch.cos(a), torch.sin(a)], 1)

    def sample(e):
        ones = torch.ones(len(e), 1)
        return e - u(torch.cat([e, embed(ones), embed(ones)], 1))

    return None, sample


def tarflow(w):
    """MODELS.md g: apple/ml-tarflow's Model; sampling decodes token by token with a KV cache."""
    blocks = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    layers = len({k.split(".")[3] for k in w if k.startswith("blocks.0.attn_blocks.")})
    channels = w["blocks.0.proj_in.weight"].shape[0]
    heads, size = channels // 64, 64

    def layer_norm(p, h):
        return F.layer_norm(h, (channels,), w[p + ".weight"], w[p + ".bias"], 1e-5)

    def split_heads(t):
        return t.reshape(t.shape[0], t.shape[1], heads, size).transpose(1, 2)

    def layer(p, h, cache=None):
        q, k, v = linear(w, p + "attention.qkv", layer_norm(p + "attention.norm", h)).chunk(3, dim=2)
        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        if cache is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            cache.append((k, v))
            k = torch.cat([c[0] for c in cache], 2) if len(cache) > 1 else k
            v = torch.cat([c[1] for c in cache], 2) if len(cache) > 1 else v
            o = F.scaled_dot_product_attention(q, k, v)
        h = h + linear(w, p + "attention.proj", o.transpose(1, 2).reshape(h.shape[0], h.shape[1], channels))
        return h + mlp(w, p + "mlp.main", layer_norm(p + "mlp.norm", h), 1, lambda a: F.gelu(a))

    def patchify(x):
        return F.unfold(x, 2, stride=2).transpose(1, 2)

    def log_prob(x):
        h = patchify(x)
        total = 0
        for b in range(blocks):
            p = f"blocks.{b}."
            if b % 2:
                h = h.flip(1)
            pe = w[p + "pos_embed"].flip(0) if b % 2 else w[p + "pos_embed"]
            a = linear(w, p + "proj_in", h) + pe
            for l in range(layers):
                a = layer(p + f"attn_blocks.{l}.", a)
            out = linear(w, p + "proj_out", a)
            out = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], 1)
            xa, xb = out.chunk(2, dim=2)
            h = (h - xb) * torch.exp(-xa)
            if b % 2:
                h = h.flip(1)
            total = total - xa.mean(dim=[1, 2])
        return normal_log_prob(h) + total * h.shape[1] * h.shape[2]

    def sample(e):
        h = e * w["var"].sqrt()
        for b in reversed(range(blocks)):
            p = f"blocks.{b}."
            x = h.flip(1).clone() if b % 2 else h.clone()
            pe = w[p + "pos_embed"].flip(0) if b % 2 else w[p + "pos_embed"]
            caches = [[] for _ in range(layers)]
            for i in range(x.shape[1] - 1):
                a = linear(w, p + "proj_in", x[:, i:i + 1]) + pe[i:i + 1]
                for l in range(layers):
                    a = layer(p + f"attn_blocks.{l}.", a, caches[l])
                xa, xb = linear(w, p + "proj_out", a).chunk(2, dim=2)
                x[:, i + 1:i + 2] = x[:, i + 1:i + 2] * torch.exp(xa) + xb
            h = x.flip(1) if b % 2 else x
        return F.fold(h.transpose(1, 2), (8, 8), 2, stride=2)

    return log_prob, sample


BUILDERS = {
    "a_nsf": lambda w: zuko_flow(w, "nsf"), "b_maf": lambda w: zuko_flow(w, "maf"),
    "c_realnvp2": lambda w: zuko_flow(w, "realnvp"), "c_realnvp64": lambda w: zuko_flow(w, "realnvp"),
    "d_glow": glow, "e_fm": flow_matching, "e_fm_rk4": flow_matching_rk4, "f_meanflow": meanflow, "g_tarflow": tarflow,
}
FIXTURE_SAMPLE = {"e_fm": "sample_euler", "e_fm_rk4": "sample_rk4", "f_meanflow": "sample_1step"}


ROUNDS = 3


def median_seconds(call, arg):
    for _ in range(3):
        call(arg)
    times, budget = [], time.perf_counter() + 0.3
    while len(times) < 5 or (time.perf_counter() < budget and len(times) < 200):
        start = time.perf_counter()
        call(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_arguments(arguments):
    """MODEL=WEIGHTS pairs and --batches=1,256 → ([(key, path)], [batch])."""
    batches = [1, 256]
    pairs = []
    for arg in arguments:
        if arg.startswith("--batches="):
            batches = [int(b) for b in arg.split("=", 1)[1].split(",")]
        else:
            pairs.append(arg.split("=", 1))
    return pairs, batches


def cells(pairs, batches):
    """The timed cells: (key, pass, batch, call, input, check) per model, pass and batch size;
    check is the pass's max |difference| from the fixture outputs in the weights file."""
    torch.manual_seed(0)
    result = []
    for key, path in pairs:
        tensors = load_file(path)
        weights = {k[2:]: v for k, v in tensors.items() if k.startswith("w.")}
        log_prob, sample = BUILDERS[key](weights)
        with torch.inference_mode():
            checks = {}
            if log_prob and "x" in tensors and "log_prob" in tensors:
                checks["log_prob"] = (log_prob(tensors["x"]) - tensors["log_prob"]).abs().max().item()
            reference = FIXTURE_SAMPLE.get(key, "sample")
            if "noise" in tensors and reference in tensors:
                drawn = sample(tensors["noise"])
                checks["sample"] = (drawn - tensors[reference].reshape(drawn.shape)).abs().max().item()
            shape = tuple(tensors["x"].shape[1:]) if "x" in tensors else None
            noise_shape = tuple(tensors["noise"].shape[1:])
            for batch in batches:
                for name, call, arg in (("log_prob", log_prob, shape), ("sample", sample, noise_shape)):
                    if call is None or arg is None:
                        continue
                    x = torch.randn(batch, *arg) * (0.5 if name == "log_prob" else 1.0)
                    result.append((key, name, batch, call, x, checks.get(name)))
    return result


def best_of_rounds(calls, set_threads):
    """calls[i](threads) → (callable, argument); 3 rounds over all cells, 1 and 2 threads each;
    per cell the (median over rounds, threads) of the faster thread count."""
    times = {}  # (cell index, threads) -> round values
    for _ in range(ROUNDS):
        for i, prepare in enumerate(calls):
            for threads in (1, 2):
                set_threads(threads)
                call, arg = prepare(threads)
                times.setdefault((i, threads), []).append(median_seconds(call, arg))
    return [min((statistics.median(times[(i, n)]), n) for n in (1, 2)) for i in range(len(calls))]


def main():
    pairs, batches = parse_arguments(sys.argv[1:])
    timed = cells(pairs, batches)
    with torch.inference_mode():
        best = best_of_rounds([lambda threads, c=c: (c[3], c[4]) for c in timed], torch.set_num_threads)
    for (key, name, batch, _, _, check), (t, threads) in zip(timed, best):
        print(json.dumps({"model": key, "pass": name, "batch": batch, "us": t * 1e6,
                          "threads": threads, "check": check}), flush=True)


if __name__ == "__main__":
    main()
