#!/usr/bin/env python3
"""Writes the ONNX fixtures of crates/onnx (slimbench-onnx's tests).

Run with the torch venv (torch 2.11.0, plus `pip install onnx onnxscript`):

    ~/.cache/slimbench/venv-torch-2.11.0/bin/python scripts/export_onnx_fixtures.py

Defines four models in PyTorch with fixed seeds (a CIFAR ResNet-20 with option-A
shortcuts, a MobileNetV2 of width 0.25, a tiny grey CNN and a small CNN of the other
activations and layer kinds), gives their batch norms
non-trivial affine parameters and running statistics (a few forward passes in train
mode on random data), and exports each to ONNX opset 17 with the TorchScript exporter
(`dynamo=False`) in both common forms:

* `<model>.folded.onnx`: eval export with constant folding (the default): batch norm
  folded into the convolutions;
* `<model>.bn.onnx`: `training=TrainingMode.PRESERVE` on the eval model, which skips
  the conv/BN fusion: BatchNormalization nodes kept.

It also builds one "Keras-style" MLP directly with onnx.helper (MatMul + Add instead of
Gemm, a Gemm with transB=0, Gelu/HardSwish/x*sigmoid(x)/Tanh/Sigmoid, Concat), whose
logits come from onnx's reference evaluator.

`grey_cnn` is also exported with the dynamo exporter (torch's default), opset 18,
weights in an external data file: `grey_cnn.dynamo.onnx` + `grey_cnn.dynamo.onnx.data`.

Per model it writes the logits of 100 deterministic inputs as raw little-endian f32
(`<model>.logits.f32`, [100, 10], row-major); the inputs are shared per input shape
(`cifar.input.f32` [100, 3, 32, 32], `grey.input.f32` [100, 1, 28, 28],
`small.input.f32` [100, 2, 8, 8], `mlp.input.f32` [100, 1, 4, 4]). See crates/onnx/tests/fixtures/README.md.
"""

import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "onnx", "tests", "fixtures")
OPSET = 17
N_IMAGES = 100


# ---------------------------------------------------------------- models


class BasicBlock(nn.Module):
    """CIFAR ResNet basic block; option-A shortcut (subsample + zero channels)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad is None:
            short = x
        else:
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)
        return F.relu(out + short)


class ResNet20(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in [(16, 1), (32, 2), (64, 2)]:
            blocks = []
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        # akamaster's ResNet: pool over the whole plane, then view(N, -1).
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def _div8(v):
    return max(8, int(v + 4) // 8 * 8)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """CIFAR MobileNetV2 (stride-1 stem and first downsampling stage), width 0.25; the
    last 1x1 conv is scaled with the width as well (320 channels), to stay small."""

    def __init__(self, width=0.25, classes=10):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        cin = _div8(32 * width)
        layers = [nn.Conv2d(3, cin, 3, 1, 1, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(inplace=True)]
        for t, c, n, s in cfg:
            cout = _div8(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = _div8(1280 * width)
        layers += [nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class GreyCNN(nn.Module):
    """A tiny 1x28x28 CNN: conv-BN-ReLU-maxpool, conv-BN-ReLU-avgpool, two linears."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16, eps=1e-3, momentum=0.01)
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = x.reshape(x.shape[0], -1)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class ActCNN(nn.Module):
    """A small 2x8x8 CNN for the exporter's other patterns: GELU (erf form before opset
    20), SiLU (x * Sigmoid(x)), Hardswish, a grouped and a dilated conv, padded max and
    average pools (count_include_pad=True), a channel concat, x.mean((2, 3))
    (ReduceMean), ReLU6 and Sigmoid."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False)
        self.bn3 = nn.BatchNorm2d(8)
        self.side = nn.Conv2d(8, 4, 1)
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, classes)

    def forward(self, x):
        x = F.gelu(self.bn1(self.conv1(x)))
        x = F.silu(self.conv2(x))
        x = F.max_pool2d(x, 3, 2, 1)
        x = F.hardswish(self.bn3(self.conv3(x)))
        x = F.avg_pool2d(x, 3, 1, 1)
        x = torch.cat([x, torch.sigmoid(self.side(x))], 1)
        x = x.mean((2, 3))
        return self.fc2(F.relu6(self.fc1(x)))


# ---------------------------------------------------------------- helpers


def settle_batch_norms(model, shape, seed):
    """Random affine parameters and running statistics in every batch norm."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(32, *shape, generator=g) * 1.5 + 0.2)
    model.eval()


def export(model, shape, path, keep_bn):
    x = torch.zeros(1, *shape)
    kwargs = dict(
        opset_version=OPSET,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    if keep_bn:
        # PRESERVE on an eval model exports it as eval, but skips the conv/BN fusion.
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(model, (x,), path, **kwargs)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def ops(m):
    out = {}
    for n in m.graph.node:
        out[n.op_type] = out.get(n.op_type, 0) + 1
    return dict(sorted(out.items()))


def write_f32(path, a):
    np.ascontiguousarray(a, dtype="<f4").tofile(path)


def check_onnx(m, x, expected, tol=1e-4):
    got = ReferenceEvaluator(m).run(None, {"input": x})[0]
    err = float(np.abs(got - expected).max())
    assert err < tol, f"onnx reference differs from PyTorch by {err}"
    return err


# ---------------------------------------------------------------- Keras-style MLP


def keras_mlp(rng):
    """A graph as Keras/tf2onnx-style exporters write it: Flatten, MatMul + Add (weight
    [in, out]), a Gemm with transB=0, several activations and a Concat of two branches."""
    w = lambda *s: numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32))  # noqa: E731
    inits = []

    def init(name, arr):
        arr.name = name
        inits.append(arr)
        return name

    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], name="flatten", axis=1),
        helper.make_node("MatMul", ["flat", init("dense/kernel", w(16, 24))], ["mm"], name="dense/MatMul"),
        helper.make_node("Add", ["mm", init("dense/bias", w(24))], ["dense"], name="dense/BiasAdd"),
        helper.make_node("Gelu", ["dense"], ["gelu"], name="dense/Gelu"),
        # branch a: Gemm with transB=0 (weight [in, out]), HardSwish
        helper.make_node("Gemm", ["gelu", init("a/kernel", w(24, 12)), init("a/bias", w(12))], ["a"], name="a/Gemm"),
        helper.make_node("HardSwish", ["a"], ["a_act"], name="a/HardSwish"),
        # branch b: MatMul + Add, x * sigmoid(x) (swish as Keras writes it), then Tanh
        helper.make_node("MatMul", ["gelu", init("b/kernel", w(24, 12))], ["bmm"], name="b/MatMul"),
        helper.make_node("Add", [init("b/bias", w(12)), "bmm"], ["b"], name="b/BiasAdd"),
        helper.make_node("Sigmoid", ["b"], ["b_sig"], name="b/Sigmoid"),
        helper.make_node("Mul", ["b", "b_sig"], ["b_swish"], name="b/mul"),
        helper.make_node("Tanh", ["b_swish"], ["b_act"], name="b/Tanh"),
        helper.make_node("Concat", ["a_act", "b_act"], ["cat"], name="concat", axis=1),
        helper.make_node("Sigmoid", ["cat"], ["cat_sig"], name="head/Sigmoid"),
        helper.make_node(
            "Gemm", ["cat_sig", init("head/kernel", w(10, 24)), init("head/bias", w(10))], ["logits"],
            name="head/Gemm", transB=1,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "keras_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="onnx.helper (Keras-style)")
    m.ir_version = 9
    onnx.checker.check_model(m, full_check=True)
    return m


# ---------------------------------------------------------------- main


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    inputs = {
        "cifar": torch.randn(N_IMAGES, 3, 32, 32, generator=torch.Generator().manual_seed(1)),
        "grey": torch.rand(N_IMAGES, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 0.5,
        "small": torch.randn(N_IMAGES, 2, 8, 8, generator=torch.Generator().manual_seed(4)),
    }
    for name, x in inputs.items():
        write_f32(os.path.join(OUT, f"{name}.input.f32"), x.numpy())

    manifest = {"torch": torch.__version__, "onnx": onnx.__version__, "numpy": np.__version__, "opset": OPSET, "models": {}}
    specs = [
        ("resnet20", ResNet20, "cifar", (3, 32, 32), 10),
        ("mobilenetv2", MobileNetV2, "cifar", (3, 32, 32), 11),
        ("grey_cnn", GreyCNN, "grey", (1, 28, 28), 12),
        ("act_cnn", ActCNN, "small", (2, 8, 8), 13),
    ]
    for name, cls, inp, shape, seed in specs:
        torch.manual_seed(seed)
        model = cls()
        settle_batch_norms(model, shape, seed)
        x = inputs[inp]
        with torch.no_grad():
            logits = model(x).numpy()
        write_f32(os.path.join(OUT, f"{name}.logits.f32"), logits)
        entry = {"input": f"{inp}.input.f32", "input_shape": [N_IMAGES, *shape], "logits_shape": list(logits.shape)}
        entry["params"] = sum(p.numel() for p in model.parameters())
        for form, keep in [("folded", False), ("bn", True)]:
            path = os.path.join(OUT, f"{name}.{form}.onnx")
            m = export(model, shape, path, keep)
            err = check_onnx(m, x.numpy(), logits)
            entry[form] = {"ops": ops(m), "max_abs_err_onnx_reference": err, "bytes": os.path.getsize(path)}
            has_bn = "BatchNormalization" in entry[form]["ops"]
            assert has_bn == keep, f"{path}: BatchNormalization present = {has_bn}"
        if name == "grey_cnn":
            # torch's default exporter since 2.9: dynamo, opset 18, weights in an external
            # data file next to the model (`grey_cnn.dynamo.onnx.data`).
            path = os.path.join(OUT, f"{name}.dynamo.onnx")
            torch.onnx.export(
                model, (torch.zeros(2, *shape),), path, dynamo=True, opset_version=18, external_data=True,
                input_names=["input"], output_names=["logits"],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            )
            m = onnx.load(path)
            err = check_onnx(m, x.numpy(), logits)
            entry["dynamo"] = {"ops": ops(m), "max_abs_err_onnx_reference": err, "bytes": os.path.getsize(path)}
        manifest["models"][name] = entry
        print(name, json.dumps(entry), file=sys.stderr)

    rng = np.random.default_rng(3)
    m = keras_mlp(rng)
    onnx.save(m, os.path.join(OUT, "keras_mlp.onnx"))
    x = rng.standard_normal((N_IMAGES, 1, 4, 4)).astype(np.float32)
    write_f32(os.path.join(OUT, "mlp.input.f32"), x)
    logits = ReferenceEvaluator(m).run(None, {"input": x})[0]
    write_f32(os.path.join(OUT, "keras_mlp.logits.f32"), logits)
    manifest["models"]["keras_mlp"] = {
        "input": "mlp.input.f32",
        "input_shape": [N_IMAGES, 1, 4, 4],
        "logits_shape": list(logits.shape),
        "onnx": {"ops": ops(m), "bytes": os.path.getsize(os.path.join(OUT, "keras_mlp.onnx"))},
        "logits_from": "onnx.reference.ReferenceEvaluator",
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
