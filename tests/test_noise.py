"""The analog what-if: weight deviations and ADC quantization of the column sums (issue 11)."""

from pathlib import Path

import numpy as np
import pytest

from dcim.golden.config import CoreConfig
from dcim.golden.model import mvm_tiled
from dcim.golden.quant.calibrate import calibrate_range
from dcim.golden.quant.noise import NoiseSpec, adc_quantize, analog_model, analog_mvm
from dcim.golden.quant.onnx_import import load_model
from dcim.golden.quant.qmodel import calibration_tensors, plan, quantize_model, run
from dcim.sim.cli import main
from tables import read_table

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EVAL = EXAMPLES / "digits_eval.npz"


@pytest.fixture(scope="module")
def cnn():
    """The shipped residual CNN, minmax-calibrated on 64 samples, and 48 evaluation images."""
    cfg = CoreConfig()
    graph = load_model(EXAMPLES / "digits_cnn.onnx")
    calib = np.load(EXAMPLES / "digits_calib.npz")["x"][:64]
    layers = plan(graph, residual_in_dpu=cfg.dpu_residual)
    env = graph.forward(calib, keep_all=True)
    ranges = {t: calibrate_range("minmax", env[t].reshape(-1), cfg)
              for t in calibration_tensors(graph, layers)}
    return quantize_model(graph, layers, ranges, cfg), np.load(EVAL)["x"][:48]


def test_no_noise_is_bit_identical_to_the_digital_path(cnn):
    """sigma 0 without an ADC: every integer tensor equals the exact digital path's; building
    noisy models leaves the digital model untouched."""
    qm, x = cnn
    _, want = run(qm, x, keep=True)
    noisy = analog_model(qm, NoiseSpec(0.05, seed=3))
    _, got = run(analog_model(qm, NoiseSpec(0.0)), x, keep=True)
    assert want.keys() == got.keys()
    for t in want:
        assert np.array_equal(want[t], got[t]), t
    _, again = run(qm, x, keep=True)
    assert all(np.array_equal(want[t], again[t]) for t in want)
    _, n = run(noisy, x, keep=True)
    assert not np.array_equal(n["logits"], want["logits"])


def test_seeded_and_reproducible(cnn):
    qm, x = cnn
    a = run(analog_model(qm, NoiseSpec(0.03, seed=7)), x, keep=True)[1]["logits"]
    b = run(analog_model(qm, NoiseSpec(0.03, seed=7)), x, keep=True)[1]["logits"]
    c = run(analog_model(qm, NoiseSpec(0.03, seed=8)), x, keep=True)[1]["logits"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_deviation_is_sigma_times_the_weight_range(cnn):
    """Every cell deviates by sigma * 255 codes (int8: -128..127) standard deviation, zero
    mean; the same normals for every sigma (common random numbers)."""
    qm, _ = cnn
    dev = {}
    for sigma in (0.01, 0.04):
        m = analog_model(qm, NoiseSpec(sigma, seed=1))
        dev[sigma] = np.concatenate([(t.weights - t0.weights).ravel()
                                     for lay, lay0 in zip(m.layers, qm.layers)
                                     for t, t0 in zip(lay.tiles, lay0.tiles)])
    assert dev[0.01].size > 10000
    assert np.std(dev[0.01]) == pytest.approx(2.55, rel=0.03)
    assert abs(np.mean(dev[0.01])) < 0.05
    np.testing.assert_allclose(dev[0.04], 4 * dev[0.01], rtol=0, atol=1e-12)


def test_adc_levels():
    """2**B levels over [lo, hi]: 3 bits over [-7, 7] have step 2; nearest level, clamped."""
    v = np.array([-9.0, -7.0, -6.2, -5.9, 0.4, 0.9, 1.1, 6.9, 30.0])
    assert adc_quantize(v, -7, 7, 3).tolist() == [-7, -7, -7, -5, 1, 1, 1, 7, 7]
    assert adc_quantize(np.array([0.49, 0.51]), 0, 1, 1).tolist() == [0, 1]


def test_analog_mvm_against_exact_and_hand_formulas():
    """Exact column sums of integer weights give mvm_tiled's partial sums; so does a 24-bit
    ADC (its error, at most half a step per cycle, stays below half an LSB in total); a
    2-bit ADC gives the hand-computed levels; a calibrated offset is subtracted before the
    rounding."""
    cfg = CoreConfig(rows=8, cols=4, serial_bits=2)
    rng = np.random.default_rng(0)
    W = rng.integers(-128, 128, size=(20, 4))
    X = rng.integers(-128, 128, size=(5, 20))
    want = mvm_tiled(cfg, W, X)
    assert np.array_equal(analog_mvm(cfg, W.astype(float), X, None), want)
    assert np.array_equal(analog_mvm(cfg, W.astype(float), X, 24), want)
    # One row, one pass: x = 6 = slices (2, 1, 0, 0), LSB first, 2 bits each.
    one = CoreConfig(rows=1, cols=1, serial_bits=2)
    lo, hi = one.slice_psum_range  # weights in [-128, 127] times a slice in [-2, 3]
    assert (lo, hi) == (-128 * 3, 127 * 3)
    step = (hi - lo) / 3
    level = lo + round((2 * 100 - lo) / step) * step  # cycle 0: 200
    level1 = lo + round((1 * 100 - lo) / step) * step  # cycle 1: 100
    level0 = lo + round((0 - lo) / step) * step        # cycles 2, 3: 0
    exact = level + 4 * level1 + 16 * level0 + 64 * level0
    got = analog_mvm(one, np.array([[100.0]]), np.array([[6]]), 2)
    assert got.tolist() == [[int(np.rint(exact))]]
    off = np.array([2.6, -1.4, 0.0, 0.5])
    assert np.array_equal(analog_mvm(cfg, W.astype(float), X, None, off),
                          np.rint(want - off).astype(np.int64))


def test_calibrated_offsets_remove_the_zero_point_term(cnn):
    """With offsets calibrated, a layer's partial sums are (X - zp) @ (W + E) + zp sum W,
    rounded: the deviations act on the centred codes only."""
    qm, x = cnn
    m = analog_model(qm, NoiseSpec(0.02, seed=5, calibrated_offsets=True))
    fc = next(i for i, lay in enumerate(qm.layers) if lay.name == "fc")
    tile, tile0 = m.layers[fc].tiles[0], qm.layers[fc].tiles[0]
    zp = qm.qparams[qm.layers[fc].inputs[0]].zero_point
    X = np.random.default_rng(2).integers(-128, 128, size=(6, tile.weights.shape[0]))
    want = np.rint((X - zp) @ tile.weights + zp * tile0.weights.sum(axis=0))
    np.testing.assert_array_equal(analog_mvm(qm.cfg, tile.weights, X, None, tile.offset), want)


def test_spec_validation():
    for kw, msg in (({"sigma": 1.5}, "sigma must be in \\[0, 1\\], got 1.5"),
                    ({"seed": -1}, "seed must be an int >= 0, got -1"),
                    ({"adc_bits": 0}, "ADC bits must be an int in \\[1, 24\\], got 0")):
        with pytest.raises(ValueError, match=msg):
            NoiseSpec(**kw)


@pytest.mark.parametrize("argv, message", [
    (["--weight-noise", "0.01,2"], "--weight-noise sigma must be in [0, 1] (relative to the "
                                   "weight range), got 2"),
    (["--weight-noise", "a,b"], "--weight-noise must be a comma-separated list or "
                                "START:STOP:STEP of numbers in [0, 1], got 'a,b'"),
    (["--weight-noise", "0.1:0.01:0.01"], "--weight-noise range START:STOP:STEP needs STEP > 0 "
                                          "and STOP >= START, got '0.1:0.01:0.01'"),
    (["--adc-bits", "5"], "--adc-bits needs --weight-noise"),
    (["--weight-noise", "0.01", "--adc-bits", "40"], "--adc-bits must be in [1, 24], got 40"),
    (["--weight-noise", "0.01", "--noise-seed", "-2"], "--noise-seed must be an int >= 0, got -2"),
])
def test_cli_bad_options(capsys, argv, message):
    code = main(["calibrate", str(EXAMPLES / "digits_mlp.onnx"), "--calib", str(EVAL),
                 "--eval", str(EVAL), "--no-peer", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"dcim: error: {message}"


def test_cli_table_and_plot(tmp_path, capsys):
    data = np.load(EVAL)
    ev = tmp_path / "ev.npz"
    np.savez(ev, x=data["x"][:40], y=data["y"][:40])
    png = tmp_path / "curve.png"
    code = main(["calibrate", str(EXAMPLES / "digits_mlp.onnx"), "--calib", str(ev), "--eval",
                 str(ev), "--no-peer", "--method", "minmax", "--weight-noise", "0.02:0.06:0.02",
                 "--adc-bits", "10", "--noise-seed", "4", "--plot", str(png), "--json",
                 str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("Analog what-if (minmax)"))
    rows = read_table("\n".join(lines[head:]), "codes changed")
    assert [r["array"] for r in rows] == ["exact digital INT8"] + ["analog, exact sums"] * 3 \
        + ["analog, 10-bit ADC"] * 4
    assert [r["sigma"] for r in rows] == ["0.0%", "2.0%", "4.0%", "6.0%",
                                          "0.0%", "2.0%", "4.0%", "6.0%"]
    assert rows[0]["codes changed"] == "0.00%"
    assert "reproduces the digital logit codes bit for bit" in lines[head + 2 + 1 + len(rows)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".curve.png.*"))  # written atomically, no temp file left
    import json
    r = json.loads((tmp_path / "r.json").read_text())["analog_whatif"]
    assert r["seed"] == 4 and len(r["rows"]) == 8
    assert [row["top-1"] for row in rows] == [f"{100 * x['accuracy']:.2f}%" for x in r["rows"]]
    assert [row["ties"] for row in rows] == [str(x["ties"]) for x in r["rows"]]
    assert [row["logit SQNR"] for row in rows] == [f"{x['logit_sqnr_db']:.2f} dB"
                                                   for x in r["rows"]]
    assert r["rows"][0]["accuracy"] == r["digital"]["accuracy"]
