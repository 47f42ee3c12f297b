"""examples/make_resnet18.py at a reduced size: the topology, BatchNorm folding, the integer
paths and `dcim calibrate` with the mapping onto a 256x256 array."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import ort_run
from tables import read_table, rows_by

from dcim.golden.config import CoreConfig
from dcim.golden.quant.calibrate import calibrate_range
from dcim.golden.quant.mapping import map_layers
from dcim.golden.quant.onnx_import import import_model
from dcim.golden.quant.qmodel import calibration_tensors, plan, quantize_model, run
from dcim.golden.quant.scheme import sqnr_db
from dcim.sim.cli import main

_SPEC = importlib.util.spec_from_file_location(
    "make_resnet18", Path(__file__).resolve().parents[1] / "examples" / "make_resnet18.py")
resnet = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(resnet)

SMALL = dict(size=32, width=4, classes=10)
CFG = CoreConfig(rows=256, cols=256, dpu_lanes=32)


def test_topology_is_resnet18():
    m = resnet.build(**SMALL)
    ops = [n.op_type for n in m.graph.node]
    # stem + 4 stages x 2 blocks x 2 convs + 3 downsampling shortcuts; 8 residual adds
    assert ops.count("Conv") == 1 + 16 + 3 and ops.count("Add") == 8
    assert ops.count("Relu") == 1 + 16 and ops.count("Gemm") == 1
    stem = m.graph.node[0]
    assert {a.name: list(a.ints) for a in stem.attribute} == {
        "kernel_shape": [7, 7], "strides": [2, 2], "pads": [3, 3, 3, 3]}
    shapes = {t.name: tuple(t.dims) for t in m.graph.initializer}
    assert shapes["layer4.1.conv2.w"] == (32, 32, 3, 3) and shapes["fc.w"] == (10, 32)
    x = resnet.data(3, 32, 10, 1, labels=False)["x"]
    assert ort_run(m, x).shape == (3, 10)


def test_full_size_shape_and_parameters():
    m = resnet.build()
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    # torchvision's resnet18 has 11,689,512 parameters, of which 2 x 4,800 are BatchNorm scales
    # and shifts (4,800 channels after its 20 convs); folded, each channel keeps one bias.
    assert params == 11_689_512 - 4_800
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 224, 224]


def test_folded_batchnorm_equals_present():
    x = resnet.data(4, 32, 10, 3, labels=False)["x"]
    folded = ort_run(resnet.build(**SMALL, bn="folded"), x)
    present = ort_run(resnet.build(**SMALL, bn="present"), x)
    assert np.allclose(folded, present, rtol=1e-4, atol=1e-4)


def test_bad_parameters():
    with pytest.raises(ValueError, match=r"^size must be a multiple of 32, got 48$"):
        resnet.build(size=48)
    with pytest.raises(ValueError, match=r"^bn must be folded or present, got 'x'$"):
        resnet.build(bn="x")


def test_integer_paths_on_the_256x256_array():
    m = resnet.build(**SMALL)
    g = import_model(m)
    layers = plan(g, residual_in_dpu=True)
    x = resnet.data(16, 32, 10, 1, labels=False)["x"]
    env = g.forward(x, keep_all=True)
    qm = quantize_model(g, layers, {t: calibrate_range("minmax", env[t].reshape(-1), CFG)
                                    for t in calibration_tensors(g, layers)}, CFG)
    # every residual Add and Relu fused into the DPU of the conv before it
    assert sum(len(lay.fused) == 2 for lay in qm.layers) == 8
    out, ref = run(qm, x, keep=True)
    out_fast, fast = run(qm, x, keep=True, fast=True)
    for t in ref:
        assert np.array_equal(ref[t], fast[t]), t
    assert np.array_equal(out, out_fast)
    assert sqnr_db(ort_run(m, x), out) > 20
    maps = map_layers(CFG, qm.layers, {k: v.shape for k, v in g.forward(x[:1],
                                                                        keep_all=True).items()})
    assert sum(mp.on_array for mp in maps) == 21
    assert all(mp.row_tiles == 1 + (mp.K > 256) + (mp.K > 512) for mp in maps if mp.on_array)


def test_calibrate_cli(tmp_path, capsys):
    assert resnet.main(["-o", str(tmp_path), "--size", "32", "--width", "4", "--classes", "10",
                        "--calib", "16", "--eval", "16"]) == 0
    report = tmp_path / "r.json"
    code = main(["calibrate", str(tmp_path / "resnet18.onnx"), "--calib",
                 str(tmp_path / "calib.npz"), "--eval", str(tmp_path / "eval.npz"),
                 "--rows", "256", "--cols", "256", "--dpu-lanes", "32", "--method", "minmax",
                 "--clock-mhz", "95.5", "--no-peer", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    r = json.loads(report.read_text())
    res = r["methods"]["minmax"]
    # 4 channels and 16 calibration images: a coarse INT8 model, far from a broken one (~0 dB)
    assert res["images_per_s"] > 0 and res["logit_sqnr_db"] > 10
    assert "golden integer path on this machine: minmax " in out
    mapped = rows_by(read_table(out, "rowT"), "layer")  # long names stay in their column
    assert mapped["layer4.1.conv2"]["kind"] == "conv"
    assert r["mapping"]["totals"]["clock_mhz"] == 95.5
    assert len([m for m in r["mapping"]["layers"] if m["passes"]]) == 21


def test_cli_bad_value(tmp_path, capsys):
    assert resnet.main(["-o", str(tmp_path), "--size", "40"]) == 2
    assert capsys.readouterr().err.strip() == (
        "make_resnet18: error: --size must be a multiple of 32, got 40")
    assert not (tmp_path / "resnet18.onnx").exists()
