"""Quantization maths on hand-computed cases, and the integer path against exact formulas."""

import dataclasses
from fractions import Fraction
import math

import numpy as np
import pytest
from onnx import helper
import onnx_graphs as graphs
from onnx_graphs import gemm_model, init, model, ort_run

from dcim.golden.arith import quantize_multiplier
from dcim.golden.config import CoreConfig
from dcim.golden.quant.onnx_import import import_model
from dcim.golden.quant.qmodel import calibration_tensors, plan, quantize_model, run
from dcim.golden.quant.scheme import (QParams, act_qparams, quantize, quantize_bias,
                                      quantize_weights, round_like, sqnr_db)

CFG = CoreConfig()


@pytest.mark.parametrize(
    ("cfg", "lo", "hi", "scale", "zp"),
    [
        (CFG, 0.0, 2.55, 0.01, -128),
        (CFG, -1.0, 1.55, 0.01, -28),
        (CFG, 0.5, 2.0, 2.0 / 255, -128),       # widened to contain 0
        (CFG, -3.0, -1.0, 3.0 / 255, 127),
        (CoreConfig(act_bits=4), 0.0, 1.5, 0.1, -8),
    ],
)
def test_act_qparams(cfg, lo, hi, scale, zp):
    qp = act_qparams(cfg, lo, hi)
    assert qp.scale == pytest.approx(scale, rel=1e-12)
    assert (qp.zero_point, qp.fallback) == (zp, False)


def test_act_qparams_fallback_and_errors():
    assert act_qparams(CFG, 0.0, 0.0) == QParams(1.0, 0, True)
    with pytest.raises(ValueError, match=r"^calibration needs signed activations "
                                         r"\(act_signed = true\): the DPU emits signed int8$"):
        act_qparams(CoreConfig(act_signed=False), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^calibrated range must be finite with lo <= hi, "
                                         r"got \[0.0, nan\]$"):
        act_qparams(CFG, 0.0, float("nan"))


def test_quantize_clamps_and_rounds_half_even():
    qp = QParams(0.5, -10)
    x = np.array([0.25, 0.75, -1000.0, 1000.0, 1.0])
    assert quantize(x, qp, CFG).tolist() == [-10, -8, -128, 127, -8]


def test_quantize_weights_per_channel():
    w = np.array([[0.3, -1.0, 0.25], [0.0, 0.0, 0.0], [2.0, 0.75, -0.5]])
    q, s, zero = quantize_weights(CFG, w)
    assert q.tolist() == [[38, -127, 32], [0, 0, 0], [127, 48, -32]]
    assert s.tolist() == pytest.approx([1 / 127, 1.0, 2 / 127])
    assert zero.tolist() == [False, True, False]
    q4, _, _ = quantize_weights(CoreConfig(weight_bits=4), w)
    assert q4[0].tolist() == [2, -7, 2]
    with pytest.raises(ValueError, match=r"^calibration needs signed weights"):
        quantize_weights(CoreConfig(weight_signed=False), w)


def test_quantize_bias_saturates():
    q, sat = quantize_bias(np.array([1.0, -2.0, 1e10]), 0.5, np.array([0.01, 0.02, 1e-3]))
    assert q.tolist() == [200, -200, 2**31 - 1]
    assert sat == 1


def test_round_like_tie_rules():
    v = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.4999])
    assert round_like(v, "single").tolist() == [-2, -1, 0, 1, 2, 3, 0]
    assert round_like(v, "double").tolist() == [-3, -2, -1, 1, 2, 3, 0]
    assert round_like(v, "rne").tolist() == [-2, -2, 0, 0, 2, 2, 0]


def test_sqnr():
    assert sqnr_db([3.0, 4.0], [3.0, 3.0]) == pytest.approx(10 * math.log10(25))
    assert sqnr_db([1.0], [1.0]) == math.inf


# ----------------------------------------------------------------------------------------------
def _quantized(m, x, cfg, ranges=None, lut_in_dpu=True):
    g = import_model(m)
    layers = plan(g, residual_in_dpu=cfg.dpu_residual, lut_in_dpu=lut_in_dpu)
    env = g.forward(x, keep_all=True)
    if ranges is None:
        ranges = {t: (float(env[t].min()), float(env[t].max()))
                  for t in calibration_tensors(g, layers)}
    return quantize_model(g, layers, ranges, cfg)


@pytest.mark.parametrize("rounding", ["single", "rne"])
def test_integer_gemm_matches_exact_formula(rounding):
    """K = 10 over rows = 4 (three K-passes) and N = 5 over cols = 2 (three column tiles)."""
    rng = np.random.default_rng(3)
    cfg = CoreConfig(rows=4, cols=2, rounding=rounding)
    m = gemm_model(rng.normal(size=(5, 10)), rng.normal(size=5), relu=True)
    x = rng.normal(size=(20, 10)).astype(np.float32)
    qm = _quantized(m, x, cfg)
    (layer,) = [lay for lay in qm.layers if lay.kind == "matmul"]
    qin, qout = qm.qparams["x"], qm.qparams["y"]
    xq = quantize(x, qin, cfg)
    _, codes = run(qm, x, keep=True)
    for b in range(len(x)):
        for c in range(5):
            acc = sum((int(xq[b, k]) - qin.zero_point) * int(layer.weights[k, c])
                      for k in range(10)) + int(layer.bias[c])
            v = Fraction(acc * int(layer.dpu.multiplier[c]), 2 ** (31 - int(layer.dpu.shift[c])))
            r = math.floor(v + Fraction(1, 2))
            if rounding == "rne" and v - math.floor(v) == Fraction(1, 2):
                r = math.floor(v) + (math.floor(v) % 2)
            want = min(max(r + qout.zero_point, qout.zero_point), 127)  # fused ReLU
            assert codes["y"][b, c] == want
    # The multiplier approximates s_x * s_w / s_y.
    real = qin.scale * layer.w_scale / qout.scale
    got = layer.dpu.multiplier * 2.0 ** (layer.dpu.shift - 31)
    assert np.allclose(got, real, rtol=2**-30)


def _residual_model(rng):
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c"], name="c2", pads=[1, 1, 1, 1],
                              strides=[1, 1]),
             helper.make_node("Add", ["c", "r1"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["t"], name="relu2"),
             helper.make_node("MaxPool", ["t"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["y"], name="gap")]
    inits = [init("w1", rng.normal(size=(3, 2, 3, 3))), init("b1", rng.normal(size=3)),
             init("w2", rng.normal(size=(3, 3, 3, 3)))]
    return model(nodes, inits, [2, 6, 6])


@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
@pytest.mark.parametrize("dpu_residual", [True, False])
def test_fake_quant_agrees_with_integer_path(dpu_residual, rounding):
    rng = np.random.default_rng(4)
    cfg = CoreConfig(rows=8, cols=2, dpu_residual=dpu_residual, rounding=rounding)
    x = rng.normal(size=(6, 2, 6, 6)).astype(np.float32)
    qm = _quantized(_residual_model(rng), x, cfg)
    kinds = [lay.kind for lay in qm.layers]
    assert kinds == (["matmul", "matmul", "maxpool", "avgpool"] if dpu_residual else
                     ["matmul", "matmul", "add", "maxpool", "avgpool"])
    out_int, codes = run(qm, x, keep=True)
    out_fake, fake = run(qm, x, fake=True, keep=True)
    assert sorted(codes) == sorted(fake) and len(codes) >= 5
    for t in codes:
        assert np.array_equal(codes[t], fake[t]), t
    # And the INT8 result is close to the float model.
    ref = qm.graph.forward(x)["y"]
    assert sqnr_db(ref, out_int) > 25


def test_quantization_warnings():
    cfg = CoreConfig(psum_bits=22)
    w = np.ones((3, 200))
    w[1] = 0.0  # an all-zero output channel
    m = gemm_model(w, np.array([-1.0, -1.0, -1.0]), relu=True)
    x = np.zeros((4, 200), dtype=np.float32)
    qm = _quantized(m, x, cfg, ranges={"x": (0.0, 1.0), "y": (0.0, 0.0)})
    assert qm.warnings == [
        "tensor 'y' is constant zero on the calibration data (scale 0): fallback scale 1.0, "
        "zero point 0",
        "layer 'fc': 1 output channel(s) with all-zero weights: fallback weight scale 1.0",
        "layer 'fc': worst-case accumulator 3251200 (2**21.6) exceeds the 22-bit partial sum "
        "(the core saturates it)",
    ]


def _all_kinds_model(rng):
    """Every integer layer kind: conv + ReLU6 (Clip fused), average pool, a standalone Add with
    a fused Relu, a standalone Clip, flatten, Gemm, final Softmax."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="c1", pads=[0, 1, 0, 1],
                              strides=[1, 2]),
             helper.make_node("Clip", ["a", "lo", "hi"], ["a6"], name="relu6"),
             helper.make_node("AveragePool", ["a6"], ["p"], name="avg", kernel_shape=[2, 2],
                              strides=[1, 1]),
             helper.make_node("MaxPool", ["a6"], ["m"], name="max", kernel_shape=[2, 2],
                              strides=[1, 1]),
             helper.make_node("Add", ["p", "m"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["sr"], name="relu"),
             helper.make_node("Flatten", ["sr"], ["f"], name="flat", axis=1),
             helper.make_node("Clip", ["f", "lo", "hi2"], ["fc"], name="clip"),
             helper.make_node("Gemm", ["fc", "w2", "b2"], ["g"], name="fc", transB=1),
             helper.make_node("Softmax", ["g"], ["y"], name="sm", axis=1)]
    inits = [init("w1", rng.normal(size=(3, 2, 3, 3))), init("b1", rng.normal(size=3)),
             init("lo", np.float32(0.0)), init("hi", np.float32(6.0)),
             init("hi2", np.float32(4.0)),
             init("w2", rng.normal(size=(4, 3 * 3 * 3))), init("b2", rng.normal(size=4))]
    return model(nodes, inits, [2, 6, 7], out_rank=2)


@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
def test_every_layer_kind(rounding):
    rng = np.random.default_rng(5)
    cfg = CoreConfig(rows=8, cols=2, rounding=rounding)
    x = (3 * rng.normal(size=(16, 2, 6, 7))).astype(np.float32)
    qm = _quantized(_all_kinds_model(rng), x, cfg)
    assert [lay.kind for lay in qm.layers] == ["matmul", "avgpool", "maxpool", "add", "flatten",
                                               "clamp", "matmul", "softmax"]
    conv = qm.layers[0]
    # ReLU6 fused as a clamp: 0.0 is the zero point, 6.0 its code (at most 127)
    qp = qm.qparams["a6"]
    assert (conv.act_min, conv.act_max) == (
        qp.zero_point, min(127, round(6.0 / qp.scale) + qp.zero_point))
    prob, codes = run(qm, x, keep=True)
    prob_fake, fake = run(qm, x, fake=True, keep=True)
    for t in codes:
        assert np.array_equal(codes[t], fake[t]), t
    assert np.array_equal(prob, prob_fake)
    assert np.allclose(prob.sum(axis=1), 1.0)
    ref = qm.graph.forward(x, keep_all=True)
    for t in ("a6", "p", "sr", "fc", "g"):
        assert sqnr_db(ref[t], qm.qparams[t].scale * (codes[t] - qm.qparams[t].zero_point)) > 25


# ----------------------------------------------------------------------------------------------
# The op graphs of tests/onnx_graphs.py through the integer path, against onnxruntime FP32.
def _int8_vs_ort(m, in_shape, cfg=CoreConfig(rows=16, cols=4), n=64, seed=11, lut_in_dpu=True):
    """Quantize on ``n`` random samples (minmax), run the integer path and the fake-quant twin
    on them; return the quantized model and the SQNR (dB) of the INT8 output against
    onnxruntime's FP32 output."""
    x = np.random.default_rng(seed).normal(size=(n, *in_shape)).astype(np.float32)
    qm = _quantized(m, x, cfg, lut_in_dpu=lut_in_dpu)
    out, codes = run(qm, x, keep=True)
    _, fake = run(qm, x, fake=True, keep=True)
    for t in codes:
        assert np.array_equal(codes[t], fake[t]), t
    return qm, sqnr_db(ort_run(m, x), out)


@pytest.mark.parametrize("build", [graphs.identity_model, graphs.shape_flatten_model])
def test_int8_identity_and_shape_flatten(build):
    qm, sqnr = _int8_vs_ort(*build(np.random.default_rng(12)))
    assert [lay.kind for lay in qm.layers] == ["matmul", "flatten", "matmul"]  # ReLU fused
    assert sqnr > 30


@pytest.mark.parametrize(("op", "broadcast", "dpu_residual", "kinds"), [
    ("Add", False, True, ["matmul", "matmul"]),           # fused into c2's DPU
    ("Add", False, False, ["matmul", "matmul", "add"]),
    ("Add", True, True, ["matmul", "avgpool", "add"]),    # shapes differ: not fused
    ("Sub", False, True, ["matmul", "matmul", "sub"]),
    ("Sub", True, True, ["matmul", "avgpool", "sub"]),
    ("Mul", False, True, ["matmul", "matmul", "mul"]),
    ("Mul", True, True, ["matmul", "avgpool", "mul"]),
])
@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
def test_int8_two_tensor_ops(op, broadcast, dpu_residual, kinds, rounding):
    cfg = CoreConfig(rows=16, cols=4, rounding=rounding, dpu_residual=dpu_residual)
    qm, sqnr = _int8_vs_ort(*graphs.binary_model(np.random.default_rng(13), op, broadcast), cfg)
    assert [lay.kind for lay in qm.layers] == kinds
    assert sqnr > 30


def test_int8_mul_is_the_exact_product():
    """Each Mul code from the centred input codes, with Fractions (single rounding)."""
    cfg = CoreConfig(rows=16, cols=4)
    qm, _ = _int8_vs_ort(*graphs.binary_model(np.random.default_rng(14), "Mul"), cfg, n=4)
    mul = qm.layers[-1]
    x = np.random.default_rng(11).normal(size=(4, 2, 5, 5)).astype(np.float32)
    _, codes = run(qm, x, keep=True)
    (qa, qb), qy = (qm.qparams[t] for t in mul.inputs), qm.qparams["y"]
    m, s = mul.mults[0]
    a, b = (codes[t].ravel().tolist() for t in mul.inputs)
    want = [min(127, max(-128, math.floor(Fraction((i - qa.zero_point) * (j - qb.zero_point) * m,
                                                   2 ** (31 - s)) + Fraction(1, 2))
                         + qy.zero_point)) for i, j in zip(a, b)]
    assert codes["y"].ravel().tolist() == want


def test_int8_constant_sub_and_mul_fold_into_the_conv():
    qm, sqnr = _int8_vs_ort(*graphs.constant_fold_model(np.random.default_rng(15)))
    assert [(lay.kind, lay.fused) for lay in qm.layers] == [("matmul", ("relu",))]
    assert sqnr > 30


@pytest.mark.parametrize("axis", [1, 3])
@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
def test_int8_concat(axis, rounding):
    cfg = CoreConfig(rows=16, cols=4, rounding=rounding)
    qm, sqnr = _int8_vs_ort(*graphs.concat_model(np.random.default_rng(16), axis), cfg)
    cat = next(lay for lay in qm.layers if lay.kind == "concat")
    assert cat.fused == ("relu2",)
    assert sqnr > 30


@pytest.mark.parametrize("kwargs", [
    {"count_include_pad": 0}, {"count_include_pad": 1},
    {"kernel": (2, 3), "strides": (2, 2), "pads": (0, 1, 1, 2)},
])
@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
def test_int8_padded_average_pool(kwargs, rounding):
    cfg = CoreConfig(rows=16, cols=4, rounding=rounding)
    qm, sqnr = _int8_vs_ort(*graphs.avgpool_model(np.random.default_rng(17), **kwargs), cfg)
    pool = qm.layers[-1]
    # One multiplier per divisor: the window size, or each count of real inputs in a window.
    assert len(pool.mults) == (1 if kwargs.get("count_include_pad") else
                               pool.op.kernel[0] * pool.op.kernel[1])
    assert sqnr > 30


def test_int8_average_pool_excluding_pads_is_exact():
    """Every code of a padded pool (count_include_pad 0), from loops over the windows."""
    cfg = CoreConfig(rows=16, cols=4)
    m, shape = graphs.avgpool_model(np.random.default_rng(18), kernel=(3, 2), strides=(2, 1),
                                    pads=(1, 0, 2, 1))
    qm, _ = _int8_vs_ort(m, shape, cfg, n=3)
    x = np.random.default_rng(11).normal(size=(3, *shape)).astype(np.float32)
    _, codes = run(qm, x, keep=True)
    qin, qout = qm.qparams["r"], qm.qparams["y"]
    q = codes["r"]
    h, w = q.shape[2:]
    for n, c, i, j in np.ndindex(codes["y"].shape):
        rows = [a for a in range(2 * i - 1, 2 * i + 2) if 0 <= a < h]
        cols = [b for b in range(j, j + 2) if 0 <= b < w]
        total = sum(int(q[n, c, a, b]) - qin.zero_point for a in rows for b in cols)
        mult, shift = quantize_multiplier(qin.scale / (len(rows) * len(cols) * qout.scale))
        v = math.floor(Fraction(total * mult, 2 ** (31 - shift)) + Fraction(1, 2))
        assert codes["y"][n, c, i, j] == min(127, max(-128, v + qout.zero_point))


@pytest.mark.parametrize("kwargs", [
    {}, {"dilations": (3, 2), "strides": (2, 1), "pads": (2, 0, 1, 3)},
    {"pool": True, "opset": 19},
])
@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
def test_int8_dilated_conv_and_pools(kwargs, rounding):
    cfg = CoreConfig(rows=16, cols=4, rounding=rounding)
    qm, sqnr = _int8_vs_ort(*graphs.dilated_model(np.random.default_rng(19), **kwargs), cfg)
    assert qm.layers[0].weights.shape == (2 * 3 * 3, 4)  # K does not grow with the dilation
    assert sqnr > 30


@pytest.mark.parametrize(("kwargs", "cfg", "tiles"), [
    # 2 groups of Kg = 18 rows, Ng = 4 columns: one group per 16x4 tile, K-passes of 16 rows
    ({}, CoreConfig(rows=16, cols=4), [(18, 0, 4), (18, 4, 8)]),
    # the same on 64x8: both groups in one tile (36 rows, 8 columns)
    ({}, CoreConfig(rows=64, cols=8), [(36, 0, 8)]),
    # depthwise 3x3, 4 channels on 16x4: one channel (9 rows, 1 column) per tile
    ({"cout": 4, "groups": 4}, CoreConfig(rows=16, cols=4), [(9, c, c + 1) for c in range(4)]),
    # on 32x4: three channels per tile (27 rows), then the fourth
    ({"cout": 4, "groups": 4}, CoreConfig(rows=32, cols=4), [(27, 0, 3), (9, 3, 4)]),
    # 2 groups of Ng = 4 outputs on 2 columns: two column tiles per group
    ({}, CoreConfig(rows=32, cols=2), [(18, 0, 2), (18, 2, 4), (18, 4, 6), (18, 6, 8)]),
])
@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
def test_int8_grouped_conv(kwargs, cfg, tiles, rounding):
    cfg = dataclasses.replace(cfg, rounding=rounding)
    qm, sqnr = _int8_vs_ort(*graphs.grouped_model(np.random.default_rng(20), **kwargs), cfg)
    conv = qm.layers[0]
    assert [(t.weights.shape[0], t.col0, t.col1) for t in conv.tiles] == tiles
    assert sqnr > 30


def test_grouped_conv_tiles_hold_only_their_groups():
    """Every tile's weights are the layer's weights of its groups (block diagonal), and each
    output channel's column reads only its own group's input rows."""
    cfg = CoreConfig(rows=32, cols=4)
    qm, _ = _int8_vs_ort(*graphs.grouped_model(np.random.default_rng(21), cout=4, groups=4), cfg)
    conv = qm.layers[0]
    W = conv.weights
    assert W.shape == (4 * 9, 4)
    for c in range(4):  # channel c: rows 9c..9c+8 only
        assert not np.delete(W[:, c], np.arange(9 * c, 9 * c + 9)).any()
    for t in conv.tiles:
        assert np.array_equal(t.weights[:, :t.col1 - t.col0], W[t.rows][:, t.col0:t.col1])


@pytest.mark.parametrize(("op", "opset", "attrs"), graphs.ACTIVATIONS)
@pytest.mark.parametrize("rounding", ["single", "rne"])
def test_int8_host_float_activations(op, opset, attrs, rounding):
    cfg = CoreConfig(rows=16, cols=4, rounding=rounding)
    m, shape = graphs.activation_model(np.random.default_rng(22), op, opset, **attrs)
    qm, sqnr = _int8_vs_ort(m, shape, cfg, lut_in_dpu=False)  # the DPU table: test_lut.py
    act = qm.layers[1]
    assert (act.kind, act.op.kind) == ("host", {"LeakyRelu": "lrelu", "HardSigmoid": "hsigmoid",
                                                "HardSwish": "hswish"}.get(op, op.lower()))
    assert [lay.kind for lay in qm.layers] == ["matmul", "host", "matmul"]
    assert sqnr > 30
    # The codes are quantize(f(dequantize(q))): checked against onnxruntime's own float op on
    # the dequantized input codes.
    x = np.random.default_rng(11).normal(size=(4, *shape)).astype(np.float32)
    _, codes = run(qm, x, keep=True)
    qin, qout = qm.qparams["c"], qm.qparams[act.output]
    deq = (qin.scale * (codes["c"] - qin.zero_point)).astype(np.float32)
    f = ort_run(model(m.graph.node[1:-1], [], [4, 5, 5], opset=opset, check=False,
                      names=("c", act.output)), deq)
    want = np.clip(np.rint(f.astype(np.float64) / qout.scale) + qout.zero_point, -128, 127)
    diff = np.abs(codes[act.output] - want)
    # onnxruntime computes in float32 (its Tanh approximately): a code next to a rounding
    # boundary may differ by one.
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.02 * diff.size


def test_host_add_rounds_the_sum_once():
    """Operands at half the output scale: 0.5 + 0.5 LSB is 1 LSB (rounding each half first
    to even would give 0 + 0), and -0.5 + 1.5 = 1; every pair of codes against the real sum
    rounded half to even by Python (the scales are exact binary fractions)."""
    from dcim.golden.quant.ops import sum_table
    from dcim.golden.quant.scheme import QParams

    cfg = CoreConfig(rounding="rne")
    qa, qb, qy = QParams(0.5, 0), QParams(0.5, 3), QParams(1.0, -2)
    t = sum_table(cfg, qa, qb, qy, 1)
    assert t[1 + 128, 4 + 128] == 1 - 2      # a = 1, b - zp_b = 1: 0.5 + 0.5 = 1
    assert t[-1 + 128, 6 + 128] == 1 - 2     # -0.5 + 1.5
    a = np.arange(-128, 128)
    want = [[min(max(round((0.5 * i + 0.5 * (j - 3)) / 1.0) - 2, -128), 127) for j in a]
            for i in a]
    assert np.array_equal(t, np.array(want))
    sub = sum_table(cfg, qa, qb, qy, -1)
    assert sub[1 + 128, 2 + 128] == round(0.5 - 0.5 * (2 - 3)) - 2


@pytest.mark.parametrize(("op", "opset", "attrs"), graphs.ACTIVATIONS)
def test_lut_activation_after_a_conv(op, opset, attrs):
    """An activation with a table mode directly after the Conv becomes the conv's DPU table;
    the others stay host float ops. The table's codes equal the host path's on the same
    requantized input codes (same calibration of the Conv output) but where the host's
    float64 division by the output scale crosses a rounding boundary the exact table does not
    (none here)."""
    cfg = CoreConfig(rows=16, cols=4)
    m, shape = graphs.activation_model(np.random.default_rng(22), op, opset, **attrs)
    qm, sqnr = _int8_vs_ort(m, shape, cfg)
    host, _ = _int8_vs_ort(m, shape, cfg, lut_in_dpu=False)
    has_lut = op in ("Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Silu") or (
        op == "Gelu" and not attrs)
    if not has_lut:  # LeakyRelu, GELU's tanh approximation, Softmax
        assert [lay.kind for lay in qm.layers] == ["matmul", "host", "matmul"]
        return
    assert [lay.kind for lay in qm.layers] == ["matmul", "matmul"]
    assert qm.layers[0].lut is not None and qm.layers[0].lut_input == "c"
    assert qm.qparams["c"] == host.qparams["c"]
    x = np.random.default_rng(11).normal(size=(64, *shape)).astype(np.float32)
    _, lut_codes = run(qm, x, keep=True)
    _, host_codes = run(host, x, keep=True)
    out = qm.layers[0].output
    assert np.array_equal(lut_codes[out], host_codes[out])
    assert sqnr > 30
