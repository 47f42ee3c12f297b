"""Weight scales raised so that the int32 bias fits (issue 11: the tiny-weight channel)."""

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_graphs import gemm_model, save
from tables import read_table

from dcim.golden.arith import INT32_MAX, INT32_MIN
from dcim.golden.config import CoreConfig
from dcim.golden.quant.evaluate import calibrate_report
from dcim.golden.quant.onnx_import import import_model
from dcim.golden.quant.qmodel import plan, quantize_model, run
from dcim.golden.quant.scheme import bias_weight_scale, sqnr_db
from dcim.sim.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = EXAMPLES / "digits_tiny_channel.onnx"
CALIB, EVAL = EXAMPLES / "digits_calib.npz", EXAMPLES / "digits_eval.npz"


def _quantized(m, ranges, cfg=CoreConfig()):
    g = import_model(m)
    layers = plan(g)
    return quantize_model(g, layers, ranges, cfg)


def test_bias_weight_scale_is_onnxruntimes_rule():
    """onnxruntime: the smallest valid bias scale is 1.0001 * 2|b| / (INT32_MAX - (INT32_MIN
    + 1)) (QDQQuantizer._adjust_weight_scale_for_int32_bias); divided by s_x, the weight scale."""
    b = np.array([0.5, -3.0, 0.0, 1e-3])
    s_x = 0.01
    want = 1.0001 * 2 * np.abs(b) / (float(INT32_MAX) - float(INT32_MIN + 1)) / s_x
    assert np.allclose(bias_weight_scale(b, s_x), want, rtol=1e-15, atol=0)
    # Room for a folded zero point: the bias alone may use INT32_MAX - fold.
    fold = np.array([1000.0, 0.0, 5.0, 2**20])
    assert np.allclose(bias_weight_scale(b, s_x, fold),
                       1.0001 * np.abs(b) / ((INT32_MAX - fold) * s_x), rtol=1e-15)


def test_tiny_channel_gets_a_larger_scale_and_an_exact_bias():
    w = np.ones((3, 8)) * 0.5
    w[1] *= 1e-6  # tiny but not zero
    b = np.array([0.25, 2.0, -0.5])
    qm = _quantized(gemm_model(w, b), {"x": (-1.0, 1.0), "y": (-8.0, 8.0)})
    (layer,) = [lay for lay in qm.layers if lay.kind == "matmul"]
    s_x = qm.qparams["x"].scale
    # Channel 1 only: max|w| / 127 = 3.9e-9 would need a bias of 2.0 / (s_x * 3.9e-9) ~ 6.5e11.
    assert [c for c, _, _ in layer.raised_scales] == [1]
    _, old, new = layer.raised_scales[0]
    assert old == pytest.approx(0.5e-6 / 127, rel=1e-12)
    assert new == pytest.approx(1.0001 * 2.0 / ((2**31 - 1) * s_x), rel=1e-12)
    assert layer.w_scale[1] == new and layer.w_scale[0] == pytest.approx(0.5 / 127)
    assert abs(int(layer.bias[1])) <= INT32_MAX and layer.bias[1] * s_x * new == pytest.approx(
        2.0, rel=1e-6)
    assert qm.warnings == [
        f"layer 'fc': weight scale raised so that the int32 bias fits, in 1 output channel(s): "
        f"1 ({old:.3g} -> {new:.3g})"]
    x = np.random.default_rng(0).uniform(-1, 1, (64, 8)).astype(np.float32)
    ref = qm.graph.forward(x)["y"]
    out, _ = run(qm, x)
    assert sqnr_db(ref[:, 1], out[:, 1]) > 40  # the channel's constant output survives


def test_folded_zero_point_gets_room_too():
    """A bias that fits under onnxruntime's rule, with the input zero point (-128 for inputs in
    [0, 1]) folded in by the core (-zp * sum_k W[k, c]), would overflow: the scale is raised
    once more, so that the folded bias fits as well."""
    k = 2000
    w = np.full((2, k), 1e-7)
    w[0] = 0.01
    b = np.array([0.1, 1.0])
    qm = _quantized(gemm_model(w, b), {"x": (0.0, 1.0), "y": (0.0, 20.0)})
    (layer,) = [lay for lay in qm.layers if lay.kind == "matmul"]
    s_x = qm.qparams["x"].scale
    assert qm.qparams["x"].zero_point == -128
    ort_rule = bias_weight_scale(b, s_x)[1]
    fold = 128.0 * k  # every code 1 at onnxruntime's scale
    assert np.rint(1e-7 / ort_rule) == 1
    assert [c for c, _, _ in layer.raised_scales] == [1]
    assert layer.w_scale[1] == pytest.approx(bias_weight_scale(b, s_x, [0.0, fold])[1],
                                             rel=1e-12) and layer.w_scale[1] > ort_rule
    folded = layer.dpu.bias
    assert INT32_MIN <= folded.min() and folded.max() <= INT32_MAX
    assert not any("exceed int32" in w for w in qm.warnings)
    assert int(layer.bias[1]) + 128 * int(layer.weights[:, 1].sum()) == folded[1]


def test_onnxruntime_raises_the_same_channel_by_the_same_factor(tmp_path):
    """onnxruntime's own quantizer on the tiny-channel example: the weight scale of fc1 channel
    5 that its QDQ model holds is the one dcim uses (both from the same s_x)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from dcim.golden.quant.ort_peer import calibration_reader

    calib = np.load(CALIB)["x"]

    out = tmp_path / "q.onnx"
    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(TINY), str(out), calibration_reader("x", [calib]),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    ort_scale = inits["fc1.weight_scale"]
    r = calibrate_report(TINY, CALIB, EVAL, CoreConfig(), ("minmax",), peer=False)
    (ch,) = r["methods"]["minmax"]["raised_weight_scales"]["fc1"]
    assert ch["channel"] == 5
    assert float(ort_scale[5]) == pytest.approx(ch["new_scale"], rel=1e-6)
    others = np.delete(np.arange(32), 5)
    raw = numpy_helper.to_array(next(t for t in onnx.load(str(TINY)).graph.initializer
                                     if t.name == "fc1.weight")).astype(np.float64)
    assert np.allclose(ort_scale[others], np.abs(raw[others]).max(axis=1) / 127, rtol=1e-6)


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy", "mse"])
def test_tiny_channel_model_within_half_a_percent_of_fp32(method):
    """Issue 11 acceptance. Before the scale was raised, the channel's bias (3.9) saturated at
    2**31 s_x s_w = 0.03 and INT8 fell 1.3 to 1.5 points below FP32 with every calibrator."""
    r = calibrate_report(TINY, CALIB, EVAL, CoreConfig(), (method,), peer=False)
    res = r["methods"][method]
    assert abs(res["accuracy"] - r["accuracy_fp32"]) <= 0.005
    (ch,) = res["raised_weight_scales"]["fc1"]
    assert ch["channel"] == 5 and ch["new_scale"] > 100 * ch["old_scale"]
    assert not any("saturated" in w for w in res["warnings"])


def test_calibrate_reports_the_raised_channel(tmp_path, capsys):
    report = tmp_path / "r.json"
    code = main(["calibrate", str(TINY), "--calib", str(CALIB), "--eval", str(EVAL), "--method",
                 "minmax", "--no-peer", "--json", str(report)])
    cap = capsys.readouterr()
    assert code == 0
    r = json.loads(report.read_text())
    (ch,) = r["methods"]["minmax"]["raised_weight_scales"]["fc1"]
    assert [ln for ln in cap.err.splitlines() if ln.startswith("dcim: warning:")] == [
        "dcim: warning: layer 'fc1': weight scale raised so that the int32 bias fits, in 1 "
        f"output channel(s): 5 ({ch['old_scale']:.3g} -> {ch['new_scale']:.3g})"]
    assert ("Weight scales raised so that the int32 bias fits (s_x * s_w >= 1.0001 |b| / "
            "(2**31 - 1), as onnxruntime's quantizer does)") in cap.out.splitlines()
    assert read_table(cap.out, "max|w|/127") == [
        {"method": "minmax", "layer": "fc1", "channel": "5",
         "max|w|/127": f"{ch['old_scale']:.4g}", "used": f"{ch['new_scale']:.4g}"}]


def test_no_table_when_nothing_is_raised(tmp_path, capsys):
    rng = np.random.default_rng(1)
    m = save(gemm_model(rng.normal(size=(3, 4)), rng.normal(size=3)), tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(8, 4)).astype(np.float32),
             y=np.arange(8) % 3)
    d = str(tmp_path / "d.npz")
    assert main(["calibrate", str(m), "--calib", d, "--eval", d, "--method", "minmax",
                 "--no-peer"]) == 0
    assert "Weight scales raised" not in capsys.readouterr().out
