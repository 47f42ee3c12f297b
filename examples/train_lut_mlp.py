"""Train the LUT-activation example on scikit-learn's digits and export it to ONNX.

A 64-48-48-48-48-48-48-10 MLP whose hidden Gemms are followed, in turn, by SiLU (exported as
``Mul(x, Sigmoid(x))``), Tanh, HardSwish, Sigmoid, GELU (ONNX ``Gelu``, opset 20) and
HardSigmoid: every activation with a DPU lookup-table mode, each directly after a Gemm, so
``dcim calibrate`` runs all six as the DPU's int8 -> int8 tables (docs/calibration.md).

Numpy only, with the Dense layer and the Adam loop of ``train_digits.py``; the data splits are
those of the shipped ``digits_calib.npz`` / ``digits_eval.npz`` (checked). Writes next to this
script::

    digits_lut_mlp.onnx    input "x": float32 (N, 1, 8, 8), output "prob": (N, 10)

Deterministic for a given numpy/scikit-learn version.

Run: .venv/bin/python examples/train_lut_mlp.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from train_digits import (  # noqa: E402
    SEED, Dense, Mlp, _init, fit_checked, save_checked, shipped_split)

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sig(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Act:
    """An element-wise activation: ``f`` and its derivative ``df``; ``onnx`` its nodes."""

    def __init__(self, name):
        self.name = name

    def params(self):
        return []

    def forward(self, x, train):
        self.x = x
        return self.f(x)

    def backward(self, dy):
        return dy * self.df(self.x)

    def f(self, x):
        n = self.name
        if n == "silu":
            return x * _sig(x)
        if n == "tanh":
            return np.tanh(x)
        if n == "hswish":
            return x * np.clip(x / 6 + 0.5, 0, 1)
        if n == "sigmoid":
            return _sig(x)
        if n == "gelu":
            return 0.5 * x * (1 + _erf(x / math.sqrt(2)))
        return np.clip(0.2 * x + 0.5, 0, 1)  # hsigmoid, ONNX defaults

    def df(self, x):
        n = self.name
        if n == "silu":
            s = _sig(x)
            return s * (1 + x * (1 - s))
        if n == "tanh":
            return 1 - np.tanh(x) ** 2
        if n == "hswish":
            return np.where(x < -3, 0.0, np.where(x > 3, 1.0, x / 3 + 0.5))
        if n == "sigmoid":
            s = _sig(x)
            return s * (1 - s)
        if n == "gelu":
            return 0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(
                2 * math.pi)
        return np.where(np.abs(0.2 * x + 0.5 - 0.5) < 0.5, 0.2, 0.0)

    def onnx(self, h, i):
        out = f"act{i}"
        if self.name == "silu":
            return [helper.make_node("Sigmoid", [h], [f"sig{i}"], name=f"sig{i}"),
                    helper.make_node("Mul", [h, f"sig{i}"], [out], name=f"silu{i}")], out
        op = {"tanh": "Tanh", "hswish": "HardSwish", "sigmoid": "Sigmoid", "gelu": "Gelu",
              "hsigmoid": "HardSigmoid"}[self.name]
        return [helper.make_node(op, [h], [out], name=f"{self.name}{i}")], out


ACTS = ("silu", "tanh", "hswish", "sigmoid", "gelu", "hsigmoid")


class LutMlp(Mlp):
    """:class:`train_digits.Mlp` with six hidden layers, one activation of :data:`ACTS` each."""

    def __init__(self, rng, width=48):
        sizes = [64] + [width] * len(ACTS) + [10]
        self.layers = []
        for i in range(len(sizes) - 1):
            self.layers.append(Dense(rng, sizes[i], sizes[i + 1]))
            if i < len(ACTS):
                self.layers.append(Act(ACTS[i]))

    def to_onnx(self) -> onnx.ModelProto:
        nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=1)]
        inits, h = [], "flat"
        dense = [lay for lay in self.layers if isinstance(lay, Dense)]
        acts = [lay for lay in self.layers if isinstance(lay, Act)]
        for i, lay in enumerate(dense):
            inits += [_init(f"fc{i + 1}.weight", lay.w.value),
                      _init(f"fc{i + 1}.bias", lay.b.value)]
            nodes.append(helper.make_node("Gemm", [h, f"fc{i + 1}.weight", f"fc{i + 1}.bias"],
                                          [f"fc{i + 1}"], name=f"fc{i + 1}", transB=1))
            h = f"fc{i + 1}"
            if i < len(acts):
                more, h = acts[i].onnx(h, i + 1)
                nodes += more
        nodes.append(helper.make_node("Softmax", [h], ["prob"], name="softmax", axis=1))
        graph = helper.make_graph(
            nodes, "digits_lut_mlp",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
            [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)],
                                  producer_name="dcim examples/train_lut_mlp.py")
        model.ir_version = 9
        onnx.checker.check_model(model)
        return model


def main() -> int:
    split = shipped_split(HERE)
    if split is None:
        return 1
    x, y, rng, tr, ev = split
    acc_train, acc_eval, model, diff = fit_checked(LutMlp(np.random.default_rng(SEED + 2)),
                                                   x, y, rng, tr, ev, 60)
    return 0 if save_checked(HERE / "digits_lut_mlp.onnx", model, acc_train, acc_eval, diff) else 1


if __name__ == "__main__":
    sys.exit(main())
