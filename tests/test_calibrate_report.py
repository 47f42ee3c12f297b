"""The `dcim calibrate` report (issue 11): per-sample logits, ties, agreement, logit SQNR,
per-layer clipping, the onnxruntime peer (three calibrators, old opsets, read-only folders,
its output captured) and labels checked against the model's classes."""

import json
import math
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_graphs import gemm_model, init, model, ort_run, save
from tables import read_table, rows_by

from dcim.golden.quant import ort_peer
from dcim.golden.quant.metrics import LayerStats, flow_metrics, top1
from dcim.golden.quant.scheme import QParams, sqnr_db
from dcim.sim import cmd_calibrate
from dcim.sim.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
METRICS = {"accuracy", "correct", "ties", "ties_with_label", "top1_agreement_with_fp32",
           "logit_sqnr_db"}


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _calibrate(capsys, *argv):
    code = main(["calibrate", *map(str, argv)])
    return code, capsys.readouterr()


def softmax_model(w, b):
    """Gemm (w: (N, K)) -> Softmax: the logits are the Softmax's input."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1)]
    return model(nodes, [init("w", w), init("b", b)], [w.shape[1]])


@pytest.fixture()
def small(tmp_path):
    """A 6-class Gemm -> Softmax, labels = FP32's own predictions."""
    rng = np.random.default_rng(11)
    m = softmax_model(rng.normal(size=(6, 5)), rng.normal(size=6) * 0.1)
    x = rng.normal(size=(80, 5)).astype(np.float32)
    d = _npz(tmp_path / "d.npz", x=x, y=ort_run(m, x).argmax(1))
    return save(m, tmp_path / "m.onnx"), d, x


# ----------------------------------------------------------------------------------------------
# The metrics themselves
def test_top1_marks_ties():
    logits = np.array([[1, 3, 2], [3, 3, 0], [0, 0, 0], [-1, -2, -1], [2, 1, 0]])
    assert top1(logits).tolist() == [1, -1, -1, -1, 0]
    assert top1(np.array([[np.nan, 1.0], [0.5, 1.0]])).tolist() == [-1, 1]


def test_a_tie_is_never_correct_and_never_agrees():
    logits = np.array([[2.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 1.0, 1.0]])
    labels = np.array([0, 1, 2, 2])
    ref = np.array([[3.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 1.0, 1.0]])
    r = flow_metrics(logits, labels, ref)
    # Sample 0 ties between 0 and 1 (label 0: argmax would call it correct); sample 3 ties
    # all three (FP32 ties too: no agreement either).
    assert r["correct"] == 2 and r["accuracy"] == 0.5
    assert r["ties"] == 2 and r["ties_with_label"] == 2
    assert r["top1_agreement_with_fp32"] == 0.5
    # one logit off by 1 against sum(ref^2) = 9 + 4 + 1 + 25 + 3
    assert r["logit_sqnr_db"] == pytest.approx(10 * math.log10(42))


def test_layer_stats_split_clipped_values():
    qp = QParams(0.1, 0)  # codes -128..127: the range is [-12.8, 12.7]
    ref = np.array([0.04, 1.0, -2.0, 12.74, 50.0, -13.0])
    codes = np.clip(np.rint(ref / 0.1), -128, 127).astype(np.int64)
    st = LayerStats()
    st.add(ref, codes, codes, qp, (-128, 127))
    d = st.as_dict()
    # 12.74 is within half a step of the top code: rounding, not clipping.
    assert d["clipped_fraction"] == pytest.approx(2 / 6)
    inside = np.array([0, 1, 2, 3])
    assert d["inrange_sqnr_db"] == pytest.approx(sqnr_db(ref[inside], codes[inside] * 0.1))
    assert d["sqnr_db"] == pytest.approx(sqnr_db(ref, codes * 0.1))
    err = (ref - codes * 0.1) ** 2
    assert d["clip_error_share"] == pytest.approx(err[4:].sum() / err.sum())
    assert d["fakequant_mismatches"] == 0 and d["elements"] == 6


# ----------------------------------------------------------------------------------------------
# --save-logits
def test_save_logits_writes_every_flow(small, tmp_path, capsys):
    m, d, x = small
    out, rep = tmp_path / "logits.npz", tmp_path / "r.json"
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--save-logits", out,
                           "--json", rep)
    assert code == 0, cap.err
    assert f"wrote {out} (" in cap.out
    r = json.loads(rep.read_text())
    z = np.load(out)
    methods = ("minmax", "percentile", "entropy", "mse")
    want = {"labels", "fp32_logits", "fp32_pred"}
    want |= {f"ort_int8_{p}_{k}" for p in ("minmax", "percentile", "entropy")
             for k in ("logits", "pred")}
    want |= {f"int8_{m}_{k}" for m in methods
             for k in ("codes", "logits", "pred", "scale", "zero_point")}
    assert set(z.files) == want
    n = len(x)
    assert np.array_equal(z["labels"], np.load(d)["y"])
    # FP32 logits are the Softmax's input, as onnxruntime computes them.
    logits = z["fp32_logits"]
    assert logits.shape == (n, 6) and logits.dtype == np.float32
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), ort_run(onnx.load(m), x), atol=1e-6)
    for meth in methods:
        codes = z[f"int8_{meth}_codes"]
        assert codes.dtype == np.int8 and codes.shape == (n, 6)
        q = r["methods"][meth]["qparams"]["logits"]
        assert float(z[f"int8_{meth}_scale"]) == q["scale"]
        assert int(z[f"int8_{meth}_zero_point"]) == q["zero_point"]
        np.testing.assert_allclose(z[f"int8_{meth}_logits"],
                                   q["scale"] * (codes.astype(np.float64) - q["zero_point"]),
                                   rtol=1e-6)
        pred = z[f"int8_{meth}_pred"]
        assert np.array_equal(pred, top1(codes))
        assert r["methods"][meth]["accuracy"] == np.mean(pred == z["labels"])
    for p in ("minmax", "percentile", "entropy"):
        assert r["ort_int8"][p]["accuracy"] == np.mean(z[f"ort_int8_{p}_pred"] == z["labels"])


def test_save_logits_is_atomic(small, tmp_path, capsys, monkeypatch):
    m, d, _ = small
    out = tmp_path / "logits.npz"
    out.write_bytes(b"the previous run")

    def broken(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise OSError("No space left on device")

    monkeypatch.setattr(cmd_calibrate.np, "savez", broken)
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--no-peer", "--method",
                           "minmax", "--save-logits", out)
    assert code == 2 and cap.err.strip().splitlines()[-1] == (
        "dcim: error: No space left on device")
    assert out.read_bytes() == b"the previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "logits.npz", "m.onnx"]
    monkeypatch.undo()
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--no-peer", "--method",
                           "minmax", "--save-logits", tmp_path / "none" / "l.npz")
    assert code == 2
    assert cap.err.strip() == (f"dcim: error: --save-logits: directory {tmp_path / 'none'} "
                               f"does not exist (for {tmp_path / 'none' / 'l.npz'})")


# ----------------------------------------------------------------------------------------------
# Ties, agreement, logit SQNR
def test_int8_ties_count_as_wrong(tmp_path, capsys):
    """Classes 0 and 1 differ by 0.1 % of a weight: FP32 always picks class 0 (the label), the
    INT8 logits of the two are one code for most samples. Index order used to call each such
    tie correct."""
    rng = np.random.default_rng(5)
    w = np.array([[1.001, 1, 1, 1], [1, 1, 1, 1], [-1, -1, -1, -1]])
    m = save(gemm_model(w, np.zeros(3)), tmp_path / "m.onnx")
    n = 60
    d = _npz(tmp_path / "d.npz", x=rng.uniform(0.05, 1, size=(n, 4)).astype(np.float32),
             y=np.zeros(n, dtype=np.int64))
    out, rep = tmp_path / "l.npz", tmp_path / "r.json"
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                           "--json", rep, "--save-logits", out)
    assert code == 0, cap.err
    r = json.loads(rep.read_text())
    assert r["accuracy_fp32"] == 1.0 and r["fp32"]["ties"] == 0
    res = r["methods"]["minmax"]
    z = np.load(out)
    tied = z["int8_minmax_pred"] == -1
    assert res["ties"] == int(tied.sum()) >= n // 2
    assert res["ties_with_label"] == res["ties"]
    assert (z["int8_minmax_codes"][tied, 0] == z["int8_minmax_codes"][tied, 1]).all()
    assert res["accuracy"] == (n - res["ties"]) / n
    assert res["top1_agreement_with_fp32"] == res["accuracy"]
    assert r["best_drop_vs_fp32"] == pytest.approx(res["ties"] / n)
    flows = rows_by(read_table(cap.out, "flow"), "flow")
    assert flows["INT8 golden integer path, minmax"]["ties"] == str(res["ties"])
    assert flows["ORT INT8 QDQ per-channel, MinMax"]["ties"] == str(r["ort_int8"]["minmax"]["ties"])
    assert flows["FP32 (onnxruntime)"]["ties"] == "0"
    peer = r["ort_int8"]["minmax"]
    assert (f"counted as wrong (of the {res['ties'] + peer['ties']} above, "
            f"{res['ties'] + peer['ties_with_label']} had the label among the tied "
            "classes)") in cap.out
    assert peer["ties"] == int((z["ort_int8_minmax_pred"] == -1).sum())


def test_agreement_and_logit_sqnr_against_fp32(small, tmp_path, capsys):
    m, d, _ = small
    out, rep = tmp_path / "l.npz", tmp_path / "r.json"
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--json", rep,
                           "--save-logits", out, "--method", "percentile")
    assert code == 0, cap.err
    r, z = json.loads(rep.read_text()), np.load(out)
    fp = z["fp32_logits"].astype(np.float64)
    for flow, key in ((r["methods"]["percentile"], "int8_percentile"),
                      (r["ort_int8"]["percentile"], "ort_int8_percentile")):
        assert METRICS <= set(flow)
        pred = z[f"{key}_pred"]
        agree = np.mean((pred == z["fp32_pred"]) & (pred >= 0))
        assert flow["top1_agreement_with_fp32"] == agree
        assert flow["logit_sqnr_db"] == pytest.approx(sqnr_db(fp, z[f"{key}_logits"]), abs=1e-4)
        assert 15 < flow["logit_sqnr_db"] < 80
    flows = rows_by(read_table(cap.out, "logit SQNR"), "flow")
    for name, flow in (("INT8 golden integer path, percentile", r["methods"]["percentile"]),
                       ("ORT INT8 QDQ per-channel, Percentile", r["ort_int8"]["percentile"])):
        assert flows[name]["logit SQNR"] == f"{flow['logit_sqnr_db']:.2f} dB"
        assert flows[name]["agree"] == f"{100 * flow['top1_agreement_with_fp32']:.2f} %"
    assert flows["FP32 (onnxruntime)"]["logit SQNR"] == ""


# ----------------------------------------------------------------------------------------------
# Per-layer metric under outliers
def test_per_layer_clipping_metric(tmp_path, capsys):
    """A few far outliers: percentile clips them and represents the rest far better; plain
    SQNR, dominated by the clipped values, ranks it below minmax. The in-range SQNR and the
    clipped fraction show both."""
    rng = np.random.default_rng(3)
    m = save(gemm_model(np.eye(8), np.zeros(8)), tmp_path / "m.onnx")
    x = rng.normal(size=(8000, 8))  # 99.99th percentile: below the 6th largest of 64,000
    x[rng.choice(8000, 3, replace=False), rng.integers(0, 8, 3)] = 40.0
    d = _npz(tmp_path / "d.npz", x=x.astype(np.float32), y=x.argmax(1))
    rep = tmp_path / "r.json"
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--json", rep, "--no-peer")
    assert code == 0, cap.err
    r = json.loads(rep.read_text())
    mm, pc = r["methods"]["minmax"]["layers"][0], r["methods"]["percentile"]["layers"][0]
    assert mm["clipped_fraction"] == 0 and mm["inrange_sqnr_db"] == mm["sqnr_db"]
    assert 1e-4 < pc["clipped_fraction"] < 3e-4  # the two 0.01 % tails, outliers included
    assert pc["sqnr_db"] < mm["sqnr_db"] - 10  # plain SQNR: percentile looks far worse
    assert pc["inrange_sqnr_db"] > mm["inrange_sqnr_db"] + 10  # but the bulk is far better
    assert pc["clip_error_share"] > 0.99
    (row,) = read_table(cap.out, "in-rng")
    assert (row["layer"], row["kind"]) == ("fc", "matmul")
    assert row["minmax clip%"] == "0"
    assert float(row["percentile clip%"]) == pytest.approx(100 * pc["clipped_fraction"],
                                                           abs=1e-3)
    assert float(row["percentile in-rng"]) == pytest.approx(pc["inrange_sqnr_db"], abs=0.005)
    assert float(row["minmax SQNR"]) == pytest.approx(mm["sqnr_db"], abs=0.005)


# ----------------------------------------------------------------------------------------------
# The onnxruntime peer
def test_peer_has_three_calibrators_and_the_same_metrics(small, tmp_path, capsys):
    m, d, _ = small
    rep = tmp_path / "r.json"
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--json", rep)
    assert code == 0, cap.err
    r = json.loads(rep.read_text())
    assert list(r["ort_int8"]) == ["minmax", "percentile", "entropy"]
    assert [p["calibration"] for p in r["ort_int8"].values()] == ["MinMax", "Percentile",
                                                                   "Entropy"]
    for p in r["ort_int8"].values():
        assert METRICS <= set(p) and METRICS <= set(p["unoptimized"])
        assert p["accuracy"] >= 0.9
    assert r["accuracy_ort_int8"] == max(p["accuracy"] for p in r["ort_int8"].values())
    assert r["ort_int8_missing"] == [] and r["ort_int8_notes"] == [
        "pre-processed by quant_pre_process"]
    for name in ("MinMax", "Percentile", "Entropy"):
        assert f"ORT INT8 QDQ per-channel, {name} " in cap.out
    # Only the calibrators asked for; MinMax when onnxruntime has none of them.
    code, _ = _calibrate(capsys, m, "--calib", d, "--eval", d, "--json", rep, "--method", "mse")
    assert code == 0 and list(json.loads(rep.read_text())["ort_int8"]) == ["minmax"]


def _opset11(tmp_path, rng):
    m = model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)],
              [init("w", rng.normal(size=(3, 4))), init("b", rng.normal(size=3))], [4],
              opset=11)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    return save(m, tmp_path / "m11.onnx"), _npz(tmp_path / "d.npz", x=x, y=ort_run(m, x).argmax(1))


def test_peer_of_an_old_opset_model(tmp_path, capsys, monkeypatch):
    """onnxruntime writes per-channel DequantizeLinear (axis: opset 13) into an opset-11 model,
    which it then cannot load: the peer upgrades the model first, or says why it cannot."""
    m, d = _opset11(tmp_path, np.random.default_rng(4))
    rep = tmp_path / "r.json"
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                           "--json", rep)
    assert code == 0, cap.err
    r = json.loads(rep.read_text())
    assert r["ort_int8"]["minmax"]["accuracy"] >= 0.9 and r["ort_int8_missing"] == []
    assert r["ort_int8_notes"][0] == "upgraded from opset 11 to 13 by onnx.version_converter"
    assert "dcim: warning" not in cap.err

    def refuse(model, version):
        raise RuntimeError("No adapter for Gemm\nsecond line")

    monkeypatch.setattr(ort_peer, "_upgrade", refuse)
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                           "--json", rep)
    assert code == 0, cap.err
    reason = ("the model is opset 11, onnxruntime's per-channel QDQ needs opset 13, and onnx's "
              "version converter cannot upgrade it (No adapter for Gemm)")
    assert json.loads(rep.read_text())["ort_int8_missing"] == [reason]
    assert [ln for ln in cap.out.splitlines() if "ORT INT8" in ln] == [
        f"  ORT INT8 peer not run: {reason}"]
    assert [ln for ln in cap.err.splitlines() if ln.startswith("dcim: ")] == [
        f"dcim: warning: no ORT INT8 peer: {reason}"]


def test_peer_without_pre_processing(small, tmp_path, capsys):
    m, d, _ = small
    rep = tmp_path / "r.json"
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                           "--no-peer-preprocess", "--json", rep)
    assert code == 0, cap.err
    r = json.loads(rep.read_text())
    assert r["ort_int8_notes"] == [] and r["ort_int8"]["minmax"]["accuracy"] >= 0.9
    assert "ORT peer:" not in cap.out


def test_no_peer_says_so(small, capsys):
    m, d, _ = small
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                           "--no-peer")
    assert code == 0
    assert [ln for ln in cap.out.splitlines() if "ORT INT8" in ln] == [
        "  ORT INT8 peer not run: --no-peer"]


def test_peer_writes_nothing_next_to_the_model(tmp_path, capsys):
    """onnxruntime's quantizer writes `<model>-inferred.onnx` next to the model it is given:
    in a read-only folder the peer used to vanish. It now works on a copy in a temporary
    directory (the folder's mtime would change with any file created or removed in it)."""
    folder = tmp_path / "models"
    folder.mkdir()
    rng = np.random.default_rng(6)
    m = save(gemm_model(rng.normal(size=(3, 4)), rng.normal(size=3)), folder / "m.onnx")
    x = rng.normal(size=(30, 4)).astype(np.float32)
    d = _npz(tmp_path / "d.npz", x=x, y=ort_run(onnx.load(m), x).argmax(1))
    past = 1_000_000_000
    os.utime(folder, (past, past))
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--json", tmp_path / "r.json")
    assert code == 0, cap.err
    assert os.stat(folder).st_mtime == past
    assert sorted(p.name for p in folder.iterdir()) == ["m.onnx"]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["ort_int8"]) == {"minmax", "percentile", "entropy"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_peer_from_a_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    rng = np.random.default_rng(7)
    m = save(gemm_model(rng.normal(size=(3, 4)), rng.normal(size=3)), folder / "m.onnx")
    x = rng.normal(size=(30, 4)).astype(np.float32)
    d = _npz(tmp_path / "d.npz", x=x, y=ort_run(onnx.load(m), x).argmax(1))
    folder.chmod(0o555)
    try:
        code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d, "--method", "minmax",
                               "--json", tmp_path / "r.json")
    finally:
        folder.chmod(0o755)
    assert code == 0, cap.err
    assert "minmax" in json.loads((tmp_path / "r.json").read_text())["ort_int8"]


def test_onnxruntime_output_is_captured(tmp_path, capfd):
    """An unused initializer makes onnxruntime's C++ logger warn on every session, and the
    histogram calibrators print progress: none of it reaches the terminal; it is kept in the
    report's ort_log."""
    rng = np.random.default_rng(8)
    m = model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)],
              [init("w", rng.normal(size=(3, 4))), init("b", rng.normal(size=3)),
               init("unused", np.ones(5))], [4])
    x = rng.normal(size=(30, 4)).astype(np.float32)
    path = save(m, tmp_path / "m.onnx")
    d = _npz(tmp_path / "d.npz", x=x, y=ort_run(m, x).argmax(1))
    rep = tmp_path / "r.json"
    capfd.readouterr()  # ort_run's own session warned too
    code = main(["calibrate", str(path), "--calib", str(d), "--eval", str(d), "--json",
                 str(rep)])
    cap = capfd.readouterr()
    assert code == 0, cap.err
    for text in (cap.out, cap.err):
        assert "Removing initializer" not in text and "histogram" not in text
        assert "W:onnxruntime" not in text and "\x1b[" not in text
    assert [ln for ln in cap.err.splitlines() if ln.startswith("dcim: ")] == []
    log = json.loads(rep.read_text())["ort_log"]
    assert any("Removing initializer 'unused'" in ln for ln in log)
    assert any("making histogram" in ln for ln in log)
    assert not any("\x1b[" in ln for ln in log)
    assert f"onnxruntime printed {len(log)} line(s)" in cap.out


# ----------------------------------------------------------------------------------------------
# Labels against the model's classes
@pytest.mark.parametrize("bad", [7, -1])
def test_labels_outside_the_classes(small, tmp_path, capsys, bad):
    m, _, x = small
    y = np.zeros(len(x), dtype=np.int64)
    y[[4, 9]] = bad
    d = _npz(tmp_path / "bad.npz", x=x, y=y)
    code, cap = _calibrate(capsys, m, "--calib", d, "--eval", d)
    assert code == 2
    assert cap.err.strip() == (f"dcim: error: evaluation data {d}: labels y must be in 0..5 "
                               f"(the model has 6 classes), got {bad} (sample 4; 2 label(s) "
                               "out of range)")  # one line, before any progress line
