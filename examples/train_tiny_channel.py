"""Train the tiny-weight-channel example on scikit-learn's digits and export it to ONNX.

A 64-32-10 MLP whose hidden unit :data:`PRUNED` is pruned the way magnitude pruning or weight
decay leaves a unit: its weights are ~1e-6 of the others' (tiny, but not zero), its bias is
normal and trained, so the unit outputs a constant that the next layer relies on. Quantizing
such a unit per channel gives it a weight scale ~1e-6 of the others; its int32 bias at
``s_x * s_w`` then needs ~1e10: it does not fit unless the weight scale is raised (what ``dcim
calibrate`` does, as onnxruntime's quantizer does; docs/calibration.md).

Numpy only, with the layers and the Adam loop of ``train_digits.py``; the data splits are those
of the shipped ``digits_calib.npz`` / ``digits_eval.npz`` (checked). Writes next to this script::

    digits_tiny_channel.onnx    input "x": float32 (N, 1, 8, 8), output "prob": (N, 10)

Deterministic for a given numpy/scikit-learn version.

Run: .venv/bin/python examples/train_tiny_channel.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from train_digits import (  # noqa: E402
    SEED, Dense, Mlp, Relu, _init, _model, fit_checked, save_checked, shipped_split)

#: The pruned hidden unit of fc1.
PRUNED = 5
#: Its weights relative to the trained ones.
TINY = 1e-6
#: Its initial bias (trained from there).
BIAS0 = 4.0


class PrunedDense(Dense):
    """A Dense layer whose output unit ``unit`` keeps ``TINY`` times its initial weights
    (frozen: no gradient, no decay); its bias trains as usual."""

    def __init__(self, rng, nin, nout, unit):
        super().__init__(rng, nin, nout)
        self.unit = unit
        self.frozen = TINY * self.w.value[unit].copy()
        self.b.value[unit] = BIAS0

    def weight(self) -> np.ndarray:
        w = self.w.value.copy()
        w[self.unit] = self.frozen
        return w

    def forward(self, x, train):
        self.x = x
        return x @ self.weight().T + self.b.value

    def backward(self, dy):
        g = dy.T @ self.x
        g[self.unit] = 0.0
        self.w.grad += g
        self.b.grad += dy.sum(0)
        return dy @ self.weight()


class TinyChannelMlp(Mlp):
    """:class:`train_digits.Mlp`'s training loop on a 64-32-10 MLP whose first layer keeps a
    pruned channel."""

    def __init__(self, rng):
        self.fc1 = PrunedDense(rng, 64, 32, PRUNED)
        self.layers = [self.fc1, Relu(), Dense(rng, 32, 10)]

    def to_onnx(self) -> onnx.ModelProto:
        fc2 = self.layers[2]
        inits = [_init("fc1.weight", self.fc1.weight()), _init("fc1.bias", self.fc1.b.value),
                 _init("fc2.weight", fc2.w.value), _init("fc2.bias", fc2.b.value)]
        nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=1),
                 helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["fc1"],
                                  name="fc1", transB=1),
                 helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
                 helper.make_node("Gemm", ["relu1", "fc2.weight", "fc2.bias"], ["logits"],
                                  name="fc2", transB=1),
                 helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1)]
        model = _model(nodes, inits, "digits_tiny_channel")
        model.producer_name = "dcim examples/train_tiny_channel.py"
        return model


def main() -> int:
    split = shipped_split(HERE)
    if split is None:
        return 1
    x, y, rng, tr, ev = split
    net = TinyChannelMlp(np.random.default_rng(SEED + 1))
    acc_train, acc_eval, model, diff = fit_checked(net, x, y, rng, tr, ev, 60)
    w = net.fc1.weight()
    others = np.abs(np.delete(w, PRUNED, axis=0)).max(axis=1)
    note = (f"; fc1 unit {PRUNED}: max|w| {np.abs(w[PRUNED]).max():.3g} (other units "
            f"{others.min():.3g}..{others.max():.3g}), bias {net.fc1.b.value[PRUNED]:.3f}")
    path = HERE / "digits_tiny_channel.onnx"
    return 0 if save_checked(path, model, acc_train, acc_eval, diff, note) else 1


if __name__ == "__main__":
    sys.exit(main())
