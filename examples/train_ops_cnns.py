"""Train the two op examples on scikit-learn's digits and export them to ONNX.

Between them the two CNNs use every op ``dcim calibrate`` imports beyond the shipped CNN and
MLPs, each where real networks put it (docs/calibration.md, "The op examples"):

``digits_mobile_cnn.onnx`` (opset 14), MobileNet-like:
    stem Conv 3x3 + BN + HardSwish; depthwise Conv 3x3 (group 16) + BN + ReLU6 (Clip with
    ``(1,)``-shaped bounds); pointwise Conv 1x1 + BN (linear bottleneck); two branches, a
    grouped Conv 3x3 (group 4) + BN + Relu and a dilated grouped Conv 3x3 (dilation 2, group
    2) + BN + SiLU (``Mul(x, Sigmoid(x))``), concatenated; a gated smoothing block: ``c +
    gate * (AvgPool3x3(c) - c)`` (AveragePool with pads, ``count_include_pad=0``; Sub, Mul,
    Add of tensors), the per-channel gate from a squeeze-and-excitation branch
    (GlobalAveragePool, Conv 1x1, Relu, Conv 1x1, HardSigmoid); AveragePool 3x3 stride 2 with
    pads, ``count_include_pad=1``; Conv 1x1 + BN + Tanh; GlobalAveragePool; torch's
    ``Shape``-``Gather``-``Unsqueeze``-``Concat``-``Reshape`` flatten; Identity (dropout);
    Gemm; Softmax.
``digits_glu_cnn.onnx`` (opset 20), gated:
    Conv 3x3 + BN + LeakyRelu; a GeGLU, ``Conv(h) * Gelu(Conv(h))`` (two strided Conv 3x3 +
    BN); a parameter-free channel attention ``u * Sigmoid(GlobalAveragePool(u))``;
    GlobalAveragePool; flatten; Gemm; Softmax.

Numpy only: the layers of ``numpy_graph.py`` (which reuses ``train_digits.py``'s BatchNorm,
Dense and Adam loop and ``train_lut_mlp.py``'s activations); the data splits are those of the
shipped ``digits_calib.npz`` / ``digits_eval.npz`` (checked). Each model is checked against
onnxruntime (largest probability difference) before it is written. Writes next to this
script::

    digits_mobile_cnn.onnx, digits_glu_cnn.onnx    input "x": float32 (N, 1, 8, 8),
                                                   output "prob": (N, 10)

Seeded: the same numpy/scikit-learn versions write the same bytes.

Run: .venv/bin/python examples/train_ops_cnns.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from numpy_graph import (  # noqa: E402
    BN, Act, AvgPool, Binary, Concat, Conv, Fc, Gap, Graph, Identity, TorchFlatten)
from train_digits import SEED, fit_checked, save_checked, shipped_split  # noqa: E402

#: Training epochs (Adam, cosine schedule, as train_digits.py).
EPOCHS = 30


def _conv_bn(g: Graph, rng, name, x, cin, cout, k, act=None, **kw) -> str:
    """Conv + BN [+ activation]: three steps, ``name``, ``name.bn``, ``name.<act>``."""
    h = g.add(f"{name}.bn", BN(cout), g.add(name, Conv(rng, cin, cout, k, **kw), x))
    return g.add(f"{name}.{act}", Act(act), h) if act else h


PRODUCER = "dcim examples/train_ops_cnns.py"


def mobile_cnn(rng) -> Graph:
    """The MobileNet-like CNN (module docstring)."""
    g = Graph("digits_mobile_cnn", 14, PRODUCER)
    h = _conv_bn(g, rng, "stem", "x", 1, 16, 3, "hswish", pad=1)
    h = _conv_bn(g, rng, "dw", h, 16, 16, 3, "relu6", pad=1, groups=16)
    h = _conv_bn(g, rng, "pw", h, 16, 24, 1)
    a = _conv_bn(g, rng, "gconv", h, 24, 16, 3, "relu", pad=1, groups=4)
    b = _conv_bn(g, rng, "dil", h, 24, 16, 3, "silu", pad=2, dil=2, groups=2)
    c = g.add("cat", Concat(), a, b)
    s = g.add("smooth", AvgPool(3, 1, pad=1, count_include_pad=False), c)
    d = g.add("detail", Binary("Sub"), s, c)
    z = g.add("se.fc1", Conv(rng, 32, 8, 1), g.add("se.gap", Gap(), c))
    z = g.add("se.fc2", Conv(rng, 8, 32, 1), g.add("se.relu", Act("relu"), z))
    z = g.add("se.gate", Act("hsigmoid"), z)
    m = g.add("mix", Binary("Add"), c, g.add("gated", Binary("Mul"), d, z))
    p = g.add("down", AvgPool(3, 2, pad=1, count_include_pad=True), m)
    h = g.add("gap", Gap(), _conv_bn(g, rng, "head", p, 32, 32, 1, "tanh"))
    h = g.add("dropout", Identity(), g.add("flatten", TorchFlatten(), h))
    g.add("fc", Fc(rng, 32, 10), h)
    return g


def glu_cnn(rng) -> Graph:
    """The gated CNN (module docstring)."""
    g = Graph("digits_glu_cnn", 20, PRODUCER)
    h = _conv_bn(g, rng, "stem", "x", 1, 16, 3, "lrelu", pad=1)
    a = _conv_bn(g, rng, "glu.a", h, 16, 24, 3, pad=1, stride=2)
    b = _conv_bn(g, rng, "glu.b", h, 16, 24, 3, "gelu", pad=1, stride=2)
    u = g.add("glu", Binary("Mul"), a, b)
    z = g.add("attn.gate", Act("sigmoid"), g.add("attn.gap", Gap(), u))
    v = g.add("attn", Binary("Mul"), u, z)
    h = g.add("flatten", TorchFlatten(), g.add("gap", Gap(), v))
    g.add("fc", Fc(rng, 24, 10), h)
    return g


#: (network builder, seed offset)
MODELS = ((mobile_cnn, 3), (glu_cnn, 4))


def main() -> int:
    split = shipped_split(HERE)
    if split is None:
        return 1
    x, y, _, tr, ev = split
    for build, offset in MODELS:
        rng = np.random.default_rng(SEED + offset)
        net = build(rng)
        acc_train, acc_eval, model, diff = fit_checked(net, x, y, rng, tr, ev, EPOCHS)
        if not save_checked(HERE / f"{net.name}.onnx", model, acc_train, acc_eval, diff):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
