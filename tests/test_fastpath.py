"""The fast integer path (run(..., fast=True)) against the tiled reference path, code for code."""

from pathlib import Path

import numpy as np
import onnx_graphs as graphs
import pytest
from test_quant import _quantized, _residual_model

from dcim.golden.config import CoreConfig
from dcim.golden.quant.calibrate import calibrate_range
from dcim.golden.quant.fastpath import F32_EXACT, exact_gemm
from dcim.golden.quant.onnx_import import load_model
from dcim.golden.quant.qmodel import calibration_tensors, plan, quantize_model, run
from dcim.golden.quant.tensor_ops import im2col, im2col_hwc

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _same_codes(qm, x):
    """Run both integer paths on ``x``; assert every tensor's codes and the output agree."""
    out_ref, ref = run(qm, x, keep=True)
    out_fast, fast = run(qm, x, keep=True, fast=True)
    assert sorted(ref) == sorted(fast) and len(ref) >= 2
    for t in ref:
        assert fast[t].dtype == np.int64, t
        assert np.array_equal(ref[t], fast[t]), t
    assert np.array_equal(out_ref, out_fast)
    return ref


@pytest.mark.parametrize("name", ["digits_cnn.onnx", "digits_mlp.onnx",
                                  "digits_tiny_channel.onnx"])
@pytest.mark.parametrize(("cfg", "method"), [
    (CoreConfig(), "minmax"),                                  # the default 64x32 core
    (CoreConfig(rows=16, cols=8, rounding="double"), "percentile"),
    (CoreConfig(rows=256, cols=256, rounding="rne"), "minmax"),
    (CoreConfig(act_bits=4, weight_bits=4), "percentile"),
])
def test_shipped_models_identical_codes(name, cfg, method):
    graph = load_model(EXAMPLES / name)
    calib = np.load(EXAMPLES / "digits_calib.npz")["x"]
    layers = plan(graph, residual_in_dpu=cfg.dpu_residual)
    env = graph.forward(calib, keep_all=True)
    qm = quantize_model(graph, layers, {t: calibrate_range(method, env[t].reshape(-1), cfg)
                                        for t in calibration_tensors(graph, layers)}, cfg)
    x = np.load(EXAMPLES / "digits_eval.npz")["x"]
    _same_codes(qm, x)
    # Every weighted layer of the shipped models took the fast GEMM (no saturation risk).
    assert all(lay.fast not in (None, False) for lay in qm.layers if lay.kind == "matmul")


@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
@pytest.mark.parametrize("build", [
    lambda rng: (_residual_model(rng), (2, 6, 6)),
    graphs.grouped_model,
    lambda rng: graphs.grouped_model(rng, cin=6, cout=6, groups=6),
    graphs.mixed_model,
    lambda rng: graphs.dilated_model(rng, strides=(2, 1), pool=True, opset=19),
    graphs.concat_model,
    graphs.identity_model,
])
def test_op_graphs_identical_codes(build, rounding):
    rng = np.random.default_rng(21)
    m, shape = build(rng)
    for cfg in (CoreConfig(rows=8, cols=2, rounding=rounding),
                CoreConfig(rows=16, cols=4, rounding=rounding, dpu_residual=False)):
        x = (2 * rng.normal(size=(12, *shape))).astype(np.float32)
        _same_codes(_quantized(m, x, cfg), x)


def test_saturating_layer_keeps_the_tiled_path():
    """A 22-bit partial sum that saturates: the fast path falls back to the tiles and K-passes
    and still gives the reference codes, which differ from the unsaturated dot product."""
    cfg = CoreConfig(psum_bits=22, rows=64, cols=4)
    m = graphs.gemm_model(np.ones((3, 200)), np.zeros(3))
    x = np.ones((4, 200), dtype=np.float32)
    qm = _quantized(m, x, cfg, ranges={"x": (0.0, 1.0), "y": (0.0, 300.0)})
    codes = _same_codes(qm, x)
    (layer,) = qm.layers
    assert layer.fast is False
    # 200 * 127 * 127 = 3,225,800 saturates at 2**21 - 1 before the DPU.
    assert int(np.abs(layer.weights).sum(axis=0).max()) * 127 > cfg.psum_range[1]
    wide = _quantized(m, x, CoreConfig(rows=64, cols=4), ranges={"x": (0.0, 1.0),
                                                                  "y": (0.0, 300.0)})
    _, unsat = run(wide, x, keep=True, fast=True)
    assert wide.layers[0].fast not in (None, False)
    assert (codes["y"] < unsat["y"]).all()


def test_exact_gemm_chunks_are_exact():
    """Weights whose column sums need three float32 chunks: the product equals the int64 one,
    and each chunk's bound stays below 2**24."""
    rng = np.random.default_rng(7)
    K, N = 3000, 5
    W = rng.choice([-127, 127], size=(K, N)).astype(np.int64)  # 3000*127*128 ~ 2.9 * 2**24
    X = rng.integers(-128, 128, size=(40, K))
    X[0] = np.where(W[:, 0] > 0, 127, -128)  # the extreme vector of column 0
    g = exact_gemm(W, 128, (1 << 31) - 1)
    assert len(g.chunks) == 3
    assert [c[0] for c in g.chunks[1:]] == [c[1] for c in g.chunks[:-1]]
    assert (g.chunks[0][0], g.chunks[-1][1]) == (0, K)
    for k0, k1 in g.chunks:
        assert int((np.abs(W[k0:k1]) * 128).sum(axis=0).max()) < F32_EXACT
    got = g(X.astype(np.float32))
    want = X @ W  # int64 matmul
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert int(np.abs(want).max()) > F32_EXACT  # one float32 GEMM would not have been exact
    assert exact_gemm(W, 128, 1 << 24) is None


@pytest.mark.parametrize(("kernel", "strides", "pads", "dilations"), [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((3, 2), (2, 1), (0, 1, 2, 0), (1, 2)),
    ((1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),
])
def test_im2col_hwc_is_im2col_with_permuted_columns(kernel, strides, pads, dilations):
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, size=(2, 3, 7, 6))
    a = im2col(x, kernel, strides, pads, -5, dilations)
    b = im2col_hwc(x, kernel, strides, pads, -5, dilations)
    c, (kh, kw) = x.shape[1], kernel
    # Column (i, j, ch) of b is column (ch, i, j) of a.
    perm = np.arange(c * kh * kw).reshape(c, kh, kw).transpose(1, 2, 0).reshape(-1)
    assert np.array_equal(b, a[:, perm])


def test_batch_size_follows_activation_bytes(monkeypatch):
    """A model whose activations exceed the byte budget is evaluated in smaller batches, with
    the same report (the per-layer statistics and logits do not depend on the batching)."""
    from dcim.golden.quant import evaluate

    graph = load_model(EXAMPLES / "digits_cnn.onnx")
    x = np.load(EXAMPLES / "digits_eval.npz")["x"]
    per = sum(v.nbytes for v in graph.forward(x[:1], keep_all=True).values())
    assert evaluate.batch_size(graph, x) == evaluate.BATCH  # ~70 kB per image
    args = (EXAMPLES / "digits_cnn.onnx", EXAMPLES / "digits_calib.npz",
            EXAMPLES / "digits_eval.npz", CoreConfig())
    full = evaluate.calibrate_report(*args, methods=("minmax",), peer=False)
    monkeypatch.setattr(evaluate, "BATCH_BYTES", 37 * per)
    assert evaluate.batch_size(graph, x) == 37
    small = evaluate.calibrate_report(*args, methods=("minmax",), peer=False)
    a, b = full["methods"]["minmax"], small["methods"]["minmax"]
    assert a["ranges"] == b["ranges"] and a["accuracy"] == b["accuracy"]
    for la, lb in zip(a["layers"], b["layers"]):
        assert la["fakequant_mismatches"] == lb["fakequant_mismatches"]
        assert la["sqnr_db"] == pytest.approx(lb["sqnr_db"], rel=1e-9)
