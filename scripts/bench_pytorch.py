"""PyTorch (Python, eager) reference for `make bench`: the same seed CNN, the same
training (1 epoch of MNIST, Adam 1e-3, batch 32, 2 threads, 3 seeds) and the same
batch-1 latency measurement (warm-up, then one timed forward per test image), so that
slimbench's figures can be quoted side by side with PyTorch's from one run.

Usage: python bench_pytorch.py DATA_DIR [--threads 2] [--seeds 3]
Prints one JSON object. Needs only torch (the venv scripts/setup-torch.sh makes).
"""
import argparse
import gzip
import json
import statistics
import struct
import time
from pathlib import Path

import torch
import torch.nn as nn


def read_idx(path: Path) -> torch.Tensor:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


def load(data_dir: Path, split: str):
    def find(stem):
        for name in (stem + ".gz", stem):
            if (data_dir / "mnist" / name).exists():
                return data_dir / "mnist" / name
        raise SystemExit(f"missing {stem} under {data_dir / 'mnist'}")

    prefix = "train" if split == "train" else "t10k"
    x = read_idx(find(f"{prefix}-images-idx3-ubyte")).float().div_(255.0).unsqueeze(1)
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte")).long()
    return x, y


def seed_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 12, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12 * 13 * 13, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, ytr = load(args.data_dir, "train")
    xte, yte = load(args.data_dir, "test")

    epochs, accs, models = [], [], []
    for seed in range(1, args.seeds + 1):
        torch.manual_seed(seed)
        model = seed_cnn()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        order = torch.randperm(len(xtr))
        t = time.perf_counter()
        model.train()
        for i in range(0, len(xtr), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        epochs.append(time.perf_counter() - t)
        model.eval()
        with torch.inference_mode():
            accs.append((model(xte).argmax(1) == yte).float().mean().item())
        models.append(model)

    model = models[0]
    samples = []
    with torch.inference_mode():
        for i in range(args.warmup):
            model(xte[i : i + 1])
        for i in range(len(xte)):
            x = xte[i : i + 1]
            t = time.perf_counter()
            model(x)
            samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, int(p / 100 * len(samples)))]
    print(json.dumps({
        "engine": f"pytorch {torch.__version__} (python, eager)",
        "threads": torch.get_num_threads(),
        "epoch_s": epochs,
        "epoch_s_median": statistics.median(epochs),
        "accuracy": accs,
        "latency_iters": len(samples),
        "latency_p50_us": q(50),
        "latency_p90_us": q(90),
        "latency_p99_us": q(99),
    }))


if __name__ == "__main__":
    main()
