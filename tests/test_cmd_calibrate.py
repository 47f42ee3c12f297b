"""`dcim calibrate`: bad input as one line each, warnings, and the shipped MLP end to end."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper
import onnx_graphs as graphs
from onnx_graphs import gemm_model, init, model, ort_run, save

from dcim.sim.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    m = save(gemm_model(rng.normal(size=(3, 4)), rng.normal(size=3)), tmp_path / "m.onnx")
    x = rng.normal(size=(10, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10) % 3)
    return tmp_path, m


def _run(capsys, *argv):
    code = main(["calibrate", *map(str, argv), "--no-peer"])
    return code, capsys.readouterr()


def _error(capsys, *argv):
    code, cap = _run(capsys, *argv)
    lines = [ln for ln in cap.err.strip().splitlines() if ln.startswith("dcim: ")]
    assert code == 2, cap.err
    assert len(lines) == 1 and lines[0].startswith("dcim: error: "), cap.err
    assert "Traceback" not in cap.err
    return lines[0][len("dcim: error: "):]


def _npz(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_bad_model(files, capsys):
    tmp, m = files
    d = tmp / "d.npz"
    assert _error(capsys, tmp / "none.onnx", "--calib", d, "--eval", d) == (
        f"model file not found: {tmp / 'none.onnx'}")
    bad = tmp / "bad.onnx"
    bad.write_bytes(b"garbage")
    assert _error(capsys, bad, "--calib", d, "--eval", d).startswith(
        f"{bad}: not a valid ONNX model (")
    lrn = save(model([helper.make_node("LRN", ["x"], ["y"], name="n0", size=3)], [], [4]),
               tmp / "lrn.onnx")
    assert _error(capsys, lrn, "--calib", d, "--eval", d).startswith(
        "unsupported ONNX op LRN in node 'n0'; supported: ")


def test_bias_add_that_is_not_per_channel(tmp_path, capsys):
    """A 1-D constant added to a Conv output broadcasts along the width: one line, no
    traceback."""
    rng = np.random.default_rng(1)
    m = save(model([helper.make_node("Conv", ["x", "w"], ["t"], name="conv"),
                    helper.make_node("Add", ["t", "b"], ["y"], name="bias")],
                   [init("w", rng.normal(size=(4, 2, 3, 3))), init("b", rng.normal(size=4))],
                   [2, 6, 6]), tmp_path / "m.onnx")
    d = _npz(tmp_path, "d.npz", x=np.zeros((2, 2, 6, 6), dtype=np.float32), y=np.zeros(2, int))
    assert _error(capsys, m, "--calib", d, "--eval", d) == (
        "Add node 'bias': adding to 'conv' a constant of shape (4,) (not per output channel; a "
        "bias has shape (4, 1, 1)) is not supported")


def test_clip_with_bounds_of_shape_1(tmp_path, capsys):
    """Clip's min and max as (1,)-shaped initializers (as some exporters write them)."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="fc", transB=1),
             helper.make_node("Clip", ["g", "lo", "hi"], ["y"], name="clip")]
    m = model(nodes, [init("w", rng.normal(size=(5, 8))), init("b", rng.normal(size=5)),
                      init("lo", np.array([-1.0])), init("hi", np.array([1.5]))], [8])
    x = rng.normal(size=(200, 8)).astype(np.float32)
    ref = ort_run(m, x)
    assert ref.min() == pytest.approx(-1.0) and ref.max() == pytest.approx(1.5)
    d = _npz(tmp_path, "d.npz", x=x, y=ref.argmax(1))
    code, cap = _run(capsys, save(m, tmp_path / "m.onnx"), "--calib", d, "--eval", d,
                     "--method", "minmax", "--json", tmp_path / "r.json")
    assert code == 0, cap.err
    r = json.loads((tmp_path / "r.json").read_text())
    # The Clip saturates several classes at 1.5: those samples are ties (wrong) in FP32 too.
    assert r["fp32"]["ties"] > 0
    assert r["methods"]["minmax"]["accuracy"] >= r["accuracy_fp32"] - 0.01
    assert r["methods"]["minmax"]["qparams"]["y"]["scale"] == pytest.approx(2.5 / 255)


def test_network_of_the_newer_ops(tmp_path, capsys):
    """Depthwise and dilated convs, HardSwish, Concat, padded pools, Sub, a Shape-based flatten:
    calibrated end to end with the onnxruntime peer; labels are FP32's own predictions."""
    m, shape = graphs.mixed_model(np.random.default_rng(8))
    x = np.random.default_rng(9).uniform(0, 1, size=(300, *shape)).astype(np.float32)
    d = _npz(tmp_path, "d.npz", x=x, y=ort_run(m, x).argmax(1))
    code = main(["calibrate", str(save(m, tmp_path / "m.onnx")), "--calib", str(d), "--eval",
                 str(d), "--method", "minmax", "--json", str(tmp_path / "r.json")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["accuracy_fp32"] == 1.0 and "accuracy_ort_int8" in r
    assert r["methods"]["minmax"]["accuracy"] >= 0.95
    assert [lay["fakequant_mismatches"] for lay in r["methods"]["minmax"]["layers"]] == [0] * 10
    kinds = {lay["name"]: lay["kind"] for lay in r["mapping"]["layers"]}
    # The HardSwish directly after the stem conv is the conv's DPU table.
    assert kinds == {"stem": "conv+hswish", "dw": "gconv", "dil": "conv",
                     "pw": "conv", "cat": "concat", "avg": "avgpool", "max": "maxpool",
                     "sub": "sub", "view": "flatten", "fc": "gemm", "softmax": "softmax"}


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (None, "calibration data file not found: {p}"),
        ({"z": np.zeros((3, 4))}, "calibration data {p} has no array 'x' (keys: z)"),
        ({"x": np.zeros((0, 4))}, "calibration data {p} is empty (0 samples)"),
        ({"x": np.zeros((3, 5))}, "calibration data {p} has samples of shape (5,), the model "
                                  "'t' expects (4) (input 'x')"),
        ({"x": np.array([[0, 1, 2, 3], [0, np.nan, np.inf, 1]])},
         "calibration data {p}: x has 2 NaN/Inf value(s) (first in sample 1)"),
    ],
)
def test_bad_calibration_data(files, capsys, arrays, message):
    tmp, m = files
    p = tmp / "c.npz"
    if arrays is not None:
        np.savez(p, **arrays)
    assert _error(capsys, m, "--calib", p, "--eval", tmp / "d.npz") == message.format(p=p)


def test_bad_eval_data(files, capsys):
    tmp, m = files
    corrupt = tmp / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    assert _error(capsys, m, "--calib", tmp / "d.npz", "--eval", corrupt).startswith(
        f"evaluation data {corrupt} is not a readable .npz archive (")
    npy = tmp / "x.npy"
    np.save(npy, np.zeros((3, 4)))
    assert _error(capsys, m, "--calib", npy, "--eval", tmp / "d.npz") == (
        f"calibration data {npy} is not a readable .npz archive (a single array, not an "
        "archive of x and y)")
    nolabels = _npz(tmp, "nolabels.npz", x=np.zeros((3, 4), dtype=np.float32))
    assert _error(capsys, m, "--calib", tmp / "d.npz", "--eval", nolabels) == (
        f"evaluation data {nolabels} has no labels 'y'")
    badlabels = _npz(tmp, "bl.npz", x=np.zeros((3, 4)), y=np.zeros(2, dtype=np.int64))
    assert _error(capsys, m, "--calib", tmp / "d.npz", "--eval", badlabels) == (
        f"evaluation data {badlabels}: y must be 3 integer labels, got int64 (2,)")
    assert _error(capsys, m, "--calib", tmp / "d.npz", "--eval", tmp / "d.npz",
                  "--clock-mhz", "0") == "--clock-mhz must be a positive frequency, got 0.0"


def test_warnings_are_one_line_each(tmp_path, capsys):
    w = np.ones((2, 200))
    m = save(gemm_model(w, np.array([-1.0, -1.0]), relu=True), tmp_path / "m.onnx")
    # Inputs in [0, 0.001]: the ReLU output is all zero on the calibration data.
    d = _npz(tmp_path, "d.npz", x=np.full((4, 200), 0.001, dtype=np.float32),
             y=np.zeros(4, dtype=np.int64))
    code, cap = _run(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                     "--psum-bits", "22")
    assert code == 0
    warnings = [ln for ln in cap.err.splitlines() if ln.startswith("dcim: warning: ")]
    assert warnings == [
        "dcim: warning: tensor 'y' is constant zero on the calibration data (scale 0): "
        "fallback scale 1.0, zero point 0",
        "dcim: warning: layer 'fc': worst-case accumulator 3251200 (2**21.6) exceeds the 22-bit "
        "partial sum (the core saturates it)",
    ]


def test_shipped_mlp_end_to_end(tmp_path, capsys):
    """The shipped MLP with every calibrator and the onnxruntime INT8 peer."""
    model_path = EXAMPLES / "digits_mlp.onnx"
    calib, ev = EXAMPLES / "digits_calib.npz", EXAMPLES / "digits_eval.npz"
    report = tmp_path / "r.json"
    code = main(["calibrate", str(model_path), "--calib", str(calib), "--eval", str(ev),
                 "--json", str(report), "--clock-mhz", "100"])
    out = capsys.readouterr().out
    assert code == 0
    r = json.loads(report.read_text())
    data = np.load(ev)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    fp32 = float((sess.run(None, {"x": data["x"]})[0].argmax(1) == data["y"]).mean())
    assert r["accuracy_fp32"] == fp32 and r["eval_samples"] == len(data["y"])
    assert set(r["methods"]) == {"minmax", "percentile", "entropy", "mse"}
    for res in r["methods"].values():
        assert abs(res["accuracy"] - fp32) <= 0.01
        assert [lay["fakequant_mismatches"] for lay in res["layers"]] == [0] * 4
        assert all(lay["elements"] > 0 for lay in res["layers"])
    assert abs(r["accuracy_ort_int8"] - fp32) <= 0.02
    # 64-64-32-10 on the 64 x 32 array: fc1 needs two column tiles.
    fc = [(m["name"], m["passes"], m["macs"]) for m in r["mapping"]["layers"] if m["passes"]]
    assert fc == [("fc1", 2, 4096), ("fc2", 1, 2048), ("fc3", 1, 320)]
    assert r["mapping"]["totals"]["peak_tops"] == pytest.approx(2 * 64 * 32 / 8 * 100e6 / 1e12)
    assert "bit-exact with the integer path" in out
    assert "INT8 golden integer path, entropy" in out


@pytest.mark.slow
def test_shipped_cnn_acceptance(tmp_path, capsys):
    """Issue 5 acceptance: the best calibrator within 0.5 % of FP32 on the shipped CNN, next to
    onnxruntime's INT8; the mapping has cycles and utilization for every array layer."""
    report = tmp_path / "r.json"
    code = main(["calibrate", str(EXAMPLES / "digits_cnn.onnx"),
                 "--calib", str(EXAMPLES / "digits_calib.npz"),
                 "--eval", str(EXAMPLES / "digits_eval.npz"), "--json", str(report),
                 "--max-drop", "0.5"])
    capsys.readouterr()
    assert code == 0
    r = json.loads(report.read_text())
    best = r["methods"][r["best_method"]]["accuracy"]
    assert r["accuracy_fp32"] - best <= 0.005
    assert "accuracy_ort_int8" in r
    convs = [m for m in r["mapping"]["layers"] if m["passes"]]
    assert [m["name"] for m in convs] == ["conv1", "conv2", "conv3", "conv4", "fc"]
    assert all(m["cycles"] > 0 and 0 < m["utilization"] <= 1 for m in convs)
    # conv3 carries the residual add and relu3 in its DPU.
    assert [lay["tensor"] for lay in r["methods"]["minmax"]["layers"]][2] == "relu3"


def test_max_drop_fails_the_run(files, capsys):
    tmp, m = files
    d = tmp / "d.npz"
    # the shipped MLP on a 16x8 core loses a little top-1 (a few of 540 samples) with minmax
    code, cap = _run(capsys, EXAMPLES / "digits_mlp.onnx", "--calib",
                     EXAMPLES / "digits_calib.npz", "--eval", EXAMPLES / "digits_eval.npz",
                     "--rows", "16", "--cols", "8", "--method", "minmax", "--max-drop", "0")
    assert code == 1
    assert cap.err.strip().splitlines()[-1].startswith("dcim: best INT8 accuracy is ")
    assert cap.err.strip().endswith("below FP32 (limit 0.0 %)")
    code, _ = _run(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                   "--max-drop", "100")
    assert code == 0


def test_fixed_batch_dimension(tmp_path, capsys):
    """Exported models often fix the batch at 1: onnxruntime then runs sample by sample."""
    rng = np.random.default_rng(2)
    m = gemm_model(rng.normal(size=(3, 4)), rng.normal(size=3))
    for batch in (1, 4):
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
        path = save(m, tmp_path / f"b{batch}.onnx")
        d = _npz(tmp_path, "d.npz", x=rng.normal(size=(12, 4)).astype(np.float32),
                 y=np.arange(12) % 3)
        code = main(["calibrate", str(path), "--calib", str(d), "--eval", str(d), "--method",
                     "minmax", "--json", str(tmp_path / "r.json")])
        cap = capsys.readouterr()
        assert code == 0, cap.err
        r = json.loads((tmp_path / "r.json").read_text())
        assert r["eval_samples"] == 12 and "accuracy_ort_int8" in r
    d = _npz(tmp_path, "d10.npz", x=np.zeros((10, 4), dtype=np.float32), y=np.zeros(10, int))
    assert _error(capsys, path, "--calib", d, "--eval", d) == (
        f"{path} has a fixed batch dimension of 4; the data has 10 samples, not a multiple of it")


class _Terminal:
    """A stand-in for stderr that says it is a terminal and keeps what is written."""

    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bars_on_a_terminal_only(monkeypatch, tty):
    """One bar per stage on stderr, redrawn to its count, when stderr is a terminal; nothing
    when it is not (a log file, a pipe). Leaving the block closes a bar left open (Ctrl-C)."""
    from dcim.sim import cmd_calibrate

    err = _Terminal(tty)
    monkeypatch.setattr("sys.stderr", err)
    with cmd_calibrate._Bar() as bar:
        for done in range(4):
            bar("int8 minmax", done, 3)
        bar("onnxruntime fp32", 0, 2)
        bar("onnxruntime fp32", 1, 2)
        assert bar.bar is not None  # interrupted half way
    assert bar.bar is None
    if not tty:
        assert err.text == ""
        return
    frames = [f.strip() for f in err.text.replace("\n", "\r").split("\r") if f.strip()]
    assert [f.split(":")[0] for f in frames[:1] + frames[-1:]] == ["int8 minmax",
                                                                   "onnxruntime fp32"]
    assert any("3/3" in f for f in frames if f.startswith("int8 minmax"))
    assert not any("3/3" in f or "2/2" in f for f in frames if f.startswith("onnxruntime"))
    assert any("1/2" in f for f in frames if f.startswith("onnxruntime"))
