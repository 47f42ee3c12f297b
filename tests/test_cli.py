"""`dcim config` and `dcim golden`: outputs, and one clear error line with exit code 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcim.golden.config import CoreConfig
from dcim.sim.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_writes_json_with_derived(tmp_path, capsys):
    path = tmp_path / "core.json"
    code, out, _ = run_cli(capsys, "config", "--rows", "64", "--cols", "32", "--serial-bits", "2",
                           "--act-signed", "false", "-o", str(path))
    assert code == 0 and "wrote" in out
    data = json.loads(path.read_text())
    assert data["rows"] == 64 and data["serial_bits"] == 2 and data["act_signed"] is False
    assert data["derived"]["cycles_per_pass"] == 4
    assert CoreConfig.load(path) == CoreConfig(rows=64, cols=32, serial_bits=2, act_signed=False)


def test_config_file_then_overrides_rederive_acc_bits(tmp_path, capsys):
    path = tmp_path / "core.toml"
    assert run_cli(capsys, "config", "--rows", "16", "-o", str(path))[0] == 0
    code, out, _ = run_cli(capsys, "config", "--config", str(path), "--rows", "4096")
    assert code == 0
    data = json.loads(out)
    assert data["acc_bits"] is None and data["derived"]["acc_width"] == 28


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["config", "--rows", "0"], "dcim: error: rows must be in [1, 4096], got 0"),
        (["config", "--serial-bits", "3"], "dcim: error: serial_bits must be one of (1, 2, 4, 8), "
                                           "got 3"),
        (["config", "--rounding", "up"], "dcim: error: rounding must be one of single, double, "
                                         "rne, got 'up'"),
        (["config", "--name", "wire"], "dcim: error: name must be a Verilog identifier "
                                       "([A-Za-z_][A-Za-z0-9_]*, not a reserved word), got 'wire'"),
        (["config", "--config", "missing.json"],
         "dcim: error: [Errno 2] No such file or directory: 'missing.json'"),
    ],
)
def test_config_errors_are_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err == message + "\n"


def test_config_rejects_unknown_key(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"rows": 8, "colz": 3}))
    code, _, err = run_cli(capsys, "config", "--config", str(path))
    assert code == 2
    assert err.startswith("dcim: error: unknown config key(s) colz; allowed: ")
    assert err.count("\n") == 1


@pytest.fixture
def vectors(tmp_path):
    rng = np.random.default_rng(7)
    cfg = CoreConfig(rows=8, cols=4)
    cfg.save(tmp_path / "core.json")
    W = rng.integers(-128, 128, size=(20, 4), dtype=np.int8)  # K = 20: three passes of 8
    X = rng.integers(-128, 128, size=(5, 20), dtype=np.int8)
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "X.npy", X)
    return tmp_path, W.astype(int), X.astype(int)


def test_golden_sums(vectors, capsys):
    d, W, X = vectors
    code, out, _ = run_cli(capsys, "golden", "--config", str(d / "core.json"),
                           "--weights", str(d / "W.npy"), "--inputs", str(d / "X.npy"),
                           "-o", str(d / "Y.npy"))
    assert code == 0
    Y = np.load(d / "Y.npy")
    assert Y.dtype == np.int32
    expect = [[sum(int(W[k, c]) * int(X[b, k]) for k in range(20)) for c in range(4)]
              for b in range(5)]
    assert Y.tolist() == expect


def test_golden_dpu(vectors, capsys):
    d, W, X = vectors
    np.savez(d / "P.npz", bias=np.array([0, 10, -10, 0]), multiplier=np.full(4, 1 << 30),
             shift=np.full(4, -6), out_zp=3, act_min=-128, act_max=127)
    code, _, _ = run_cli(capsys, "golden", "--config", str(d / "core.json"), "--weights",
                         str(d / "W.npy"), "--inputs", str(d / "X.npy"), "--dpu",
                         str(d / "P.npz"), "-o", str(d / "Y.npy"))
    assert code == 0
    Y = np.load(d / "Y.npy")
    assert Y.dtype == np.int8
    bias = [0, 10, -10, 0]
    for b in range(5):
        for c in range(4):
            acc = sum(int(W[k, c]) * int(X[b, k]) for k in range(20)) + bias[c]
            q = (acc * 2**30 + 2**36) >> 37  # x * 2^30 / 2^37 = x / 128, ties up
            assert Y[b, c] == min(max(q + 3, -128), 127)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: np.save(d / "X.npy", np.full((2, 20), 200, dtype=np.int16)),
         "dcim: error: activations (8-bit signed) must be in [-128, 127], got 200"),
        (lambda d: np.save(d / "X.npy", np.zeros((2, 19), dtype=np.int8)),
         "dcim: error: activations must have shape (20,) or (batch, 20), got (2, 19)"),
        (lambda d: np.save(d / "X.npy", np.zeros((2, 20), dtype=np.float32)),
         "dcim: error: activations must be an integer array, got dtype float32"),
        (lambda d: np.save(d / "W.npy", np.zeros((20, 5), dtype=np.int8)),
         "dcim: error: weights must have shape (K, 4) with K >= 1, got (20, 5)"),
        (lambda d: (d / "W.npy").write_text("not numpy"),
         None),  # message names the file; checked below
    ],
)
def test_golden_bad_inputs(vectors, capsys, make, message):
    d, _, _ = vectors
    make(d)
    code, _, err = run_cli(capsys, "golden", "--config", str(d / "core.json"), "--weights",
                           str(d / "W.npy"), "--inputs", str(d / "X.npy"), "-o", str(d / "Y.npy"))
    assert code == 2
    assert err.count("\n") == 1
    if message is None:
        assert err == f"dcim: error: weights file {d / 'W.npy'} is not a readable .npy array " \
                      "(not a NumPy file)\n"
    else:
        assert err == message + "\n"
    assert not (d / "Y.npy").exists()


def test_golden_missing_file(vectors, capsys):
    d, _, _ = vectors
    code, _, err = run_cli(capsys, "golden", "--config", str(d / "core.json"), "--weights",
                           str(d / "nope.npy"), "--inputs", str(d / "X.npy"), "-o",
                           str(d / "Y.npy"))
    assert (code, err) == (2, f"dcim: error: weights file not found: {d / 'nope.npy'}\n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--residual", "X.npy"], "dcim: error: --residual needs --dpu"),
        (["--dpu", "nope.npz"], "dcim: error: DPU file not found: {d}/nope.npz"),
        (["--dpu", "X.npy"], "dcim: error: DPU file {d}/X.npy is not a readable .npz archive "
                             "(it holds one array)"),
        (["--residual", "P.npz", "--dpu", "P.npz"],
         "dcim: error: residual file {d}/P.npz is not a readable .npy array (it is an .npz "
         "archive)"),
        (["--dpu", "core.json"], "dcim: error: DPU file {d}/core.json is not a readable .npz "
                                 "archive (not a NumPy file)"),
    ],
)
def test_golden_dpu_file_errors(vectors, capsys, extra, message):
    d, _, _ = vectors
    np.savez(d / "P.npz", bias=np.zeros(4, dtype=np.int64), multiplier=np.full(4, 1 << 30),
             shift=np.zeros(4, dtype=np.int64), out_zp=0, act_min=-128, act_max=127)
    extra = [e if e.startswith("--") else str(d / e) for e in extra]
    code, _, err = run_cli(capsys, "golden", "--config", str(d / "core.json"), "--weights",
                           str(d / "W.npy"), "--inputs", str(d / "X.npy"), "-o",
                           str(d / "Y.npy"), *extra)
    assert (code, err) == (2, message.format(d=d) + "\n")
    assert not (d / "Y.npy").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["config", "--act-signed", "maybe"],
         "dcim config: error: argument --act-signed: expected true or false, got 'maybe' "
         "(see dcim config --help)"),
        (["synth", "-o", "out", "-j", "3"],
         "dcim synth: error: argument -j/--jobs: invalid choice: 3 (choose from 1, 2) "
         "(see dcim synth --help)"),
        ([], "dcim: error: the following arguments are required: COMMAND (see dcim --help)"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err == message + "\n"


def test_console_script_exit_code(tmp_path):
    """The installed `dcim` entry point: one line on stderr, exit 2, no traceback."""
    exe = Path(sys.executable).with_name("dcim")
    proc = subprocess.run([str(exe), "config", "--cols", "5000"], capture_output=True,
                          text=True, env={**os.environ, "DCIM_DEBUG": ""})
    assert proc.returncode == 2
    assert proc.stderr == "dcim: error: cols must be in [1, 4096], got 5000\n"
    assert "Traceback" not in proc.stdout + proc.stderr


def _bug(exc):
    """A stand-in for a bug deep in a command: the exception a wrong call would raise."""
    def derived(self):
        raise exc
    return derived


@pytest.mark.parametrize("exc", [TypeError("unsupported operand type(s) for +: 'int' and 'str'"),
                                 ValueError("too many values to unpack (expected 2)"),
                                 IndexError("tuple index out of range")])
def test_internal_error_is_exit_1_with_a_log(tmp_path, monkeypatch, capsys, exc):
    """A bug (any exception that is not an InputError or OSError) is not shown as bad input:
    one line naming the log file, exit 1, and the traceback in that file."""
    monkeypatch.delenv("DCIM_DEBUG", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(CoreConfig, "derived", _bug(exc))
    code, out, err = run_cli(capsys, "config", "--rows", "8")
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"dcim: internal error: {type(exc).__name__}: {exc} (a bug in dcim; "
                          "traceback in ")
    logs = list(tmp_path.glob("dcim-internal-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    text = logs[0].read_text()
    assert text.startswith("dcim config --rows 8\n")
    assert "Traceback (most recent call last)" in text and "in derived" in text
    assert text.rstrip().endswith(f"{type(exc).__name__}: {exc}")


def test_internal_error_raises_under_dcim_debug(monkeypatch):
    monkeypatch.setenv("DCIM_DEBUG", "1")
    monkeypatch.setattr(CoreConfig, "derived", _bug(IndexError("boom")))
    with pytest.raises(IndexError, match="^boom$"):
        main(["config"])


def test_input_error_from_validation_is_exit_2(tmp_path, capsys):
    """A bad value found deep in validation (a config file's field) is one line, exit 2."""
    path = tmp_path / "c.toml"
    path.write_text("rows = 8\ncols = 'eight'\n")
    code, out, err = run_cli(capsys, "config", "--config", str(path))
    assert code == 2
    assert err == "dcim: error: cols must be an int in [1, 4096], got str 'eight'\n"
    assert list(tmp_path.glob("dcim-internal-error-*")) == []


def test_ctrl_c_is_exit_130(monkeypatch, capsys):
    def interrupted(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(CoreConfig, "derived", interrupted)
    code, out, err = run_cli(capsys, "config")
    assert code == 130
    assert err == "dcim: interrupted\n"


def test_config_says_what_bounds_throughput(capsys):
    code, out, err = run_cli(capsys, "config", "--rows", "16", "--cols", "8")
    assert code == 0 and json.loads(out)["rows"] == 16
    # 8 compute cycles; automatic: one DPU lane (8 groups), 64-bit streams (2 x beats, one
    # int8 beat); raw: 4 int32 beats + 1 < 8
    assert err.strip() == (
        "throughput with back-to-back vectors (8 compute cycles per pass): DPU results: a pass "
        "every 8 cycles, array busy 100.0 % (bound: array); raw results: a pass every 8 "
        "cycles, array busy 100.0 % (bound: array)")
    # two compute cycles and one lane: 8 groups; balanced with 8 / 2 = 4 lanes
    code, out, err = run_cli(capsys, "config", "--rows", "16", "--cols", "8",
                             "--serial-bits", "4", "--dpu-lanes", "1")
    assert code == 0
    assert err.strip().endswith(
        "DPU results: a pass every 8 cycles, array busy 25.0 % (bound: DPU); raw results: a "
        "pass every 5 cycles, array busy 40.0 % (bound: result stream); output-bound: "
        "balanced with dpu_lanes=4")


def test_tree_style_with_tree_regs_it_cannot_place(capsys):
    """Both values in one line, exit 2, before any work (no output directory)."""
    code, out, err = run_cli(capsys, "config", "--rows", "64", "--tree-style", "ripple",
                             "--tree-regs", "8")
    assert code == 2 and out == ""
    assert err == ("dcim: error: tree_regs must be in [0, 6] with tree_style ripple (6 tree "
                   "levels at 64 rows), got 8 (tree_style csa places up to 11)\n")
    code, out, err = run_cli(capsys, "config", "--rows", "64", "--tree-style", "csa",
                             "--tree-regs", "8")
    assert code == 0 and '"tree_style": "csa"' in out
