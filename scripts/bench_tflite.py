"""TF Lite (XNNPACK) peer for `make bench`: the seed CNN slimbench trained, with its
own weights, converted to TF Lite and timed at batch 1 the way slimbench times it.

    python bench_tflite.py MODEL.safetensors DATA_DIR [--threads 2] [--warmup 500]

MODEL is a seed-CNN file slimbench wrote (safetensors; read here with numpy, no
slimbench code). The model is rebuilt in Keras (Conv2D 3x3 valid + ReLU, MaxPool 2,
Flatten, Dense) with those weights, the Flatten order turned from PyTorch's
(channel, row, column) to Keras' (row, column, channel), converted with
`tf.lite.TFLiteConverter` (fp32, no quantization) and run by the LiteRT interpreter,
whose default CPU delegate is XNNPACK. Batch-1 latency: after `--warmup` calls, one
timed `invoke()` per test image (the input copied in before the clock starts, as
slimbench's inputs are made before it times), p50/p90 over the 10,000 MNIST test
images, for 1 thread and for `--threads`; `call_p50_us` also counts the copies in and
out (`set_tensor`, `get_tensor`). The accuracy on those images checks that the
weights came across. Prints one JSON object.

Needs tensorflow-cpu and ai-edge-litert (scripts/bench.sh puts them in a venv of
their own, created on first use).
"""
import argparse
import gzip
import json
import os
import struct
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def read_safetensors(path: Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    dtypes = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise SystemExit(f"{path}: tensor {name} is {info['dtype']}; export an fp32 seed-CNN file")
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"]).astype(np.float32)
    return out


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


def mnist_test(data_dir: Path):
    def find(stem):
        for name in (stem + ".gz", stem):
            if (data_dir / "mnist" / name).exists():
                return data_dir / "mnist" / name
        raise SystemExit(f"missing {stem} under {data_dir / 'mnist'}")

    x = read_idx(find("t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)
    return x[:, :, :, None], y  # NHWC


def keras_seed_cnn(weights: dict):
    import tensorflow as tf

    convs = [(k, v) for k, v in weights.items() if v.ndim == 4]
    denses = [(k, v) for k, v in weights.items() if v.ndim == 2]
    if len(convs) != 1 or len(denses) != 1:
        raise SystemExit("expected the seed CNN: one conv and one linear weight")
    (cw_name, cw), (fw_name, fw) = convs[0], denses[0]
    cb = weights[cw_name.replace(".weight", ".bias")]
    fb = weights[fw_name.replace(".weight", ".bias")]
    filters, _, kh, kw = cw.shape
    h = w = (28 - kh + 1) // 2
    inp = tf.keras.Input(shape=(28, 28, 1), batch_size=1)
    x = tf.keras.layers.Conv2D(filters, (kh, kw), activation="relu")(inp)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.Flatten()(x)
    out = tf.keras.layers.Dense(fw.shape[0])(x)
    model = tf.keras.Model(inp, out)
    # PyTorch flattens (c, h, w); Keras (h, w, c).
    fw_hwc = fw.reshape(fw.shape[0], filters, h, w).transpose(0, 2, 3, 1).reshape(fw.shape[0], -1)
    model.layers[1].set_weights([cw.transpose(2, 3, 1, 0), cb])
    model.layers[4].set_weights([fw_hwc.T, fb])
    return model


def time_interpreter(tflite: bytes, x: np.ndarray, y: np.ndarray, threads: int, warmup: int) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    out = it.get_output_details()[0]["index"]
    for i in range(warmup):
        it.set_tensor(inp, x[i % len(x)][None])
        it.invoke()
    times, whole, correct = [], [], 0
    for i in range(len(x)):
        t0 = time.perf_counter()
        it.set_tensor(inp, x[i][None])
        t1 = time.perf_counter()
        it.invoke()
        t2 = time.perf_counter()
        logits = it.get_tensor(out)
        t3 = time.perf_counter()
        times.append((t2 - t1) * 1e6)
        whole.append((t3 - t0) * 1e6)
        correct += int(np.argmax(logits[0]) == y[i])
    times.sort()
    whole.sort()
    return {
        "threads": threads,
        "latency_p50_us": times[len(times) // 2],
        "latency_p90_us": times[int(len(times) * 0.9)],
        # set_tensor + invoke + get_tensor: with the copies in and out.
        "call_p50_us": whole[len(whole) // 2],
        "accuracy": correct / len(x),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=500)
    args = ap.parse_args()
    import tensorflow as tf

    model = keras_seed_cnn(read_safetensors(args.model))
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    x, y = mnist_test(args.data_dir)
    runs = [time_interpreter(tflite, x, y, t, args.warmup) for t in sorted({1, args.threads})]
    best = min(runs, key=lambda r: r["latency_p50_us"])
    print(
        json.dumps(
            {
                "tensorflow": tf.__version__,
                "runs": runs,
                "best": best,
            }
        )
    )


if __name__ == "__main__":
    main()
