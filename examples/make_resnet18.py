"""A ResNet-18-shaped ONNX model with He-initialized weights, and random data to calibrate it.

The topology of torchvision's ``resnet18`` (He et al., 2016), written with ``onnx.helper``
(opset 13): a 7x7/2 stem conv + BatchNorm + ReLU, a 3x3/2 max pool, four stages of two basic
blocks (two 3x3 convs with BatchNorm; a 1x1/2 conv + BatchNorm on the shortcut where the
stage halves the resolution), the residual Add + ReLU, a global average pool, flatten and a
fully connected layer. Conv weights are He-normal (``std = sqrt(2 / fan_in)``), the FC layer
``std = 1 / sqrt(fan_in)``; BatchNorm gets random statistics and affine parameters, either
folded into the conv before it (``--bn folded``, the default) or kept as BatchNormalization
nodes (``--bn present``; dcim's importer and onnxruntime's pre-processing fold them). Nothing
is downloaded and nothing is trained: accuracy against the random labels is meaningless; what
matters is how closely INT8 follows FP32 (top-1 agreement, logit SQNR) and the mapping.

Writes ``DIR/resnet18.onnx`` (~47 MB at the full size: generate it, do not commit it),
``DIR/calib.npz`` (``x``) and ``DIR/eval.npz`` (``x`` and random labels ``y``); inputs are
standard-normal images ``(N, 3, size, size)``, float32.

Run: ``.venv/bin/python examples/make_resnet18.py -o build/resnet18 [--size 224] [--width 64]
[--classes 1000] [--calib 16] [--eval 32] [--bn folded|present] [--seed 0]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EPS = 1e-5
#: Basic blocks per stage, as in ResNet-18.
BLOCKS = (2, 2, 2, 2)


class _Builder:
    """Collects nodes and initializers; every conv is He-initialized with its BatchNorm."""

    def __init__(self, rng: np.random.Generator, bn: str):
        self.rng, self.bn = rng, bn
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def _init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def conv_bn(self, name: str, x: str, cin: int, cout: int, k: int, stride: int,
                relu: bool) -> str:
        """Conv (no bias) + BatchNorm [+ Relu]; returns the output tensor's name."""
        rng = self.rng
        w = rng.normal(0.0, np.sqrt(2.0 / (cin * k * k)), size=(cout, cin, k, k))
        gamma = rng.uniform(0.5, 1.5, cout)
        beta = rng.normal(0.0, 0.1, cout)
        mean = rng.normal(0.0, 0.1, cout)
        var = rng.uniform(0.5, 1.5, cout)
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        out = f"{name}_bn"
        if self.bn == "folded":
            a = gamma / np.sqrt(var + EPS)
            ins = [x, self._init(f"{name}.w", w * a[:, None, None, None]),
                   self._init(f"{name}.b", beta - mean * a)]
            self.nodes.append(helper.make_node("Conv", ins, [out], name=name, **attrs))
        else:
            self.nodes.append(helper.make_node("Conv", [x, self._init(f"{name}.w", w)],
                                               [f"{name}_c"], name=name, **attrs))
            ins = [f"{name}_c"] + [self._init(f"{name}.bn.{p}", v) for p, v in
                                   (("scale", gamma), ("bias", beta), ("mean", mean),
                                    ("var", var))]
            self.nodes.append(helper.make_node("BatchNormalization", ins, [out],
                                               name=f"{name}.bn", epsilon=EPS))
        if not relu:
            return out
        self.nodes.append(helper.make_node("Relu", [out], [f"{name}_r"], name=f"{name}.relu"))
        return f"{name}_r"

    def block(self, name: str, x: str, cin: int, cout: int, stride: int) -> str:
        """A basic block: two 3x3 conv + BN, the shortcut, Add, Relu."""
        h = self.conv_bn(f"{name}.conv1", x, cin, cout, 3, stride, relu=True)
        h = self.conv_bn(f"{name}.conv2", h, cout, cout, 3, 1, relu=False)
        short = x if stride == 1 and cin == cout else self.conv_bn(
            f"{name}.down", x, cin, cout, 1, stride, relu=False)
        self.nodes.append(helper.make_node("Add", [h, short], [f"{name}_sum"], name=f"{name}.add"))
        self.nodes.append(helper.make_node("Relu", [f"{name}_sum"], [f"{name}_out"],
                                           name=f"{name}.relu"))
        return f"{name}_out"


def build(size: int = 224, width: int = 64, classes: int = 1000, seed: int = 0,
          bn: str = "folded") -> onnx.ModelProto:
    """The ResNet-18-shaped model: input ``x`` float32 ``(N, 3, size, size)``, output ``y``
    (N, classes) logits. ``width`` is the first stage's channels (64 in ResNet-18; the stages
    have ``width * (1, 2, 4, 8)``).

    Raises
    ------
    ValueError
        ``size`` is not a multiple of 32 (five halvings), or ``width``, ``classes`` < 1, or
        ``bn`` is not ``folded`` or ``present``.
    """
    for pname, v, lo in (("size", size, 32), ("width", width, 1), ("classes", classes, 1)):
        if v < lo:
            raise ValueError(f"{pname} must be >= {lo}, got {v}")
    if size % 32:
        raise ValueError(f"size must be a multiple of 32, got {size}")
    if bn not in ("folded", "present"):
        raise ValueError(f"bn must be folded or present, got {bn!r}")
    b = _Builder(np.random.default_rng(seed), bn)
    h = b.conv_bn("conv1", "x", 3, width, 7, 2, relu=True)
    b.nodes.append(helper.make_node("MaxPool", [h], ["pool"], name="maxpool",
                                    kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    h, cin = "pool", width
    for s, n in enumerate(BLOCKS):
        cout = width << s
        for j in range(n):
            h = b.block(f"layer{s + 1}.{j}", h, cin, cout, 2 if j == 0 and s > 0 else 1)
            cin = cout
    b.nodes += [helper.make_node("GlobalAveragePool", [h], ["gap"], name="avgpool"),
                helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1)]
    fc_w = b.rng.normal(0.0, 1.0 / np.sqrt(cin), size=(classes, cin))
    b.nodes.append(helper.make_node("Gemm", ["flat", b._init("fc.w", fc_w),
                                             b._init("fc.b", np.zeros(classes))], ["y"],
                                    name="fc", transB=1))
    graph = helper.make_graph(
        b.nodes, "resnet18",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="dcim examples/make_resnet18.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def data(n: int, size: int, classes: int, seed: int, labels: bool) -> dict[str, np.ndarray]:
    """``n`` standard-normal images (and uniformly random labels if ``labels``)."""
    rng = np.random.default_rng(seed)
    out = {"x": rng.standard_normal((n, 3, size, size)).astype(np.float32)}
    if labels:
        out["y"] = rng.integers(0, classes, n).astype(np.int64)
    return out


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    ap.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    ap.add_argument("--width", type=int, default=64, help="first-stage channels (default 64)")
    ap.add_argument("--classes", type=int, default=1000, help="output classes (default 1000)")
    ap.add_argument("--calib", type=int, default=16, help="calibration images (default 16)")
    ap.add_argument("--eval", type=int, default=32, help="evaluation images (default 32)")
    ap.add_argument("--bn", default="folded", help="folded (default) or present")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args(argv)
    for pname in ("calib", "eval"):
        if getattr(args, pname) < 1:
            print(f"make_resnet18: error: --{pname} must be >= 1, got {getattr(args, pname)}",
                  file=sys.stderr)
            return 2
    try:
        model = build(args.size, args.width, args.classes, args.seed, args.bn)
    except ValueError as exc:
        print(f"make_resnet18: error: --{exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    _atomic(args.out / "resnet18.onnx", lambda p: onnx.save(model, p))
    for name, n, seed, labels in (("calib", args.calib, args.seed + 1, False),
                                  ("eval", args.eval, args.seed + 2, True)):
        arrays = data(n, args.size, args.classes, seed, labels)
        _atomic(args.out / f"{name}.npz", lambda p: np.savez(open(p, "wb"), **arrays))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"wrote {args.out}/resnet18.onnx ({params:,} parameters, input (N, 3, {args.size}, "
          f"{args.size}), {args.classes} classes, BatchNorm {args.bn}), calib.npz "
          f"({args.calib} images), eval.npz ({args.eval} images, random labels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
