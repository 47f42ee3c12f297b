"""`dcim calibrate --export-vectors` and its replay by `dcim regress --vectors`."""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import onnx_graphs as graphs
import pytest

from dcim.golden.config import CoreConfig
from dcim.golden.model import accumulate, dpu, mvm
from dcim.golden.quant.calibrate import calibrate_range
from dcim.golden.quant.export import MANIFEST, export_vectors, load_vectors, weighted_layers
from dcim.golden.quant.onnx_import import import_model, load_model
from dcim.golden.quant.qmodel import calibration_tensors, plan, quantize_model, run
from dcim.golden.quant.tensor_ops import im2col
from dcim.sim.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = CoreConfig(rows=16, cols=8)


def _qmodel(name: str, cfg: CoreConfig):
    graph = load_model(EXAMPLES / name)
    x = np.load(EXAMPLES / "digits_calib.npz")["x"][:64]
    layers = plan(graph, residual_in_dpu=cfg.dpu_residual)
    env = graph.forward(x, keep_all=True)
    ranges = {t: calibrate_range("minmax", env[t].reshape(-1), cfg)
              for t in calibration_tensors(graph, layers)}
    return quantize_model(graph, layers, ranges, cfg), np.load(EXAMPLES / "digits_eval.npz")["x"]


def _recompute(cfg, tile):
    """The tile's outputs from the exported files alone, through golden.model."""
    psum = np.zeros((len(tile.X), cfg.cols), dtype=np.int64)
    for p in range(tile.W.shape[0]):
        xs = tile.X[:, p * cfg.rows:(p + 1) * cfg.rows]
        psum = accumulate(cfg, psum, mvm(cfg, tile.W[p], xs))
    return dpu(cfg, psum, tile.params, tile.R)[:, :tile.col1 - tile.col0]


@pytest.mark.parametrize("model,layer,schedule,residual", [
    ("digits_cnn.onnx", None, "stationary", False),    # conv1: K 9 on 16 rows
    ("digits_cnn.onnx", "conv3", "k-raw", True),       # K 144, residual add in the DPU
    ("digits_mlp.onnx", "fc2", "k-reload", False),     # K 64, N 32: 4 passes x 4 tiles
])
def test_export_matches_independent_recomputation(tmp_path, model, layer, schedule, residual):
    qm, x = _qmodel(model, SMALL)
    m = export_vectors(qm, x, tmp_path, layer=layer, count=5)
    lay = weighted_layers(qm)[0] if layer is None else \
        next(la for la in qm.layers if la.name == layer)
    assert json.loads((tmp_path / MANIFEST).read_text()) == m
    cfg, manifest, tiles = load_vectors(tmp_path)
    assert cfg == SMALL
    K, N = lay.weights.shape
    passes = -(-K // cfg.rows)
    assert (manifest["layer"], manifest["K"], manifest["N"]) == (lay.name, K, N)
    assert (manifest["schedule"], manifest["residual"]) == (schedule, residual)
    assert manifest["vectors"] == 5 and manifest["passes"] == passes
    assert len(tiles) == -(-N // cfg.cols)
    assert sorted(p.name for p in (tmp_path / "tile0").iterdir()) == sorted(
        ["P.npz", "W.npy", "X.npy", "Y.npy"] + (["R.npy"] if residual else []))
    for t in tiles:
        assert t.W.shape == (passes, cfg.rows, cfg.cols)
        assert t.X.shape == (5, passes * cfg.rows)
        # Weights: the layer's quantized columns, zero-padded to whole passes and tiles.
        flat = t.W.reshape(-1, cfg.cols)
        assert np.array_equal(flat[:K, :t.col1 - t.col0], lay.weights[:, t.col0:t.col1])
        assert not flat[K:].any() and not flat[:, t.col1 - t.col0:].any()
        assert not t.X[:, K:].any()
        assert t.Y.shape == (5, t.col1 - t.col0)
        assert np.array_equal(_recompute(cfg, t), t.Y)
    # The outputs are not degenerate (a test of a constant tile would prove little).
    assert len(np.unique(np.concatenate([t.Y.ravel() for t in tiles]))) > 3


def test_export_of_a_depthwise_conv(tmp_path):
    """Each tile of a depthwise conv carries only its channels' patches; the files alone
    recompute its outputs."""
    cfg = CoreConfig(rows=32, cols=4)
    m, shape = graphs.grouped_model(np.random.default_rng(5), cout=4, groups=4)
    graph = import_model(m)
    x = np.random.default_rng(6).normal(size=(8, *shape)).astype(np.float32)
    layers = plan(graph)
    env = graph.forward(x, keep_all=True)
    qm = quantize_model(graph, layers, {t: calibrate_range("minmax", env[t], cfg)
                                        for t in calibration_tensors(graph, layers)}, cfg)
    manifest = export_vectors(qm, x, tmp_path, count=6)
    assert (manifest["kind"], manifest["K"], manifest["passes"]) == ("gconv", 27, 1)
    _, _, tiles = load_vectors(tmp_path)
    assert [(t.col0, t.col1) for t in tiles] == [(0, 3), (3, 4)]
    _, codes = run(qm, x, keep=True)
    cols = im2col(codes["x"], (3, 3), (1, 1), (1, 1, 1, 1), qm.qparams["x"].zero_point)
    for t in tiles:
        assert np.array_equal(t.X[:, :9 * (t.col1 - t.col0)], cols[:6, 9 * t.col0:9 * t.col1])
        assert np.array_equal(_recompute(cfg, t), t.Y)


def test_export_errors(tmp_path):
    qm, x = _qmodel("digits_mlp.onnx", SMALL)
    with pytest.raises(ValueError, match=r"^layer must name a weighted layer of the model "
                                         r"\(fc1, fc2, fc3\), got 'relu1'$"):
        export_vectors(qm, x, tmp_path, layer="relu1")
    with pytest.raises(ValueError, match=r"^count must be an int >= 1, got 0$"):
        export_vectors(qm, x, tmp_path, count=0)
    with pytest.raises(FileNotFoundError, match=r"none: no manifest.json$"):
        load_vectors(tmp_path / "none")
    (tmp_path / MANIFEST).write_text('{"format": "other"}')
    with pytest.raises(ValueError, match=r"not a dcim-vectors-1 manifest$"):
        load_vectors(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": "dcim-vectors-1", "config": {}}')
    with pytest.raises(ValueError, match=r"incomplete manifest \(missing vectors, passes, "
                                         r"tiles, residual, layer, schedule\)$"):
        load_vectors(tmp_path)


def _calibrate(capsys, out, *extra):
    code = main(["calibrate", str(EXAMPLES / "digits_mlp.onnx"), "--calib",
                 str(EXAMPLES / "digits_calib.npz"), "--eval", str(EXAMPLES / "digits_eval.npz"),
                 "--method", "minmax", "--no-peer", "--rows", "16", "--cols", "8",
                 "--export-vectors", str(out), *extra])
    return code, capsys.readouterr()


def test_calibrate_cli_exports(tmp_path, capsys):
    code, cap = _calibrate(capsys, tmp_path / "v", "--export-count", "3")
    assert code == 0, cap.err
    assert "wrote layer fc1 (gemm, K 64, N 64, 8 tile(s), 4 pass(es) each, 3 vectors" in cap.out
    cfg, manifest, tiles = load_vectors(tmp_path / "v")
    assert (cfg.rows, cfg.cols, manifest["layer"], len(tiles)) == (16, 8, "fc1", 8)
    code, cap = _calibrate(capsys, tmp_path / "w", "--export-layer", "nope")
    assert code == 2 and cap.err.strip().splitlines()[-1].startswith(
        "dcim: error: --export-layer must name a weighted layer (fc1, fc2, fc3), got 'nope'")
    code, cap = _calibrate(capsys, tmp_path / "w", "--export-count", "0")
    assert code == 2 and cap.err.strip() == "dcim: error: --export-count must be an int >= 1, got 0"


def test_regress_vectors_config_disagrees(tmp_path, capsys):
    qm, x = _qmodel("digits_mlp.onnx", SMALL)
    export_vectors(qm, x, tmp_path, count=2)
    code = main(["regress", "--vectors", str(tmp_path), "--rows", "32", "--sim", "icarus"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (f"dcim: error: --vectors {tmp_path} was exported for another core "
                   "(rows 16 != 32); drop the config options or match them")
    assert main(["regress", "--vectors", str(tmp_path), "--tests", "x", "--sim", "icarus"]) == 2
    assert capsys.readouterr().err.strip() == (
        "dcim: error: --tests cannot be combined with --vectors (only test_replay runs)")
    assert main(["regress", "--vectors", str(tmp_path / "none"), "--sim", "icarus"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dcim: error: --vectors {tmp_path / 'none'}: no manifest.json (write one with dcim "
        "calibrate --export-vectors)")


@pytest.mark.sim
def test_replay_on_both_simulators(tmp_path, capsys):
    """Export layers of the shipped models for a 16x8 core and replay them bit-exactly."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    for model, layer in (("digits_cnn.onnx", "conv3"), ("digits_mlp.onnx", "fc2")):
        out = tmp_path / layer
        code = main(["calibrate", str(EXAMPLES / model), "--calib",
                     str(EXAMPLES / "digits_calib.npz"), "--eval",
                     str(EXAMPLES / "digits_eval.npz"), "--method", "minmax", "--no-peer",
                     "--rows", "16", "--cols", "8", "--export-vectors", str(out),
                     "--export-layer", layer, "--export-count", "4"])
        assert code == 0
        capsys.readouterr()
        code = main(["regress", "--vectors", str(out), "--sim", "all", "--seed", "1",
                     "--out", str(tmp_path / "build")])
        text = capsys.readouterr().out
        assert code == 0, text
        assert "FAIL" not in text
        assert text.count(f"replayed layer {layer}:") == 2, text  # once per simulator
    # A wrong expected value is reported with layer, tile, vector, column and cycle.
    y = np.load(out / "tile2" / "Y.npy")
    y[3, 5] += 1
    np.save(out / "tile2" / "Y.npy", y)
    # an edited file no longer matches the digest the manifest records: refused before the run
    code = main(["regress", "--vectors", str(out), "--sim", "icarus", "--seed", "1",
                 "--out", str(tmp_path / "build")])
    assert code == 2
    assert capsys.readouterr().err == (f"dcim: error: {out / 'tile2' / 'Y.npy'} does not match "
                                       f"{out / 'manifest.json'} (files of different exports: "
                                       "an interrupted or mixed one); export again\n")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tiles"][2]["sha256"]["Y.npy"] = hashlib.sha256(
        (out / "tile2" / "Y.npy").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    code = main(["regress", "--vectors", str(out), "--sim", "icarus", "--seed", "1",
                 "--out", str(tmp_path / "build")])
    text = capsys.readouterr().out
    assert code == 1
    assert re.search(r"test_replay: layer fc2 tile 2 vector 3 column 5 \(output channel 21\): "
                     rf"got {y[3, 5] - 1} expected {y[3, 5]} at cycle \d+ \(t = \d+ ns\); "
                     r"1 mismatch\(es\) in this tile", text), text
    assert os.environ.get("DCIM_REPLAY_DIR") is None
