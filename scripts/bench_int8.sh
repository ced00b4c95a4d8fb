#!/usr/bin/env bash
# `make bench-int8`: int8 dynamic quantization of an MLP 784-2048-2048-10, slimbench
# (pipelines/mlp-int8.yaml: fp32, int8-dynamic and fp16-dynamic timed side by side by the
# speedup check, on libtorch and ONNX Runtime) next to PyTorch's own quantize_dynamic, one after the other in one
# invocation, speedups over each one's own fp32 at batch 1, 64 and 512.
# Usage: scripts/bench_int8.sh [DATA_DIR]   (default ../shared/data; needs DATA_DIR/mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-../shared/data}"
PY="$(readlink -f .torch)/../../../../bin/python"

# Training is cached; the measurement is redone every time.
run_dir=$(cargo run --quiet -p slimbench -- --quiet run pipelines/mlp-int8.yaml --data-dir "$DATA_DIR" --force-stage eval \
  | sed -n 's/^results: *//p')
ref=$("$PY" scripts/bench_int8_pytorch.py 2>/dev/null)

"$PY" - "$run_dir" "$ref" <<'PYCODE'
import csv, json, sys
run_dir, ref = sys.argv[1], json.loads(sys.argv[2])
backend = lambda r: r.get("backend") or "libtorch"
metrics = {(r["variant"], backend(r)): r for r in csv.DictReader(open(f"{run_dir}/metrics.csv"))}
speed = list(csv.DictReader(open(f"{run_dir}/speedup.csv")))
backends = list(dict.fromkeys(backend(r) for r in speed)) or ["libtorch"]
fp32 = metrics[("train", "libtorch")]
print(f"MLP 784-2048-2048-10 on MNIST, {ref['threads']} threads ({run_dir})")
print("speedup of the stored variant over the fp32 model on the same backend, median [95% interval];")
print("PyTorch's quantize_dynamic over its own fp32, medians of interleaved rounds")
for v in ("int8", "fp16-dynamic"):
    if (v, "libtorch") not in metrics:
        continue
    m = metrics[(v, "libtorch")]
    acc = "  ".join(f"{b} {float(metrics[(v, b)]['accuracy']):.4f}" for b in backends if (v, b) in metrics)
    print(f"\n{v}: accuracy {acc} (fp32 {float(fp32['accuracy']):.4f}), "
          f"file {int(m['file_size_bytes']) / int(fp32['file_size_bytes']):.3f}x fp32")
    cell = {}
    for r in speed:
        if r["variant"] == v and r["form"] == "materialized":
            flag = "" if r.get("validity", "valid") == "valid" else " INVALID"
            cell[(backend(r), r["batch_size"])] = (
                f"{float(r['speedup']):.2f}x [{float(r['speedup_lo']):.2f}, {float(r['speedup_hi']):.2f}]{flag}"
            )
    # PyTorch's quantize_dynamic reference is int8: only that row has a counterpart.
    ref_label = "PyTorch quantize_dynamic" if v == "int8" else ""
    print(f"{'batch':>8}" + "".join(f"{b:>24}" for b in backends) + f"{ref_label:>27}")
    for b in ("1", "64", "512"):
        theirs = f"{ref['speedup'][b]:.2f}x" if v == "int8" and b in ref["speedup"] else ""
        print(f"{b:>8}" + "".join(f"{cell.get((k, b), '-'):>24}" for k in backends) + f"{theirs:>27}")
PYCODE
