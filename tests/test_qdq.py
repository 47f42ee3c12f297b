"""Pre-quantized (QDQ) models on the core's integer path, against onnxruntime (issue 11)."""

import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dcim.golden.config import CoreConfig
from dcim.golden.quant.check import (NEAR, check_report, core_codes, input_codes, ort_codes,
                                     real_codes)
from dcim.golden.quant.qdq import is_qdq, load_qdq, quantize_linear
from dcim.sim.cli import main
from tables import read_table, rows_by

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QDQ = EXAMPLES / "digits_cnn_qdq.onnx"
CALIB, EVAL = EXAMPLES / "digits_calib.npz", EXAMPLES / "digits_eval.npz"
sys.path.insert(0, str(EXAMPLES))
from make_digits_qdq import quantize_qdq  # noqa: E402


@pytest.fixture(scope="module")
def eval_x():
    return np.load(EVAL)["x"]


def _teacher_forced(qm, q, x, ref):
    """Per integer layer: (layer, input codes from onnxruntime, the core's local output)."""
    forced = {qm.graph.input_name: input_codes(q, x)}
    out = []
    for layer in qm.layers:
        if not layer.op.int_output:
            continue
        args = [forced[t] for t in layer.inputs]
        local = layer.op.run_int(qm, layer, args)
        forced[layer.output] = ref.get(layer.output, local)
        out.append((layer, args, local))
    return out


def _exact_sum_codes(a, b, qa, qb, qy, rounding):
    """The codes of Q(DQ(a) + DQ(b)) from the exact rationals of the float64 scales, one
    rounding per pair of input codes (Python Fractions), and where the exact sum lies within
    0.01 LSB of a tie."""
    pairs, inverse = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_inverse=True)
    sa, sb, sy = (Fraction(float(q.scale)) for q in (qa, qb, qy))
    codes, near = [], []
    for i, j in pairs.T:
        v = (sa * (int(i) - qa.zero_point) + sb * (int(j) - qb.zero_point)) / sy
        r = round(v) if rounding == "rne" else math.floor(v + Fraction(1, 2))
        codes.append(min(max(r + qy.zero_point, -128), 127))
        near.append(abs(v - math.floor(v) - Fraction(1, 2)) < Fraction(1, 100))
    inverse = inverse.reshape(-1)
    return (np.array(codes)[inverse].reshape(a.shape),
            np.array(near)[inverse].reshape(a.shape))


def test_shipped_example_is_what_its_generator_writes(tmp_path):
    out = tmp_path / "q.onnx"
    quantize_qdq(EXAMPLES / "digits_cnn.onnx", out, np.load(CALIB)["x"])
    assert out.read_bytes() == QDQ.read_bytes()


def test_model_parameters_are_taken_as_they_are():
    m = onnx.load(str(QDQ))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    qm, q = load_qdq(QDQ, CoreConfig())
    assert is_qdq(m) and not qm.warnings
    conv1 = qm.layers[0]
    assert conv1.name == "conv1" and conv1.output == "relu1"  # the Relu: ORT dropped it
    w = inits["ConvBnFusion_W_conv1.weight_quantized"].astype(np.int64)
    assert np.array_equal(conv1.weights, w.reshape(16, -1).T)
    assert np.array_equal(conv1.w_scale, inits["ConvBnFusion_W_conv1.weight_scale"])
    assert np.array_equal(conv1.bias, inits["ConvBnFusion_BN_B_conv1.bn.bias_quantized"])
    assert qm.qparams["x"].scale == float(inits["x_scale"])
    assert qm.qparams["x"].zero_point == int(inits["x_zero_point"]) == -128
    # Every quantized tensor stays a layer output: the residual Add is not fused into conv3
    # (the model quantizes conv3's output before adding), nor anything else.
    assert [(lay.name, lay.kind, lay.output) for lay in qm.layers] == [
        ("conv1", "matmul", "relu1"), ("conv2", "matmul", "relu2"),
        ("conv3", "matmul", "conv3.bn.out"), ("residual_add", "add", "relu3"),
        ("maxpool", "maxpool", "pool"), ("conv4", "matmul", "relu4"), ("gap", "avgpool", "gap"),
        ("flatten", "flatten", "gap.flat"), ("fc", "matmul", "logits"),
        ("softmax", "softmax", "prob_QuantizeLinear_Input")]


def test_input_is_quantized_as_quantizelinear_computes_it():
    """float32 division, round half to even: onnxruntime's QuantizeLinear bit for bit on values
    at and around rounding ties (a float64 division differs on some of them)."""
    import onnxruntime as ort

    s = np.float32(0.0371)
    k = np.arange(-3000, 3000)
    x = ((k + 0.5) * np.float64(s)).astype(np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-9))])
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [None])],
                          [numpy_helper.from_array(np.array(s), "s"),
                           numpy_helper.from_array(np.array(3, dtype=np.int8), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0].astype(np.int64)
    assert np.array_equal(quantize_linear(x, s, 3, -128, 127), want)
    assert not np.array_equal(np.clip(np.rint(x.astype(np.float64) / float(s)) + 3, -128, 127),
                              want)


@pytest.mark.parametrize("rounding", ["rne", pytest.param("single", marks=pytest.mark.slow)])
def test_shipped_qdq_cnn_against_onnxruntime(eval_x, rounding):
    """The shipped QDQ CNN, every layer run on onnxruntime's own input codes (onnxruntime
    without graph optimizations: the model's ONNX semantics).

    * Every layer but the residual Add computes one correctly rounded value from exact
      integers: its codes equal rne(v) of the exact value v, independently of onnxruntime (no
      value is an exact tie, so the rounding mode does not matter). onnxruntime differs from
      that only at values within 0.01 LSB of a tie (its float32 sums and scales): those are
      the local differences, no more, no fewer. Max pooling, flatten, conv4, the average pool
      and fc are bit-exact.
    * The Add: onnxruntime computes DQ + DQ -> Q in float32, reproduced exactly by a float32
      emulation; the core rounds the exact real sum once (the host Add of
      docs/calibration.md), reproduced here with Python's Fractions and the rounding mode's
      tie rule (round half to even for rne, floor(v + 1/2) for single). The local
      differences are exactly the codes where onnxruntime's float32 arithmetic moves the sum
      across a rounding boundary: a few, all within 0.01 LSB of a tie (before the Add rounded
      once, 43,700 of its 552,960 codes differed).
    """
    cfg = CoreConfig(rounding=rounding)
    qm, q = load_qdq(QDQ, cfg)
    _, ref = ort_codes(onnx.load(str(QDQ)), eval_x, q)
    assert np.array_equal(ref["x"], input_codes(q, eval_x))
    local_diffs = {}
    for layer, args, local in _teacher_forced(qm, q, eval_x, ref):
        o = ref[layer.output]
        local_diffs[layer.name] = int(np.count_nonzero(local != o))
        if layer.kind == "add":
            (a, b), f32 = layer.inputs, np.float32
            qa, qb, qy = (qm.qparams[t] for t in (a, b, layer.output))
            s = ((args[0] - qa.zero_point).astype(f32) * f32(qa.scale)
                 + (args[1] - qb.zero_point).astype(f32) * f32(qb.scale))
            ort_emul = np.clip(np.rint(s / f32(qy.scale)) + qy.zero_point, -128, 127)
            assert np.array_equal(o, ort_emul)
            core_emul, near = _exact_sum_codes(args[0], args[1], qa, qb, qy, rounding)
            assert np.array_equal(local, core_emul)
            off = core_emul != ort_emul
            assert local_diffs[layer.name] == int(off.sum())
            assert np.all(near[off]), "a difference away from a tie"
            continue
        if not layer.op.requantizes:  # max pool, flatten
            assert np.array_equal(local, o), layer.name
            continue
        v = np.clip(real_codes(qm, layer, args), layer.act_min, layer.act_max)
        exact = np.rint(v)
        assert np.array_equal(local, exact), layer.name
        assert not np.any(np.abs(v - np.floor(v) - 0.5) < 1e-9)  # no exact tie
        off = o != exact
        assert local_diffs[layer.name] == int(off.sum())
        assert np.all(np.abs(v[off] - np.floor(v[off]) - 0.5) < NEAR), layer.name
        assert np.all(np.abs(o[off] - exact[off]) == 1)
    add = local_diffs.pop("residual_add")
    assert add <= 2  # derived above: onnxruntime's float32 near ties only
    assert [k for k, n in local_diffs.items() if n == 0] == [
        "maxpool", "conv4", "gap", "flatten", "fc"]
    assert all(n <= 2 for n in local_diffs.values())
    # The report counts the same and gives the same causes.
    r = check_report(QDQ, EVAL, cfg)
    by = {lay["name"]: lay for lay in r["layers"]}
    assert by["residual_add"]["local_differ"] == add
    assert by["residual_add"]["causes"]["ort float"] == add
    for name, n in local_diffs.items():
        assert by[name]["local_differ"] == n
        assert by[name]["causes"]["ort float"] == n
    assert by["residual_add"]["causes"]["requantization"] == 0
    assert r["reference"]["top1_agreement"] == 1.0
    assert r["accuracy"]["core"] == r["accuracy"]["reference"] == pytest.approx(536 / 540)
    assert r["locally_exact_layers"] == ["maxpool", "conv4", "gap", "flatten", "fc"]


@pytest.mark.parametrize("activations", ["int8", "uint8"])
def test_qdq_mlp_is_bit_exact(tmp_path, activations):
    """onnxruntime's QDQ of the shipped MLP (int8 or uint8 activations; the uint8 codes moved
    to int8 exactly): every quantized tensor bit-exact with onnxruntime, in both rounding
    modes (Gemm layers only: one correctly rounded value each, no tie, no value near one)."""
    path = tmp_path / "mlp_qdq.onnx"
    quantize_qdq(EXAMPLES / "digits_mlp.onnx", path, np.load(CALIB)["x"], activations)
    for rounding in ("rne", "single"):
        r = check_report(path, EVAL, CoreConfig(rounding=rounding))
        assert r["bit_exact"], r["layers"]
        assert r["reference"]["logits_identical_samples"] == 540
        assert [lay["name"] for lay in r["layers"]] == ["flatten", "fc1", "fc2", "fc3"]
        assert r["accuracy"]["core"] == r["accuracy"]["reference"]


def _torch_style_mlp():
    """The shipped MLP quantized the way PyTorch exports a quantized model: float weights
    quantized in the graph (QuantizeLinear -> DequantizeLinear on the initializer; fc1 per
    tensor, fc2 and fc3 per channel), float biases, uint8 activations with scales and zero
    points in Constant nodes, the Relu before the activation's QuantizeLinear."""
    m = onnx.load(str(EXAMPLES / "digits_mlp.onnx"))
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    h = np.load(CALIB)["x"].reshape(-1, 64).astype(np.float64)
    ranges = []
    for i in (1, 2, 3):
        h = h @ w[f"fc{i}.weight"].T + w[f"fc{i}.bias"]
        h = np.maximum(h, 0) if i < 3 else h
        ranges.append((min(h.min(), 0.0), max(h.max(), 0.0)))
    nodes, inits = [], []

    def const(name, value):
        nodes.append(helper.make_node("Constant", [], [name],
                                      value=numpy_helper.from_array(value, name)))

    def qdq(t, lo, hi, name):
        s = np.float32((hi - lo) / 255)
        const(f"{name}.s", np.array(s))
        const(f"{name}.z", np.array(int(np.clip(np.rint(-lo / s), 0, 255)), dtype=np.uint8))
        nodes.append(helper.make_node("QuantizeLinear", [t, f"{name}.s", f"{name}.z"],
                                      [f"{name}.q"], name=f"{name}.quant"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}.q", f"{name}.s",
                                                           f"{name}.z"], [f"{name}.dq"],
                                      name=f"{name}.dequant"))
        return f"{name}.dq"

    h = qdq("x", 0.0, 1.0, "x")
    nodes.append(helper.make_node("Flatten", [h], ["flat"], name="flatten", axis=1))
    h = "flat"
    for i in (1, 2, 3):
        W = w[f"fc{i}.weight"]
        per_channel = i > 1
        s = (np.abs(W).max(axis=1) if per_channel else np.abs(W).max()) / 127
        zp = np.zeros(np.shape(s), dtype=np.int8)
        inits += [numpy_helper.from_array(W.astype(np.float32), f"fc{i}.w"),
                  numpy_helper.from_array(np.asarray(s, dtype=np.float32), f"fc{i}.ws"),
                  numpy_helper.from_array(zp, f"fc{i}.wz"),
                  numpy_helper.from_array(w[f"fc{i}.bias"].astype(np.float32), f"fc{i}.b")]
        axis = {"axis": 0} if per_channel else {}
        nodes += [helper.make_node("QuantizeLinear", [f"fc{i}.w", f"fc{i}.ws", f"fc{i}.wz"],
                                   [f"fc{i}.wq"], name=f"fc{i}.wquant", **axis),
                  helper.make_node("DequantizeLinear", [f"fc{i}.wq", f"fc{i}.ws", f"fc{i}.wz"],
                                   [f"fc{i}.wdq"], name=f"fc{i}.wdequant", **axis),
                  helper.make_node("Gemm", [h, f"fc{i}.wdq", f"fc{i}.b"], [f"fc{i}"],
                                   name=f"fc{i}", transB=1)]
        h = f"fc{i}"
        if i < 3:
            nodes.append(helper.make_node("Relu", [h], [f"relu{i}"], name=f"relu{i}"))
            h = f"relu{i}"
        h = qdq(h, *ranges[i - 1], f"a{i}")
    nodes.append(helper.make_node("Softmax", [h], ["prob"], name="softmax", axis=1))
    g = helper.make_graph(nodes, "torch_style", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_pytorch_export_style(tmp_path, eval_x):
    """Weights quantized in the graph give the codes QuantizeLinear computes; the float bias
    is rounded to int32 at s_x*s_w (a warning per layer), and every local difference from
    onnxruntime is a code where the float bias and its int32 rounding round differently."""
    path = tmp_path / "torch.onnx"
    onnx.save(_torch_style_mlp(), str(path))
    qm, q = load_qdq(path, CoreConfig())
    assert qm.warnings == [f"layer 'fc{i}': float bias (not int32 in the model): quantized at "
                           "s_x*s_w" for i in (1, 2, 3)]
    fc1 = qm.layers[1]
    assert fc1.output == "relu1" and fc1.act_min == qm.qparams["relu1"].zero_point == -128
    w = numpy_helper.to_array(next(t for t in onnx.load(str(path)).graph.initializer
                                   if t.name == "fc1.w"))
    s = np.float32(np.abs(w.astype(np.float64)).max() / 127)
    assert np.array_equal(fc1.weights.T, np.clip(np.rint(w / s), -128, 127))
    r = check_report(path, EVAL, CoreConfig())
    assert r["reference"]["top1_agreement"] == 1.0
    for lay in r["layers"]:
        assert lay["causes"]["float bias"] == lay["local_differ"], lay
    assert sum(lay["local_differ"] for lay in r["layers"]) > 0
    # With the model's float bias in the exact value, onnxruntime rounds it correctly.
    _, ref = ort_codes(onnx.load(str(path)), eval_x, q)
    for layer, args, local in _teacher_forced(qm, q, eval_x, ref):
        if layer.kind == "matmul":
            v = np.clip(real_codes(qm, layer, args, model_bias=True), -128, 127)
            assert np.array_equal(ref[layer.output], np.rint(v)), layer.name
            assert np.array_equal(local, np.rint(np.clip(real_codes(qm, layer, args), -128,
                                                         127)))


def _avgpool_qdq():
    """x -> Q/DQ -> AveragePool 2x2 / 2 -> Q/DQ at the same power-of-two scale: the output is a
    window's code sum over 4, a rounding tie whenever the sum is 2 mod 4 (float32 exact)."""
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "s", "z"], ["xq"], name="xquant"),
             n("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="xdequant"),
             n("AveragePool", ["xd"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             n("QuantizeLinear", ["p", "s", "z"], ["pq"], name="pquant"),
             n("DequantizeLinear", ["pq", "s", "z"], ["y"], name="pdequant")]
    g = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 2, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [numpy_helper.from_array(np.array(0.0625, dtype=np.float32), "s"),
         numpy_helper.from_array(np.array(5, dtype=np.int8), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_rounding_ties_are_the_rounding_mode(tmp_path):
    """At an exact tie onnxruntime rounds half to even; the core's ``single`` mode rounds half
    up, so they differ exactly where the window sum S (centred codes) is 2 mod 8 (v = S / 4 =
    k + 1/2 with k even): counted independently here. With ``rne`` every code agrees."""
    path = tmp_path / "pool.onnx"
    onnx.save(_avgpool_qdq(), str(path))
    x = (np.random.default_rng(3).integers(-60, 60, (50, 2, 8, 8)) * 0.0625).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    codes = np.rint(x / 0.0625).astype(np.int64)  # centred: the zero point cancels
    s = codes.reshape(50, 2, 4, 2, 4, 2).sum(axis=(3, 5))
    want = int(np.count_nonzero(s % 8 == 2))
    assert want > 100
    r = check_report(path, tmp_path / "d.npz", CoreConfig(rounding="single"))
    (pool,) = r["layers"]
    assert pool["local_differ"] == pool["differ"] == want
    assert pool["causes"]["tie"] == want and pool["max_lsb_diff"] == 1
    r = check_report(path, tmp_path / "d.npz", CoreConfig(rounding="rne"))
    assert r["bit_exact"]


# ----------------------------------------------------------------------------------------------
# Unsupported QDQ patterns: one line naming the node, its op and the reason.
def _qdq_conv(act_scale=None, w_zp=0, dq_scale=None, float_weight=False, skip_q=False,
              raw_relu=False, opset=13, act_zp_type=np.int8):
    """x -> Q/DQ -> Conv(w: int8 DQ) -> Q/DQ -> Relu -> Conv -> Q/DQ -> y, variants broken."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(0.02, dtype=np.float32), "s"),
             numpy_helper.from_array(np.array(0, dtype=act_zp_type), "z"),
             numpy_helper.from_array(rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8),
                                     "wq"),
             numpy_helper.from_array(np.full(3, 0.01, dtype=np.float32), "ws"),
             numpy_helper.from_array(np.full(3, w_zp, dtype=np.int8), "wz"),
             numpy_helper.from_array(rng.integers(-127, 128, (3, 3, 1, 1)).astype(np.int8),
                                     "w2q")]
    a_scale = "s"
    if act_scale is not None:
        inits.append(numpy_helper.from_array(np.asarray(act_scale, dtype=np.float32), "sa"))
        a_scale = "sa"
    dq_s = "s"
    if dq_scale is not None:
        inits.append(numpy_helper.from_array(np.array(dq_scale, dtype=np.float32), "s2"))
        dq_s = "s2"
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "s", "z"], ["xq"], name="xquant"),
             n("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="xdequant")]
    if float_weight:
        inits.append(numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
                                             "wf"))
        w = "wf"
    else:
        nodes.append(n("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="wdequant", axis=0))
        w = "wd"
    nodes.append(n("Conv", ["xd", w], ["c"], name="conv", pads=[1, 1, 1, 1]))
    if raw_relu:
        nodes += [n("QuantizeLinear", ["c", "s", "z"], ["cq"], name="cquant"),
                  n("Relu", ["cq"], ["r"], name="relu")]
    elif skip_q:
        nodes.append(n("Relu", ["c"], ["r"], name="relu"))
    else:
        nodes += [n("QuantizeLinear", ["c", a_scale, "z"], ["cq"], name="cquant",
                    **({"axis": 1} if act_scale is not None else {})),
                  n("DequantizeLinear", ["cq", dq_s, "z"], ["cd"], name="cdequant"),
                  n("Relu", ["cd"], ["r"], name="relu")]
    nodes += [n("DequantizeLinear", ["w2q", "ws", "wz"], ["w2"], name="w2dequant", axis=0),
              n("Conv", ["r", "w2"], ["c2"], name="conv2"),
              n("QuantizeLinear", ["c2", "s", "z"], ["c2q"], name="c2quant"),
              n("DequantizeLinear", ["c2q", "s", "z"], ["y"], name="c2dequant")]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["N", 2, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                         ["N", 3, 5, 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10 if opset >= 21 else 8
    return m


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"act_scale": [0.02, 0.03, 0.04]},
     "QuantizeLinear node 'cquant': a per-axis scale of shape (3,) on an activation (the core "
     "quantizes activations per tensor) is not supported"),
    ({"w_zp": 3}, "DequantizeLinear node 'wdequant': weight zero point 3 != 0 (the core's "
                  "weights are symmetric) is not supported"),
    ({"dq_scale": 0.05},
     "DequantizeLinear node 'cdequant': scale 0.05 and zero point 0 that differ from those of "
     "QuantizeLinear 'cquant' (0.02, 0): a requantization between two ops is not supported"),
    ({"float_weight": True},
     "Conv node 'conv': float weights (not the dequantized int8 weights of the model: "
     "unquantized, or changed by a folded BatchNormalization, Mul or alpha) are not supported"),
    ({"skip_q": True},
     "Conv node 'conv': output 'r' is not quantized (no QuantizeLinear after it; the core's "
     "layers emit int8) is not supported"),
    ({"raw_relu": True},
     "Relu node 'relu': input 'cq', codes (a QuantizeLinear output not dequantized) is not "
     "supported"),
    ({"act_zp_type": np.int16, "opset": 21},
     "QuantizeLinear node 'xquant': int16 codes (the core computes 8-bit codes: int8 or uint8) "
     "is not supported"),
])
def test_unsupported_patterns_are_one_line(kwargs, message):
    m = _qdq_conv(**kwargs)
    with pytest.raises(ValueError) as info:
        load_qdq(m, CoreConfig())
    assert str(info.value) == message


def test_batchnorm_quantized_apart_from_its_conv(tmp_path):
    """quantize_static without onnxruntime's pre-processing quantizes each Conv and its
    BatchNormalization separately: one line naming the BatchNormalization."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from dcim.golden.quant.ort_peer import calibration_reader

    calib = np.load(CALIB)["x"]

    out = tmp_path / "nopre.onnx"
    quantize_static(str(EXAMPLES / "digits_cnn.onnx"), str(out), calibration_reader("x", [calib]),
                    quant_format=QuantFormat.QDQ, per_channel=True)
    with pytest.raises(ValueError) as info:
        load_qdq(out, CoreConfig())
    assert str(info.value) == (
        "BatchNormalization node 'conv1.bn': a BatchNormalization of the quantized tensor "
        "'conv1.out' (quantized apart from the Conv before it; fold it first, e.g. with "
        "onnxruntime's quant_pre_process) is not supported")


def test_supported_variant_and_float_models():
    qm, _ = load_qdq(_qdq_conv(), CoreConfig())
    assert [(lay.name, lay.kind, lay.output) for lay in qm.layers] == [
        ("conv", "matmul", "c"), ("relu", "clamp", "r"), ("conv2", "matmul", "c2")]
    assert qm.qparams["r"] == qm.qparams["c"]  # a clamp keeps its input's parameters
    with pytest.raises(ValueError, match=r"^model 'digits_cnn' has no QuantizeLinear/"
                                         r"DequantizeLinear nodes \(a float model: calibrate it "
                                         r"instead\)$"):
        load_qdq(EXAMPLES / "digits_cnn.onnx", CoreConfig())


# ----------------------------------------------------------------------------------------------
def test_dcim_check_cli(tmp_path, capsys):
    data = np.load(EVAL)
    ev = tmp_path / "ev.npz"
    np.savez(ev, x=data["x"][:64], y=data["y"][:64])
    report = tmp_path / "r.json"
    code = main(["check", str(QDQ), "--eval", str(ev), "--rounding", "rne", "--json",
                 str(report), "--min-agreement", "99.9"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    lines = cap.out.splitlines()
    assert lines[0] == f"QDQ model {QDQ}: 64 samples of {ev}; the core 64x32, rounding rne"
    rows = rows_by(read_table(cap.out, "causes of the local differences"), "layer")
    assert rows["residual_add"]["kind"] == "add"
    # the host Add rounds the exact sum once
    assert "requantization" not in rows["residual_add"]["causes of the local differences"]
    r = json.loads(report.read_text())
    assert list(rows) == [lay["name"] for lay in r["layers"]]
    assert [(row["elements"], row["differ"]) for row in rows.values()] == [
        (str(lay["elements"]), str(lay["differ"])) for lay in r["layers"]]
    acc = rows_by(read_table(cap.out, "top-1 accuracy"), "flow")
    assert acc["core integer path (the model scales and codes)"]["top-1 accuracy"] == \
        f"{100 * r['accuracy']['core']:.2f} %"
    assert acc["onnxruntime optimized (integer kernels, as deployed)"]["top-1 accuracy"] == \
        f"{100 * r['accuracy']['optimized']:.2f} %"
    assert any(ln.strip().startswith("locally bit-exact: ") and "maxpool" in ln
               for ln in lines)
    r = json.loads(report.read_text())
    assert r["reference"]["top1_agreement"] == 1.0
    code = main(["check", str(QDQ), "--eval", str(ev), "--min-agreement", "101"])
    cap = capsys.readouterr()
    assert code == 1
    assert cap.err.strip().splitlines()[-1] == (
        "dcim: top-1 agreement with onnxruntime is 100.00 % (limit 101.0 %)")


def test_calibrate_points_a_qdq_model_to_check(capsys):
    code = main(["calibrate", str(QDQ), "--calib", str(CALIB), "--eval", str(EVAL)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (f"dcim: error: {QDQ} is already quantized (QuantizeLinear/DequantizeLinear "
                   f"nodes): dcim check {QDQ} --eval DATA.npz runs it on the core with its own "
                   "scales and compares with onnxruntime")


def test_core_codes_run_the_tiled_integer_path(eval_x):
    """The same model on a 16x8 array (conv2-conv4: K = 144 in 9 K-passes, fc: 4 column
    tiles): every code identical to the default array's."""
    big, q = load_qdq(QDQ, CoreConfig())
    small, _ = load_qdq(QDQ, CoreConfig(rows=16, cols=8))
    xq = input_codes(q, eval_x[:64])
    _, a = core_codes(big, xq)
    _, b = core_codes(small, xq)
    assert sorted(a) == sorted(b)
    for t in a:
        assert np.array_equal(a[t], b[t]), t
    assert len(small.layers[1].tiles) == 2 and len(small.layers[-2].tiles) == 2
