#!/usr/bin/env bash
# `make bench-int8`: int8 dynamic quantization of an MLP 784-2048-2048-10, slimbench
# (pipelines/mlp-int8.yaml: fp32, int8-dynamic and int8-static timed side by side by the
# speedup check) next to PyTorch's own quantize_dynamic, one after the other in one
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
metrics = {r["variant"]: r for r in csv.DictReader(open(f"{run_dir}/metrics.csv"))}
speed = list(csv.DictReader(open(f"{run_dir}/speedup.csv")))
fp32 = metrics["train"]
print(f"MLP 784-2048-2048-10 on MNIST, {ref['threads']} threads ({run_dir})")
for v in ("int8", "fp16-dynamic"):
    if v not in metrics:
        continue
    m = metrics[v]
    print(f"\n{v}: accuracy {float(m['accuracy']):.4f} (fp32 {float(fp32['accuracy']):.4f}), "
          f"file {int(m['file_size_bytes']) / int(fp32['file_size_bytes']):.3f}x fp32")
    by_batch = {}
    for r in speed:
        if r["variant"] == v and r["form"] == "materialized":
            by_batch[r["batch_size"]] = float(r["speedup"])
    # PyTorch's quantize_dynamic reference is int8: only that row has a counterpart.
    ref_label = "PyTorch quantize_dynamic" if v == "int8" else ""
    print(f"{'batch':>8}{'slimbench':>12}{ref_label:>27}")
    for b in ("1", "64", "512"):
        ours = by_batch.get(b)
        ours_s = f"{ours:.2f}x" if ours else "-"
        theirs_s = f"{ref['speedup'][b]:.2f}x" if v == "int8" and b in ref["speedup"] else ""
        print(f"{b:>8}{ours_s:>12}{theirs_s:>27}")
PYCODE
