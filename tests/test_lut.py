"""The DPU's LUT activation mode: tables, the DPU stage, and where the flow uses it (issue 11)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dcim.golden.activation import Activation, build_lut
from dcim.golden.config import CoreConfig
from dcim.golden.model import DpuParams, dpu
from dcim.golden.quant.evaluate import calibrate_report

ERF = np.vectorize(math.erf)


def _reference(mode, x):
    """The functions in float64 numpy, written independently of the table builder."""
    return {
        Activation.SIGMOID: lambda v: 1.0 / (1.0 + np.exp(-v)),
        Activation.TANH: np.tanh,
        Activation.HARDSIGMOID: lambda v: np.clip(0.2 * v + 0.5, 0.0, 1.0),
        Activation.HARDSWISH: lambda v: v * np.clip(v / 6.0 + 0.5, 0.0, 1.0),
        Activation.SILU: lambda v: v / (1.0 + np.exp(-v)),
        Activation.GELU: lambda v: 0.5 * v * (1.0 + ERF(v / np.sqrt(2.0))),
    }[mode](x)


@pytest.mark.parametrize("rounding", ["rne", "single"])
@pytest.mark.parametrize("mode", [m for m in Activation if m.uses_lut])
@pytest.mark.parametrize("scales", [(0.05, -10, 1 / 255, -128), (0.031, 7, 0.0117, -3),
                                    (0.1, 0, 0.04, 20)])
def test_table_against_a_float_reference(mode, scales, rounding):
    """Entry i is clamp(zp_out + round(f(s_in (i - 128 - zp_in)) / s_out)), rounded half to
    even (rne) or half up (single). Where the float64 reference lies within 1e-6 LSB of a
    tie its float error could pick either side: there the entry must be one of the two
    neighbours (and exact ties, e.g. sigmoid(0) = 0.5, are checked exactly)."""
    s_in, zp_in, s_out, zp_out = scales
    lut = build_lut(mode, s_in, zp_in, s_out, zp_out, rounding)
    assert lut.shape == (256,) and lut.dtype == np.int64
    q = np.arange(-128, 128)
    v = _reference(mode, s_in * (q - zp_in)) / s_out
    r = np.rint(v) if rounding == "rne" else np.floor(v + 0.5)
    want = np.clip(r + zp_out, -128, 127)
    near = np.abs(v - np.floor(v) - 0.5) < 1e-6
    assert np.array_equal(lut[~near], want[~near])
    lo = np.clip(np.floor(v) + zp_out, -128, 127)
    assert np.all((lut[near] == lo[near]) | (lut[near] == lo[near] + 1))
    if mode in (Activation.HARDSIGMOID, Activation.HARDSWISH):
        # Piecewise linear: exact in rationals, so every entry, ties included, is checked.
        F = Fraction
        for i, code in zip(q, lut):
            x = F(s_in) * (int(i) - zp_in)
            y = (min(max(F(0.2) * x + F(0.5), F(0)), F(1)) if mode is Activation.HARDSIGMOID
                 else x * min(max(x / 6 + F(1, 2), F(0)), F(1))) / F(s_out)
            r = round(y) if rounding == "rne" else math.floor(y + F(1, 2))
            assert code == min(max(r + zp_out, -128), 127), i


def test_exact_ties_follow_the_rounding_mode():
    """sigmoid(0) = 0.5 exactly; at s_out = 1 it is 0.5 LSB, an exact tie: rne gives 0,
    single (ties toward +inf) 1."""
    for rounding, code in (("rne", 0), ("single", 1)):
        lut = build_lut(Activation.SIGMOID, 0.05, 0, 1.0, 0, rounding)
        assert lut[128] == code, rounding  # input code 0 = real 0
        lut = build_lut(Activation.SIGMOID, 0.05, 0, 1.0, 3, rounding)
        assert lut[128] == code + 3, rounding


def test_build_lut_rejects_bad_parameters():
    with pytest.raises(ValueError, match="output scale must be finite and > 0, got 0.0"):
        build_lut(Activation.TANH, 0.1, 0, 0.0, 0, "rne")
    with pytest.raises(ValueError, match="input zero point must be in \\[-128, 127\\], got 200"):
        build_lut(Activation.TANH, 0.1, 200, 0.1, 0, "rne")
    with pytest.raises(ValueError, match="no lookup table"):
        build_lut(Activation.CLAMP, 0.1, 0, 0.1, 0, "rne")


def test_dpu_lut_stage_is_off_by_default_and_applied_after_the_clamp():
    cfg = CoreConfig(rows=4, cols=3)
    one = 1 << 30  # multiplier 0.5 at shift 0
    base = dict(bias=np.zeros(3, int), multiplier=np.full(3, one), shift=np.zeros(3, int),
                act_min=-100, act_max=100)
    psum = np.array([[10, -400, 300], [0, 2, -2]])
    plain = dpu(cfg, psum, DpuParams(**base))
    assert DpuParams(**base).lut is None
    assert plain.tolist() == [[5, -100, 100], [0, 1, -1]]
    table = np.arange(256)[::-1] - 128  # code y -> -1 - y
    got = dpu(cfg, psum, DpuParams(**base, lut=table))
    assert got.tolist() == [[-6, 99, -101], [-1, -2, 0]]
    p = DpuParams(**base, lut=table)
    assert np.array_equal(DpuParams.from_npz(p.to_npz_dict()).lut, table)
    assert "lut" not in DpuParams(**base).to_npz_dict()
    with pytest.raises(ValueError, match="lut must have shape \\(256,\\)"):
        DpuParams(**base, lut=np.zeros(10, int))
    with pytest.raises(ValueError, match="lut must be in \\[-128, 127\\], got 128"):
        DpuParams(**base, lut=np.full(256, 128))


def _model(tmp_path, after_gemm, host):
    """Gemm, the activation ``after_gemm``, two Gemms, a host Sub of their outputs, and the
    activation ``host`` after the Sub (not directly after a Gemm)."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array((rng.normal(size=(8, 8)) / 3).astype(np.float32), n)
             for n in ("w1", "w2", "w3")]
    inits += [numpy_helper.from_array((rng.normal(size=8) / 3).astype(np.float32), n)
              for n in ("b1", "b2", "b3")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["g1"], name="fc1", transB=1),
             helper.make_node(after_gemm, ["g1"], ["a1"], name="act1"),
             helper.make_node("Gemm", ["a1", "w2", "b2"], ["g2"], name="fc2", transB=1),
             helper.make_node("Gemm", ["a1", "w3", "b3"], ["g3"], name="fc3", transB=1),
             helper.make_node("Sub", ["g2", "g3"], ["s"], name="sub"),
             helper.make_node(host, ["s"], ["y"], name="act2")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    x = rng.normal(size=(300, 8)).astype(np.float32)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=np.argmax(x, axis=1))
    return path, data


@pytest.mark.parametrize("act", ["Sigmoid", "Tanh", "HardSigmoid", "HardSwish"])
def test_flow_uses_the_lut_after_a_gemm_and_the_host_elsewhere(tmp_path, act):
    """After a Gemm the activation is the DPU's table (mapping kind gemm+<act>, calibrated
    input tensor); after the Sub it stays a host float op; the fake-quant twin agrees."""
    path, data = _model(tmp_path, act, act)
    models = {}
    r = calibrate_report(path, data, data, CoreConfig(), ("minmax",), peer=False,
                         models=models)
    kinds = {m["name"]: m["kind"] for m in r["mapping"]["layers"]}
    short = {"Sigmoid": "sigmoid", "Tanh": "tanh", "HardSigmoid": "hsigmoid",
             "HardSwish": "hswish"}[act]
    assert kinds["fc1"] == f"gemm+{short}" and kinds["act2"] == short
    assert kinds["fc2"] == kinds["fc3"] == "gemm"
    qm = models["minmax"]
    fc1 = qm.layers[0]
    assert fc1.lut_input == "g1" and fc1.output == "a1" and "g1" in r["methods"]["minmax"][
        "ranges"]
    assert fc1.dpu.lut is not None and all(t.dpu.lut is fc1.dpu.lut or np.array_equal(
        t.dpu.lut, fc1.dpu.lut) for t in fc1.tiles)
    assert all(lay.dpu.lut is None for lay in qm.layers[1:3])
    assert sum(lay["fakequant_mismatches"] for lay in r["methods"]["minmax"]["layers"]) == 0
    assert r["methods"]["minmax"]["layers"][0]["sqnr_db"] > 30


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples"


def test_shipped_lut_mlp_within_half_a_percent_of_fp32():
    """All six activations of examples/digits_lut_mlp.onnx run as DPU tables (none on the
    host) and INT8 stays within 0.5 % of FP32 (97.04 % on the 540 held-out images)."""
    r = calibrate_report(EXAMPLES / "digits_lut_mlp.onnx", EXAMPLES / "digits_calib.npz",
                         EXAMPLES / "digits_eval.npz", CoreConfig(), ("minmax",), peer=False)
    kinds = [m["kind"] for m in r["mapping"]["layers"]]
    assert kinds == ["flatten", "gemm+silu", "gemm+tanh", "gemm+hswish", "gemm+sigmoid",
                     "gemm+gelu", "gemm+hsigmoid", "gemm", "softmax"]
    assert r["accuracy_fp32"] == pytest.approx(524 / 540)
    assert r["methods"]["minmax"]["accuracy"] >= r["accuracy_fp32"] - 0.005


@pytest.mark.slow
def test_lut_example_is_what_its_generator_writes(tmp_path):
    from generators import run_generator

    run_generator("train_lut_mlp.py", ("train_digits.py", "digits_eval.npz"), tmp_path)
    assert (tmp_path / "digits_lut_mlp.onnx").read_bytes() == (
        EXAMPLES / "digits_lut_mlp.onnx").read_bytes()
