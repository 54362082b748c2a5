"""ONNX Runtime timings of the reference models on the same weights Flowc's benchmark uses, in
the same run as Flowc's, so that the ratio against the peer is measured side by side.

  python3 Benchmarks/onnxruntime_peer.py MODEL=WEIGHTS.safetensors ... [--batches=1,256] [--rounds=3]

Run by `make bench` (flowc-bench) when onnxruntime and onnxscript are importable; never a build
or test dependency. Each cell of pytorch_eager.py (the same PyTorch port of each model) is
exported with torch.onnx.export (the dynamo exporter, static shapes: one graph per batch size)
and run on the CPU execution provider with graph optimisations on (ORT_ENABLE_ALL), as the
peers' run of results-peers.md did. Exports are cached in $TMPDIR/flowc-bench-onnx (keyed by
model, pass, batch and a hash of the weights file): TarFlow's and the NSF's decoding loops take
~50 s each to export. Timing as pytorch_eager.py: 3 rounds (--rounds), each cell 3
warm-up calls then the median of calls until 0.3 s have passed; intra-op threads 1 and 2, the
faster. Prints one JSON object per line: model, pass, batch, us, threads, check (max |ORT −
eager| on the timed input).
"""
import contextlib
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import onnxruntime
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_eager  # noqa: E402


class Wrapped(torch.nn.Module):
    """A pass of pytorch_eager.py (a closure over the weights) as a module to export."""

    def __init__(self, call):
        super().__init__()
        self.call = call

    def forward(self, x):
        return self.call(x)


def exported(key, path, name, call, x):
    """The ONNX file of one cell, exported on first use."""
    with open(path, "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()[:16]
    directory = os.path.join(tempfile.gettempdir(), "flowc-bench-onnx")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, f"{key}-{name}-{x.shape[0]}-{digest}.onnx")
    if not os.path.exists(target):
        partial = target + ".partial"
        # (x was made in inference mode, which the exporter's tracing cannot use: a clone)
        with contextlib.redirect_stdout(sys.stderr), torch.no_grad():   # the exporter's progress lines
            torch.onnx.export(Wrapped(call).eval(), (x.clone(),), partial, dynamo=True, optimize=True, external_data=False)
        os.replace(partial, target)
    return target


def session(model, threads):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def main():
    pairs, batches, rounds = pytorch_eager.parse_arguments(sys.argv[1:])
    paths = dict(pairs)
    timed = pytorch_eager.cells(pairs, batches)
    prepared, checks = [], []
    for key, name, batch, call, x, _ in timed:
        model = exported(key, paths[key], name, call, x)
        sessions = {threads: session(model, threads) for threads in (1, 2)}
        feed = {sessions[1].get_inputs()[0].name: x.numpy()}
        with torch.inference_mode():
            expected = call(x).numpy()
        checks.append(float(np.abs(sessions[1].run(None, feed)[0] - expected).max()))
        prepared.append(lambda threads, s=sessions, f=feed: ((lambda feed: s[threads].run(None, feed)), f))
    best = pytorch_eager.best_of_rounds(prepared, lambda threads: None, rounds)
    for (key, name, batch, _, _, _), (t, threads), check in zip(timed, best, checks):
        print(json.dumps({"model": key, "pass": name, "batch": batch, "us": t * 1e6,
                          "threads": threads, "check": check}), flush=True)


if __name__ == "__main__":
    main()
