"""The op examples (examples/train_ops_cnns.py) through ``dcim calibrate`` (issue 11 acceptance).

Each model is run once by the CLI with ``--method minmax`` (onnxruntime's MinMax peer beside
it; all four calibrators take minutes, docs/calibration.md has their figures): accepted, INT8
within 0.5 points of FP32 top-1 and of the peer's top-1, and the depthwise and grouped
convolutions mapped with the utilization the block-diagonal packing gives. The peer's figure
depends on the host: onnxruntime's u8s8 kernels may saturate on x86 without VNNI and are exact
with VNNI (glu: 97.04 % in an earlier run, 97.59 % on an AVX-512 VNNI host), so "at least the
peer" is not a property of dcim alone and the test asks for half a point either way.
"""

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from dcim.golden.config import CoreConfig
from dcim.sim.cli import main
from generators import run_generator
from tables import read_table, rows_by

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CALIB, EVAL = EXAMPLES / "digits_calib.npz", EXAMPLES / "digits_eval.npz"
MODELS = ("digits_mobile_cnn.onnx", "digits_glu_cnn.onnx")

#: The mapping table's kinds, in order: activations right after a Conv/Gemm as DPU tables
#: (``conv+<act>``), elsewhere (and LeakyRelu everywhere) as host rows of their own.
KINDS = {
    "digits_mobile_cnn.onnx": [
        "conv+hswish", "gconv", "conv", "gconv", "gconv+silu", "concat", "avgpool", "sub",
        "gap", "conv", "conv+hsigmoid", "mul", "add", "avgpool", "conv+tanh", "gap", "flatten",
        "gemm", "softmax"],
    "digits_glu_cnn.onnx": [
        "conv", "lrelu", "conv", "conv+gelu", "mul", "gap", "sigmoid", "mul", "gap", "flatten",
        "gemm", "softmax"],
}


@pytest.fixture(scope="module", params=MODELS)
def calibrated(request, tmp_path_factory):
    """``(model file, exit code, JSON report, stdout)`` of one ``dcim calibrate`` run."""
    report = tmp_path_factory.mktemp("ops") / "report.json"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["calibrate", str(EXAMPLES / request.param), "--calib", str(CALIB),
                     "--eval", str(EVAL), "--method", "minmax", "--json", str(report)])
    return request.param, code, json.loads(report.read_text()), out.getvalue()


def _fp32_top1(model: Path) -> float:
    """FP32 top-1 on the evaluation set, from onnxruntime directly (no dcim code)."""
    z = np.load(EVAL)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    prob = sess.run(None, {"x": z["x"]})[0]
    top = np.sort(prob, axis=1)
    assert (top[:, -1] > top[:, -2]).all()  # no ties in float
    return float((prob.argmax(axis=1) == z["y"]).mean())


def test_accepted_within_half_a_point_of_fp32_and_of_the_peer(calibrated):
    name, code, r, _ = calibrated
    assert code == 0
    assert r["accuracy_fp32"] == pytest.approx(_fp32_top1(EXAMPLES / name), abs=1e-12)
    minmax = r["methods"]["minmax"]["accuracy"]
    assert abs(minmax - r["accuracy_fp32"]) <= 0.005
    assert r["ort_int8_missing"] == [] and "minmax" in r["ort_int8"]
    assert minmax >= r["accuracy_ort_int8"] - 0.005
    assert sum(lay["fakequant_mismatches"] for lay in r["methods"]["minmax"]["layers"]) == 0


def test_the_ops_sit_where_they_were_put(calibrated):
    """LUT activations after Conv/Gemm, host ops elsewhere, every op of the graph mapped."""
    name, _, r, _ = calibrated
    assert [m["kind"] for m in r["mapping"]["layers"]] == KINDS[name]


def _conv_outputs(model: onnx.ModelProto) -> dict[str, tuple[onnx.NodeProto, tuple[int, ...]]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
              for vi in inferred.graph.value_info}
    return {n.name: (n, shapes[n.output[0]]) for n in model.graph.node if n.op_type == "Conv"}


def _packed_utilization(cfg: CoreConfig, cin: int, cout: int, k: int, groups: int,
                        vectors: int) -> tuple[int, float]:
    """Column tiles and utilization of a grouped conv packed block-diagonally (the contract of
    docs/calibration.md, "Grouped and depthwise convolutions")."""
    kg, ng = cin // groups * k * k, cout // groups
    per_tile = min(cfg.rows // kg, cfg.cols // ng)
    if per_tile >= 1:
        tiles, row_tiles = math.ceil(groups / per_tile), 1
    else:
        tiles, row_tiles = groups * math.ceil(ng / cfg.cols), math.ceil(kg / cfg.rows)
    passes = vectors * tiles * row_tiles
    return tiles, vectors * kg * cout / (passes * cfg.rows * cfg.cols)


def test_grouped_layers_mapped_with_their_real_utilization(calibrated):
    name, _, r, out = calibrated
    cfg = CoreConfig()
    model = onnx.load(str(EXAMPLES / name))
    grouped = 0
    for layer, (node, shape) in _conv_outputs(model).items():
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        groups = a.get("group", 1)
        if groups == 1:
            continue
        grouped += 1
        w = numpy_helper.to_array(next(t for t in model.graph.initializer
                                       if t.name == node.input[1]))
        cout, cin_g, k, _ = w.shape
        tiles, util = _packed_utilization(cfg, cin_g * groups, cout, k, groups,
                                          shape[2] * shape[3])
        (m,) = [m for m in r["mapping"]["layers"] if m["name"] == layer]
        assert m["kind"].startswith("gconv")
        assert m["col_tiles"] == tiles
        assert m["utilization"] == pytest.approx(util, rel=1e-12)
        row = rows_by(read_table(out, "rowT"), "layer")[layer]
        assert (row["kind"], row["colT"], row["util"]) == (m["kind"], str(tiles),
                                                          f"{100 * util:.1f}%")
    assert grouped == {"digits_mobile_cnn.onnx": 3, "digits_glu_cnn.onnx": 0}[name]


def test_the_examples_hold_every_op_of_the_issue():
    """The two ONNX files together use every op issue 11 added, with the attributes asked."""
    nodes = [n for f in MODELS for n in onnx.load(str(EXAMPLES / f)).graph.node]
    ops = {n.op_type for n in nodes}
    assert {"Concat", "Sub", "Mul", "Add", "Identity", "Shape", "Gather", "Reshape", "Clip",
            "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "Softmax",
            "AveragePool"} <= ops
    attrs = [(n, {a.name: helper.get_attribute_value(a) for a in n.attribute}) for n in nodes]
    convs = [a for n, a in attrs if n.op_type == "Conv"]
    assert any(a.get("group", 1) == 16 for a in convs)  # depthwise (16 channels)
    assert any(1 < a.get("group", 1) < 16 for a in convs)
    assert any(a.get("dilations", [1, 1]) != [1, 1] for a in convs)
    pools = [a for n, a in attrs if n.op_type == "AveragePool"]
    assert {a["count_include_pad"] for a in pools if any(a["pads"])} == {0, 1}
    inits = {t.name: t for f in MODELS for t in onnx.load(str(EXAMPLES / f)).graph.initializer}
    (clip,) = [n for n, _ in attrs if n.op_type == "Clip"]
    assert [list(inits[i].dims) for i in clip.input[1:]] == [[1], [1]]
    # SiLU as exporters write it: Mul(x, Sigmoid(x))
    sig = {n.output[0]: n.input[0] for n, _ in attrs if n.op_type == "Sigmoid"}
    assert any(n.op_type == "Mul" and sig.get(n.input[1]) == n.input[0] for n, _ in attrs)


@pytest.mark.slow
def test_op_examples_are_what_their_generator_writes(tmp_path):
    """Seeded training: the generator writes the shipped bytes (about 3 minutes; the host's
    AVX-512 paths pinned off, tests/generators.py)."""
    run_generator("train_ops_cnns.py", ("train_digits.py", "train_lut_mlp.py", "numpy_graph.py",
                                        "digits_eval.npz"), tmp_path)
    for f in MODELS:
        assert (tmp_path / f).read_bytes() == (EXAMPLES / f).read_bytes()
