"""PyTorch (Python, eager) reference for `make bench-int8`: an MLP 784-2048-2048-10 in
fp32 and after `torch.ao.quantization.quantize_dynamic` (int8 linear layers on fbgemm),
timed the way slimbench's speedup check times its forms: interleaved rounds, batch 1 on
single test-like images and batches of 64 and 512, medians over all rounds.

Usage: python bench_int8_pytorch.py [--threads 2] [--rounds 10]
Prints one JSON object: {"threads", "p50_us": {"fp32": {"1": .., "64": .., "512": ..},
"int8": {...}}, "speedup": {"1": .., ...}}. Needs only torch.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fp32 = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10)
    ).eval()
    int8 = torch.ao.quantization.quantize_dynamic(fp32, {nn.Linear}, dtype=torch.qint8)
    models = {"fp32": fp32, "int8": int8}
    # Per batch size: iterations per round (batch 1 is cheap and noisy, so more of it).
    plan = {1: 200, 64: 5, 512: 2}
    inputs = {b: torch.rand(b, 1, 28, 28) for b in plan}
    samples = {m: {b: [] for b in plan} for m in models}
    with torch.inference_mode():
        for m in models.values():  # warm-up
            for b, x in inputs.items():
                for _ in range(3):
                    m(x)
        names = list(models)
        for r in range(args.rounds):
            for k in range(len(names)):
                name = names[(k + r) % len(names)]
                for b, n in plan.items():
                    for _ in range(n):
                        t = time.perf_counter()
                        models[name](inputs[b])
                        samples[name][b].append((time.perf_counter() - t) * 1e6)
    p50 = {m: {str(b): statistics.median(v) for b, v in s.items()} for m, s in samples.items()}
    speedup = {b: p50["fp32"][b] / p50["int8"][b] for b in p50["fp32"]}
    print(json.dumps({"threads": args.threads, "p50_us": p50, "speedup": speedup}))


if __name__ == "__main__":
    main()
