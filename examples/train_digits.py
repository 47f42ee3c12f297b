"""Train the two shipped example models on scikit-learn's digits and export them to ONNX.

Numpy only (no deep-learning framework): a small MLP and a small residual CNN (conv, batch
norm, ReLU, max pooling, residual add, global average pooling, fully connected) trained with
Adam, then written with ``onnx.helper`` (opset 13) and checked against onnxruntime.

Writes next to this script::

    digits_mlp.onnx, digits_cnn.onnx        the models (input "x": float32 (N, 1, 8, 8))
    digits_calib.npz, digits_eval.npz       x: float32 (N, 1, 8, 8) in [0, 1], y: int64 labels

The calibration split is drawn from the training images; the evaluation split is held out.
Deterministic for a given numpy/scikit-learn version.

Run: .venv/bin/python examples/train_digits.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dcim.golden.quant.tensor_ops import im2col

HERE = Path(__file__).resolve().parent
SEED = 0
N_EVAL = 540
N_CALIB = 200


# ----------------------------------------------------------------------------------------------
# Layers with forward and backward passes (float64)
class Param:
    def __init__(self, value: np.ndarray):
        self.value = value
        self.grad = np.zeros_like(value)
        self.m = np.zeros_like(value)
        self.v = np.zeros_like(value)


class Conv:
    def __init__(self, rng, cin, cout, k=3, pad=1):
        fan_in = cin * k * k
        self.w = Param(rng.normal(0, np.sqrt(2 / fan_in), (cout, cin, k, k)))
        self.b = Param(np.zeros(cout))
        self.k, self.pad = k, pad

    def params(self):
        return [self.w, self.b]

    def forward(self, x, train):
        self.xshape = x.shape
        n, _, h, w = x.shape
        p = self.pad
        self.cols = im2col(x, (self.k, self.k), (1, 1), (p, p, p, p))
        cout = self.w.value.shape[0]
        y = self.cols @ self.w.value.reshape(cout, -1).T + self.b.value
        return y.reshape(n, h, w, cout).transpose(0, 3, 1, 2)

    def backward(self, dy):
        n, cin, h, w = self.xshape
        cout = self.w.value.shape[0]
        dyf = dy.transpose(0, 2, 3, 1).reshape(-1, cout)
        self.w.grad += (dyf.T @ self.cols).reshape(self.w.value.shape)
        self.b.grad += dyf.sum(0)
        dcols = (dyf @ self.w.value.reshape(cout, -1)).reshape(n, h, w, cin, self.k, self.k)
        p = self.pad
        dxp = np.zeros((n, cin, h + 2 * p, w + 2 * p))
        for i in range(self.k):
            for j in range(self.k):
                dxp[:, :, i:i + h, j:j + w] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dxp[:, :, p:p + h, p:p + w]


class BatchNorm:
    def __init__(self, c, momentum=0.1, eps=1e-5):
        self.g = Param(np.ones(c))
        self.b = Param(np.zeros(c))
        self.mean, self.var = np.zeros(c), np.ones(c)
        self.momentum, self.eps = momentum, eps

    def params(self):
        return [self.g, self.b]

    def forward(self, x, train):
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        if train:
            mu, var = x.mean(axes), x.var(axes)
            self.mean += self.momentum * (mu - self.mean)
            m = x.size / x.shape[1]
            self.var += self.momentum * (var * m / (m - 1) - self.var)
        else:
            mu, var = self.mean, self.var
        self.axes, self.shape = axes, shape
        self.inv = 1 / np.sqrt(var + self.eps)
        self.xhat = (x - mu.reshape(shape)) * self.inv.reshape(shape)
        return self.g.value.reshape(shape) * self.xhat + self.b.value.reshape(shape)

    def backward(self, dy):
        axes, shape = self.axes, self.shape
        m = dy.size / dy.shape[1]
        self.g.grad += (dy * self.xhat).sum(axes)
        self.b.grad += dy.sum(axes)
        dxhat = dy * self.g.value.reshape(shape)
        return (self.inv.reshape(shape) / m) * (
            m * dxhat - dxhat.sum(axes).reshape(shape)
            - self.xhat * (dxhat * self.xhat).sum(axes).reshape(shape))


class Relu:
    def params(self):
        return []

    def forward(self, x, train):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy):
        return dy * self.mask


class MaxPool2:
    def params(self):
        return []

    def forward(self, x, train):
        n, c, h, w = x.shape
        r = x.reshape(n, c, h // 2, 2, w // 2, 2)
        y = r.max(axis=(3, 5))
        self.mask = r == y[:, :, :, None, :, None]
        return y

    def backward(self, dy):
        n, c, h2, _, w2, _ = self.mask.shape
        d = self.mask * dy[:, :, :, None, :, None]
        return d.reshape(n, c, h2 * 2, w2 * 2)


class Dense:
    def __init__(self, rng, nin, nout):
        self.w = Param(rng.normal(0, np.sqrt(2 / nin), (nout, nin)))
        self.b = Param(np.zeros(nout))

    def params(self):
        return [self.w, self.b]

    def forward(self, x, train):
        self.x = x
        return x @ self.w.value.T + self.b.value

    def backward(self, dy):
        self.w.grad += dy.T @ self.x
        self.b.grad += dy.sum(0)
        return dy @ self.w.value


# ----------------------------------------------------------------------------------------------
# The two networks
class Mlp:
    def __init__(self, rng):
        self.layers = [Dense(rng, 64, 64), Relu(), Dense(rng, 64, 32), Relu(), Dense(rng, 32, 10)]

    def params(self):
        return [p for layer in self.layers for p in layer.params()]

    def forward(self, x, train=False):
        h = x.reshape(len(x), -1)
        for layer in self.layers:
            h = layer.forward(h, train)
        return h

    def backward(self, d):
        for layer in reversed(self.layers):
            d = layer.backward(d)

    def to_onnx(self) -> onnx.ModelProto:
        nodes = [helper.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=1)]
        inits = []
        h = "flat"
        dense = [lay for lay in self.layers if isinstance(lay, Dense)]
        for i, lay in enumerate(dense):
            out = f"fc{i + 1}"
            inits += [_init(f"fc{i + 1}.weight", lay.w.value),
                      _init(f"fc{i + 1}.bias", lay.b.value)]
            nodes.append(helper.make_node("Gemm", [h, f"fc{i + 1}.weight", f"fc{i + 1}.bias"],
                                          [out], name=f"fc{i + 1}", transB=1))
            h = out
            if i < len(dense) - 1:
                nodes.append(helper.make_node("Relu", [h], [f"relu{i + 1}"], name=f"relu{i + 1}"))
                h = f"relu{i + 1}"
        nodes.append(helper.make_node("Softmax", [h], ["prob"], name="softmax", axis=1))
        return _model(nodes, inits, "digits_mlp")


class Cnn:
    """conv1-bn-relu -> [conv2-bn-relu -> conv3-bn] + skip -> relu -> maxpool -> conv4-bn-relu
    -> global average pool -> fc."""

    def __init__(self, rng, c1=16, c2=32):
        self.conv1, self.bn1 = Conv(rng, 1, c1), BatchNorm(c1)
        self.conv2, self.bn2 = Conv(rng, c1, c1), BatchNorm(c1)
        self.conv3, self.bn3 = Conv(rng, c1, c1), BatchNorm(c1)
        self.conv4, self.bn4 = Conv(rng, c1, c2), BatchNorm(c2)
        self.relu = [Relu() for _ in range(4)]
        self.pool = MaxPool2()
        self.fc = Dense(rng, c2, 10)

    def params(self):
        mods = [self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3, self.conv4,
                self.bn4, self.fc]
        return [p for m in mods for p in m.params()]

    def forward(self, x, train=False):
        r = self.relu
        a1 = r[0].forward(self.bn1.forward(self.conv1.forward(x, train), train), train)
        a2 = r[1].forward(self.bn2.forward(self.conv2.forward(a1, train), train), train)
        a3 = r[2].forward(self.bn3.forward(self.conv3.forward(a2, train), train) + a1, train)
        p = self.pool.forward(a3, train)
        a4 = r[3].forward(self.bn4.forward(self.conv4.forward(p, train), train), train)
        self.a4shape = a4.shape
        g = a4.mean(axis=(2, 3))
        return self.fc.forward(g, train)

    def backward(self, d):
        r = self.relu
        dg = self.fc.backward(d)
        n, c, h, w = self.a4shape
        da4 = np.broadcast_to(dg[:, :, None, None] / (h * w), self.a4shape)
        dp = self.conv4.backward(self.bn4.backward(r[3].backward(da4)))
        da3 = r[2].backward(self.pool.backward(dp))
        da2 = self.conv3.backward(self.bn3.backward(da3))
        da1 = self.conv2.backward(self.bn2.backward(r[1].backward(da2))) + da3
        self.conv1.backward(self.bn1.backward(r[0].backward(da1)))

    def to_onnx(self) -> onnx.ModelProto:
        nodes, inits = [], []

        def conv_bn(name, inp, conv, bn):
            inits.extend([_init(f"{name}.weight", conv.w.value),
                          _init(f"{name}.bias", conv.b.value),
                          _init(f"{name}.bn.scale", bn.g.value),
                          _init(f"{name}.bn.bias", bn.b.value),
                          _init(f"{name}.bn.mean", bn.mean), _init(f"{name}.bn.var", bn.var)])
            nodes.append(helper.make_node("Conv", [inp, f"{name}.weight", f"{name}.bias"],
                                          [f"{name}.out"], name=name, kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[1, 1]))
            nodes.append(helper.make_node(
                "BatchNormalization", [f"{name}.out", f"{name}.bn.scale", f"{name}.bn.bias",
                                       f"{name}.bn.mean", f"{name}.bn.var"],
                [f"{name}.bn.out"], name=f"{name}.bn", epsilon=bn.eps))
            return f"{name}.bn.out"

        def relu(name, inp):
            nodes.append(helper.make_node("Relu", [inp], [name], name=name))
            return name

        a1 = relu("relu1", conv_bn("conv1", "x", self.conv1, self.bn1))
        a2 = relu("relu2", conv_bn("conv2", a1, self.conv2, self.bn2))
        b3 = conv_bn("conv3", a2, self.conv3, self.bn3)
        nodes.append(helper.make_node("Add", [b3, a1], ["res"], name="residual_add"))
        a3 = relu("relu3", "res")
        nodes.append(helper.make_node("MaxPool", [a3], ["pool"], name="maxpool",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        a4 = relu("relu4", conv_bn("conv4", "pool", self.conv4, self.bn4))
        nodes.append(helper.make_node("GlobalAveragePool", [a4], ["gap"], name="gap"))
        nodes.append(helper.make_node("Flatten", ["gap"], ["gap.flat"], name="flatten", axis=1))
        inits += [_init("fc.weight", self.fc.w.value), _init("fc.bias", self.fc.b.value)]
        nodes.append(helper.make_node("Gemm", ["gap.flat", "fc.weight", "fc.bias"], ["logits"],
                                      name="fc", transB=1))
        nodes.append(helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1))
        return _model(nodes, inits, "digits_cnn")


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _model(nodes, inits, name) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="dcim examples/train_digits.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# ----------------------------------------------------------------------------------------------
def train(net, x, y, rng, epochs, lr=3e-3, batch=64, wd=1e-4):
    """Adam on softmax cross-entropy; returns the final training accuracy."""
    params = net.params()
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            for p in params:
                p.grad[...] = 0
            logits = net.forward(x[idx], train=True)
            z = logits - logits.max(1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            d = prob.copy()
            d[np.arange(len(idx)), y[idx]] -= 1
            net.backward(d / len(idx))
            step += 1
            rate = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
            for p in params:
                g = p.grad + wd * p.value
                p.m = 0.9 * p.m + 0.1 * g
                p.v = 0.999 * p.v + 0.001 * g * g
                mhat = p.m / (1 - 0.9 ** step)
                vhat = p.v / (1 - 0.999 ** step)
                p.value -= rate * mhat / (np.sqrt(vhat) + 1e-8)
    return float((net.forward(x).argmax(1) == y).mean())


def check_with_ort(model: onnx.ModelProto, net, x: np.ndarray) -> float:
    """Largest |probability difference| between onnxruntime and the numpy forward pass."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    prob_ort = sess.run(None, {"x": x.astype(np.float32)})[0]
    logits = net.forward(x.astype(np.float64))
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return float(np.abs(prob_ort - prob).max())


def digits_split():
    """scikit-learn's digits in [0, 1], ``(x, y, rng, train_idx, eval_idx)``: the split of
    :func:`main`, ``rng`` just after it."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(x))
    return x, y, rng, order[N_EVAL:], order[:N_EVAL]


def shipped_split(here: Path):
    """:func:`digits_split`, checked against the shipped ``digits_eval.npz`` in ``here``; None
    (with a message on stderr) if the shipped split differs."""
    x, y, rng, tr, ev = digits_split()
    shipped = np.load(here / "digits_eval.npz")
    if not (np.array_equal(shipped["x"], x[ev]) and np.array_equal(shipped["y"], y[ev])):
        print("digits_eval.npz is not the split of train_digits.py", file=sys.stderr)
        return None
    return x, y, rng, tr, ev


def fit_checked(net, x, y, rng, tr, ev, epochs):
    """Train ``net`` on ``tr`` and export it: ``(train accuracy, eval accuracy, model, largest
    probability difference from onnxruntime)``."""
    acc_train = train(net, x[tr].astype(np.float64), y[tr], rng, epochs)
    acc_eval = float((net.forward(x[ev].astype(np.float64)).argmax(1) == y[ev]).mean())
    model = net.to_onnx()
    return acc_train, acc_eval, model, check_with_ort(model, net, x[ev])


def save_checked(path: Path, model, acc_train: float, acc_eval: float, diff: float,
                 note: str = "") -> bool:
    """Save ``model`` to ``path`` if onnxruntime agreed with the numpy forward pass (largest
    probability difference ``diff`` at most 1e-4) and print one line saying so (``note`` is
    added to it); otherwise print the disagreement on stderr, write nothing and return False."""
    if diff > 1e-4:
        print(f"{path.name}: onnxruntime disagrees with the numpy forward pass by {diff:.3g}",
              file=sys.stderr)
        return False
    onnx.save(model, path)
    print(f"{path.name}: train {acc_train:.4f} eval {acc_eval:.4f}{note}; onnxruntime agrees "
          f"within {diff:.1e}; wrote {path.stat().st_size} bytes")
    return True


def main() -> int:
    x, y, rng, tr, ev = digits_split()
    calib = rng.choice(tr, N_CALIB, replace=False)
    np.savez_compressed(HERE / "digits_calib.npz", x=x[calib], y=y[calib])
    np.savez_compressed(HERE / "digits_eval.npz", x=x[ev], y=y[ev])
    xtr = x[tr].astype(np.float64)
    for name, net, epochs in (("mlp", Mlp(rng), 60), ("cnn", Cnn(rng), 30)):
        acc_train = train(net, xtr, y[tr], rng, epochs)
        acc_eval = float((net.forward(x[ev].astype(np.float64)).argmax(1) == y[ev]).mean())
        model = net.to_onnx()
        diff = check_with_ort(model, net, x[ev])
        if not save_checked(HERE / f"digits_{name}.onnx", model, acc_train, acc_eval, diff):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
