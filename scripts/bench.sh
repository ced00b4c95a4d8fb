#!/usr/bin/env bash
# `make bench`: speed of the seed CNN, slimbench next to PyTorch (Python, eager) and TF
# Lite (XNNPACK), measured one after the other in one invocation on this machine, with
# medians and ratios:
#   - one MNIST training epoch (batch 32, Adam, 2 threads), 3 seeds each, median;
#   - batch-1 latency over the 10,000 test images after 500 warm-up inferences, p50,
#     on each of slimbench's backends (libtorch, onnxruntime, tract), in PyTorch, and
#     in TF Lite with the first seed's weights (scripts/bench_tflite.py).
# TF Lite runs in a venv of its own (tensorflow-cpu + ai-edge-litert, ~700 MB from
# PyPI), created on first use at $SLIMBENCH_TFLITE_VENV (default
# ~/.cache/slimbench/venv-tflite); BENCH_TFLITE=0 leaves it out.
# Usage: scripts/bench.sh [DATA_DIR]   (default ../shared/data; needs DATA_DIR/mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${1:-../shared/data}"
PY="$(readlink -f .torch)/../../../../bin/python"
TFLITE_VENV="${SLIMBENCH_TFLITE_VENV:-$HOME/.cache/slimbench/venv-tflite}"
TF_VERSION=2.21.0
LITERT_VERSION=2.3.0

if [ "${BENCH_TFLITE:-1}" = 1 ] && ! "$TFLITE_VENV/bin/python" -c "import tensorflow, ai_edge_litert" 2>/dev/null; then
  echo "bench: installing tensorflow-cpu==$TF_VERSION and ai-edge-litert into $TFLITE_VENV (once)" >&2
  python3 -m venv "$TFLITE_VENV"
  "$TFLITE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "tensorflow-cpu==$TF_VERSION" "ai-edge-litert==$LITERT_VERSION"
fi

# Nothing else may run while these time: each one waits for the one before.
run_dir=$(cargo run --quiet -p slimbench -- --quiet run pipelines/bench-seed.yaml --data-dir "$DATA_DIR" --force \
  | sed -n 's/^results: *//p')
ref=$("$PY" scripts/bench_pytorch.py "$DATA_DIR" 2>/dev/null)
tflite='null'
if [ "${BENCH_TFLITE:-1}" = 1 ]; then
  model=$(ls "$run_dir"/artifacts/train@seed-1/*.safetensors 2>/dev/null | head -1)
  tflite=$("$TFLITE_VENV/bin/python" scripts/bench_tflite.py "$model" "$DATA_DIR" 2>/dev/null | tail -1)
fi

"$PY" - "$run_dir" "$ref" "$tflite" <<'PYCODE'
import csv, json, statistics, sys
run_dir, ref, tfl = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
rows = list(csv.DictReader(open(f"{run_dir}/metrics.csv")))
backend = lambda r: r.get("backend") or "libtorch"
lt = [r for r in rows if backend(r) == "libtorch" and r["variant"].startswith("train")]
ours_epoch = statistics.median(float(r["train_time_s"]) for r in lt)
ours_acc = [round(float(r["accuracy"]), 4) for r in lt]
first = lt[0]["variant"]
print(f"seed CNN on MNIST, {ref['threads']} threads ({run_dir})")
print(f"{'':40}{'slimbench':>12}{'PyTorch (Python)':>18}{'ratio':>8}")
print(f"{'epoch, batch 32, median of 3 (s)':40}{ours_epoch:12.2f}{ref['epoch_s_median']:18.2f}{ref['epoch_s_median'] / ours_epoch:7.2f}x")
print(f"{'test accuracy after 1 epoch':40}{str(ours_acc):>12}  {[round(a, 4) for a in ref['accuracy']]}")
print(f"\nbatch-1 latency of `{first}`, p50 [95% interval] (us), 10,000 test images")
best = None
for r in rows:
    if r["variant"] != first:
        continue
    p50 = float(r["latency_p50_us"])
    flag = "" if r.get("validity", "valid") == "valid" else f"  INVALID: {r.get('invalid_reason', '')}"
    label = f"slimbench {backend(r)}"
    print(f"  {label:38}{p50:9.1f} [{float(r['latency_p50_lo_us']):.1f}, {float(r['latency_p50_hi_us']):.1f}]  accuracy {float(r['accuracy']):.4f}{flag}")
    if best is None or p50 < best[1]:
        best = (label, p50)
print(f"  {'PyTorch eager (Python)':38}{ref['latency_p50_us']:9.1f}")
if tfl:
    for t in tfl["runs"]:
        label = f"TF Lite {tfl['tensorflow']} XNNPACK, {t['threads']} thread(s)"
        print(f"  {label:38}{t['latency_p50_us']:9.1f}  (with copies in/out {t['call_p50_us']:.1f})  accuracy {t['accuracy']:.4f}")
    b = tfl["best"]["latency_p50_us"]
    verdict = "at or below" if best[1] <= b else "above"
    print(f"\nfastest slimbench backend: {best[0]} {best[1]:.1f} us, {b / best[1]:.2f}x TF Lite's best ({b:.1f} us): {verdict} it")

# The seed CNN's static int8 form against its fp32 model, on each backend and batch size.
speed = [r for r in csv.DictReader(open(f"{run_dir}/speedup.csv"))
         if r["variant"] == "int8-static" and r["form"] == "materialized"]
if speed:
    print("\nint8-static (seed 1) against fp32 on the same backend, speedup [95% interval]")
    faster = []
    for r in speed:
        flag = "" if r.get("validity", "valid") == "valid" else f"  INVALID: {r.get('invalid_reason', '')}"
        label = f"{backend(r)}, batch {r['batch_size']}"
        print(f"  {label:38}{float(r['speedup']):6.2f}x [{float(r['speedup_lo']):.2f}, {float(r['speedup_hi']):.2f}]"
              f"  {r['faster'] or '-':12}  (int8 p50 {float(r['p50_us']):.1f} us){flag}")
        if r["faster"] == "yes":
            faster.append(label)
    print(f"  faster than fp32 on: {'; '.join(faster) if faster else 'no backend at any batch size'}")
PYCODE
