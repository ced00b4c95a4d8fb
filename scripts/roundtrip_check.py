#!/usr/bin/env python3
"""Round trip of `slimbench export`: load every exported file in the runtime it is meant
for and compare its logits with slimbench's own.

    ~/.cache/slimbench/venv-torch-2.11.0/bin/python scripts/roundtrip_check.py CHECKS.json REPORT.json

CHECKS.json (written by crates/cli/tests/integration/export.rs):

    {"input": "inputs.f32", "shape": [N, C, H, W], "labels": "labels.i64",
     "checks": [{"variant": "cnn", "format": "onnx", "file": ".../model.onnx",
                 "reference": "cnn.kernel.f32", "compare": "close" | "argmax" | "accuracy",
                 "step": 0.035, "also": {"name": "kernel", "reference": "..."}}, ...]}

Raw files are little-endian float32, row-major (labels int64). Each `.onnx` is checked with
`onnx.checker.check_model(full_check=True)` and run by ONNX Runtime (CPU, its default
graph optimisations: QDQ fusion); each `.pt` is loaded with `torch.jit.load`. A check
passes when

* `close`: max |logits - reference| <= 1e-4 * max(1, max |reference|) (absolute 1e-4
  for logits up to 1 in magnitude, relative to the largest logit above that);
* `argmax`: the predicted class is the same on at least 99.9% of the images, and, when
  the check gives the `step` of the output's int8 grid (static int8), no logit differs
  by more than one step (two int8 runtimes may round a value to neighbouring steps);
* `accuracy`: the accuracy on the labels is within 2 points of the reference's (for
  deep int8 graphs, where one-step rounding differences at each layer add up).

ONNX files checked by `argmax` or `accuracy` (int8) are also run by ONNX Runtime with
its graph optimisations disabled: the file's own arithmetic (QDQ simulated in fp32,
fp32 biases, no fused int8 kernels) must give the reference's argmax on 99.9% of the
images as well.

The report lists, per check, the max absolute difference, the largest reference logit,
the argmax agreement, the op types ONNX Runtime runs after its optimisations, and
whether it passed; the exit code is 1 when any check failed.
"""

import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch

CLOSE = 1e-4
ARGMAX = 0.999
ACCURACY = 0.02


def read_f32(path, shape):
    return np.fromfile(path, dtype="<f4").reshape(shape)


def run_onnx(path, x, optimize=True):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as d:
        so.optimized_model_filepath = os.path.join(d, "optimized.onnx")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        ops = sorted({n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node})
    y = sess.run(["logits"], {"input": x})[0]
    return y, ops


def run_torchscript(path, x):
    m = torch.jit.load(path, map_location="cpu")
    m.eval()
    with torch.no_grad():
        y = m(torch.from_numpy(x))
    return y.numpy(), []


def compare(y, ref):
    diff = float(np.abs(y.astype(np.float64) - ref).max())
    scale = float(np.abs(ref).max())
    agree = float((y.argmax(1) == ref.argmax(1)).mean())
    return diff, scale, agree


def main():
    checks_path, report_path = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    spec = json.load(open(checks_path))
    base = os.path.dirname(os.path.abspath(checks_path))
    shape = spec["shape"]
    x = read_f32(os.path.join(base, spec["input"]), shape)
    labels = np.fromfile(os.path.join(base, spec["labels"]), dtype="<i8")
    report = []
    for c in spec["checks"]:
        run = run_onnx if c["format"] == "onnx" else run_torchscript
        entry = {"variant": c["variant"], "format": c["format"], "compare": c["compare"]}
        try:
            y, ops = run(c["file"], x)
            ref = read_f32(os.path.join(base, c["reference"]), (shape[0], -1))
            if y.shape != ref.shape:
                raise ValueError(f"logits {y.shape}, slimbench's {ref.shape}")
            diff, scale, agree = compare(y, ref)
            acc, ref_acc = float((y.argmax(1) == labels).mean()), float((ref.argmax(1) == labels).mean())
            if c["compare"] == "close":
                ok = diff <= CLOSE * max(1.0, scale)
            elif c["compare"] == "argmax":
                ok = agree >= ARGMAX and ("step" not in c or diff <= 1.001 * c["step"])
            else:
                ok = abs(acc - ref_acc) <= ACCURACY
            entry.update(max_abs_diff=diff, max_abs_ref=scale, argmax_agreement=agree, ops=ops, ok=bool(ok))
            entry.update(accuracy=acc, reference_accuracy=ref_acc)
            if c["format"] == "onnx" and c["compare"] != "close":
                plain, _ = run_onnx(c["file"], x, optimize=False)
                entry["unoptimized_argmax_agreement"] = compare(plain, ref)[2]
                ok = ok and entry["unoptimized_argmax_agreement"] >= ARGMAX
                entry["ok"] = bool(ok)
            if "step" in c:
                entry["steps"] = diff / c["step"]
            if "also" in c:
                also = read_f32(os.path.join(base, c["also"]["reference"]), (shape[0], -1))
                d, _, a = compare(y, also)
                entry["also"] = {"name": c["also"]["name"], "max_abs_diff": d, "argmax_agreement": a}
        except Exception as e:  # a file that does not load is a failed check, with the reason
            entry.update(ok=False, error=f"{type(e).__name__}: {e}")
        report.append(entry)
        extra = f"  vs {entry['also']['name']}: argmax {entry['also']['argmax_agreement']:.4f}" if "also" in entry else ""
        if "steps" in entry:
            extra += f"  ({entry['steps']:.2f} output step)"
        if "unoptimized_argmax_agreement" in entry:
            extra += f"  unoptimized ORT: argmax {entry['unoptimized_argmax_agreement']:.4f}"
        if "accuracy" in entry:
            extra += f"  accuracy {entry['accuracy']:.4f} (slimbench {entry['reference_accuracy']:.4f})"
        if "error" in entry:
            print(f"FAIL {c['variant']:<16} {c['format']:<11} {entry['error']}")
        else:
            print(
                f"{'ok  ' if entry['ok'] else 'FAIL'} {c['variant']:<16} {c['format']:<11} {c['compare']:<6} "
                f"max|diff| {entry['max_abs_diff']:.2e} (max|logit| {entry['max_abs_ref']:.2f})  "
                f"argmax {entry['argmax_agreement']:.4f}{extra}"
            )
    json.dump(report, open(report_path, "w"), indent=1)
    sys.exit(0 if all(e["ok"] for e in report) else 1)


if __name__ == "__main__":
    main()
