"""torch.compile timings of the reference models on the weights Flowc's benchmark uses, in the
same run as Flowc's (opt-in: flowc-bench runs it when FLOWC_BENCH_TORCH_COMPILE=1, as it adds
minutes of compilation: TarFlow's decoding loop alone takes ~3 minutes per batch size).

  python3 Benchmarks/torch_compile_peer.py MODEL=WEIGHTS.safetensors ... [--batches=1,256] [--rounds=3]

Each cell of pytorch_eager.py (the same PyTorch ports and inputs) is compiled with
torch.compile(dynamic=False) and the default inductor backend on one thread, as the peers' run of
results-peers.md ("compile 1t": inductor's generated loops keep the thread count they were
compiled with), and checked against eager on the timed input ("check": max |compiled − eager|).
Timing as pytorch_eager.py: 3 rounds (--rounds) of 3 warm-up calls then the median of calls until
0.3 s have passed; the median over rounds. A cell that fails to compile is left out (its error on
stderr). Prints one JSON object per line: model, pass, batch, us, threads, check, compile_s.
"""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_eager  # noqa: E402


def main():
    pairs, batches, rounds = pytorch_eager.parse_arguments(sys.argv[1:])
    torch.set_num_threads(1)
    prepared = []
    for key, name, batch, call, x, _ in pytorch_eager.cells(pairs, batches):
        compiled = torch.compile(call, dynamic=False)
        try:
            with torch.inference_mode():
                start = time.perf_counter()
                result = compiled(x)
                seconds = time.perf_counter() - start
                check = (result - call(x)).abs().max().item()
        except Exception as error:  # noqa: BLE001 (a peer that cannot compile a cell: reported, not fatal)
            print(f"torch.compile failed on {key} {name} batch {batch}: {error}", file=sys.stderr)
            continue
        prepared.append(((key, name, batch), compiled, x, check, seconds))
    times = [[] for _ in prepared]
    with torch.inference_mode():
        for _ in range(rounds):
            for i, (_, compiled, x, _, _) in enumerate(prepared):
                times[i].append(pytorch_eager.median_seconds(compiled, x))
    for ((key, name, batch), _, _, check, seconds), t in zip(prepared, times):
        print(json.dumps({"model": key, "pass": name, "batch": batch, "us": statistics.median(t) * 1e6,
                          "threads": 1, "check": check, "compile_s": seconds}), flush=True)


if __name__ == "__main__":
    main()
