#!/usr/bin/env bash
# `make bench`: speed of the seed CNN, slimbench next to PyTorch's Python API, measured
# one after the other in one invocation on this machine, with medians and ratios:
#   - one MNIST training epoch (batch 32, Adam, 2 threads), 3 seeds each, median;
#   - batch-1 latency over the 10,000 test images after 500 warm-up inferences, p50.
# Usage: scripts/bench.sh [DATA_DIR]   (default ../shared/data; needs DATA_DIR/mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-../shared/data}"
PY="$(readlink -f .torch)/../../../../bin/python"

run_dir=$(cargo run --quiet -p slimbench -- --quiet run pipelines/bench-seed.yaml --data-dir "$DATA_DIR" --force \
  | sed -n 's/^results: *//p')
ref=$("$PY" scripts/bench_pytorch.py "$DATA_DIR" 2>/dev/null)

"$PY" - "$run_dir" "$ref" <<'PYCODE'
import csv, json, statistics, sys
run_dir, ref = sys.argv[1], json.loads(sys.argv[2])
rows = list(csv.DictReader(open(f"{run_dir}/metrics.csv")))
ours_epoch = statistics.median(float(r["train_time_s"]) for r in rows)
ours_p50 = float(rows[0]["latency_p50_us"])
ours_acc = [round(float(r["accuracy"]), 4) for r in rows]
print(f"seed CNN on MNIST, {ref['threads']} threads ({run_dir})")
print(f"{'':34}{'slimbench':>12}{'PyTorch (Python)':>18}{'ratio':>8}")
print(f"{'epoch, batch 32, median of 3 (s)':34}{ours_epoch:12.2f}{ref['epoch_s_median']:18.2f}{ref['epoch_s_median'] / ours_epoch:7.2f}x")
print(f"{'batch-1 latency p50 (us)':34}{ours_p50:12.1f}{ref['latency_p50_us']:18.1f}{ref['latency_p50_us'] / ours_p50:7.2f}x")
print(f"{'batch-1 latency p90 (us)':34}{float(rows[0]['latency_p90_us']):12.1f}{ref['latency_p90_us']:18.1f}")
print(f"{'test accuracy after 1 epoch':34}{str(ours_acc):>12}  {[round(a, 4) for a in ref['accuracy']]}")
PYCODE
