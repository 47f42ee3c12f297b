"""Nothing lost (issue 14): the cases a robustness probe of the CLI found, each as a new user
meets it. A Ctrl-C or SIGTERM of `dcim regress` still writes the reports of what finished and
leaves no child; directories are written whole; every input and output path is checked before
the long work; two runs never share an output directory; malformed files are one line, exit 2.
No simulator is built: the regression's simulator calls are replaced where one would run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from dcim.golden import procgroup
from dcim.golden.config import CoreConfig
from dcim.golden.fileio import lock_dir
from dcim.sim import cmd_regress, regress_runs, supervise
from dcim.sim.build import generate
from dcim.sim.cli import main
from dcim.sim.runner import RunResult

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    """The one ``dcim: error:`` line of ``err`` (asserting it is the only line)."""
    assert err.count("\n") == 1, err
    assert err.startswith("dcim: error: "), err
    return err[len("dcim: error: "):].rstrip("\n")


@pytest.fixture(scope="module")
def rtl8x4(tmp_path_factory):
    """A `dcim generate` directory of an 8x4 core (Amaranth only, a few seconds)."""
    d = tmp_path_factory.mktemp("rtl") / "rtl"
    generate(CoreConfig(rows=8, cols=4), d)
    return d


# --------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM of dcim regress
def _ok_run(seed: int, test_dir: Path) -> RunResult:
    """A passing run of one seed as the runner reports it, with one coverage hit."""
    test_dir.mkdir(parents=True, exist_ok=True)
    cases = [{"name": "test_csr", "failed": False, "time": 0.1, "message": ""}]
    return RunResult(ok=True, tests=1, failed=0, failures=[], seconds=0.1,
                     stats={"tests": {"test_csr": {"digest": f"d{seed}", "checks": 3}},
                            "coverage": {}},
                     log=test_dir / "sim.log", results_xml=test_dir / "results.xml",
                     cases=cases)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_regress_reports_what_finished(tmp_path, capsys, monkeypatch, rtl8x4, how):
    """Seed 1 finishes; seed 2's simulator (a ``sleep``) is running when the signal comes: it
    is killed within seconds, seed 2 is not reported as failed, and the summary, JUnit and
    coverage of seed 1 are written before the run ends with 130 (143 for SIGTERM)."""
    pidfile = tmp_path / "sim.pid"
    sig = signal.SIGINT if how == "ctrl-c" else signal.SIGTERM

    def fake_run_tests(sim, top, build_dir, test_dir, *, seed, timeout, **kw):
        if seed == 1:
            return _ok_run(seed, Path(test_dir))
        # the simulator: a shell that records its pid, then waits
        threading.Timer(1.0, os.kill, (os.getpid(), sig)).start()
        code = supervise.run_child(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"],
                                   {"PATH": os.environ["PATH"]}, 100.0, tmp_path / "child.log",
                                   poll=0.1)
        return RunResult(ok=False, tests=0, failed=0, failures=[], stats={}, seconds=1.0,
                         log=tmp_path / "child.log", results_xml=tmp_path / "r.xml",
                         error=f"simulator exited with code {code}")

    monkeypatch.setattr(cmd_regress, "check_simulator", lambda sim: None)
    monkeypatch.setattr(regress_runs, "build", lambda *a, **kw: 0.0)
    monkeypatch.setattr(regress_runs, "run_tests", fake_run_tests)
    out = tmp_path / "out"
    argv = ["regress", "--rows", "8", "--cols", "4", "--rtl", rtl8x4, "--sim", "icarus",
            "--seed", "1", "--seeds", "3", "--out", out]
    t0 = time.monotonic()
    if how == "ctrl-c":
        code, stdout, err = run_cli(capsys, *argv)
    else:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        code = exc.value.code
        stdout, err = capsys.readouterr()
    assert time.monotonic() - t0 < 20
    assert code == 128 + sig
    assert "FAILED" not in stdout and "FAILURES" not in stdout
    assert "interrupted" in stdout
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped: no such process
        os.kill(pid, 0)
    (root,) = out.glob("dcim_core_8x4_*")
    (rec,) = json.loads((root / "summary.json").read_text())
    assert (rec["seeds"], rec["result"], rec["interrupted"]) == ([1], "interrupted", True)
    assert rec["errors"] == [] and rec["tests"] == 1
    junit = (root / "junit.xml").read_text()
    assert "seed1" in junit and "seed2" not in junit and "<failure" not in junit
    assert "runs that finished before the interruption" in (root / "coverage.md").read_text()
    if how == "ctrl-c":
        assert err == "dcim: interrupted\n"


def test_a_second_signal_leaves_no_child(tmp_path):
    """A Ctrl-C, then a SIGTERM while the reports are written: the process ends and nothing it
    started runs on (the first signal killed every group and no new one starts)."""
    script = f"""
import os, signal, sys, threading
from pathlib import Path
from dcim.golden import procgroup
from dcim.sim import supervise

def worker():
    try:
        supervise.run_child(["sh", "-c", "echo $$ > {tmp_path}/pid; exec sleep 60"],
                            {{"PATH": os.environ["PATH"]}}, 100.0, Path("{tmp_path}/log"),
                            poll=0.1)
    except procgroup.Stopped:
        pass

t = threading.Thread(target=worker)
try:
    with procgroup.guard():
        t.start()
        while not Path("{tmp_path}/pid").exists() or not Path("{tmp_path}/pid").read_text():
            pass
        os.kill(os.getpid(), signal.SIGINT)
        t.join()
except KeyboardInterrupt:
    os.kill(os.getpid(), signal.SIGTERM)  # the second signal, while "writing the reports"
"""
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -signal.SIGTERM
    pid = int((tmp_path / "pid").read_text())
    t0 = time.monotonic()
    while _alive(pid) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert not _alive(pid), "the simulator outlived its supervisor"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (exists and is not a zombie: an orphan waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_stopping_tells_a_worker_its_child_was_killed():
    with pytest.raises(KeyboardInterrupt):
        with procgroup.guard():
            raise KeyboardInterrupt
    assert procgroup.stopping()
    with procgroup.guard():
        assert not procgroup.stopping()


# --------------------------------------------------------------------------------------------
# Directories written whole; --rtl checked
def test_generate_leaves_the_directory_whole_when_interrupted(tmp_path, monkeypatch, rtl8x4):
    from dcim.sim import build

    out = tmp_path / "rtl"
    generate(CoreConfig(rows=8, cols=4), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "verilog_text", interrupted)  # Ctrl-C in the long step
    with pytest.raises(KeyboardInterrupt):
        generate(CoreConfig(rows=16, cols=4), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtl"]  # no temporary left


def test_generate_records_the_digest_of_every_file(rtl8x4):
    info = json.loads((rtl8x4 / "dcim_core.json").read_text())
    files = sorted(p.name for p in rtl8x4.iterdir() if p.name != "dcim_core.json")
    assert sorted(info["sha256"]) == files
    for name, digest in info["sha256"].items():
        assert hashlib.sha256((rtl8x4 / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: (d / "dcim_core.v").write_text((d / "dcim_core.v").read_text() + "// edit\n"),
     "--rtl {d}: dcim_core.v does not match dcim_core.json (their files come from different "
     "runs, an interrupted or mixed output); rerun dcim generate -o {d}, or add --rtl-edited "
     "for a file you edited on purpose"),
    (lambda d: (d / "dcim_core.json").write_text("[1, 2]"),
     "{d}/dcim_core.json: must be a JSON object, got list"),
    (lambda d: (d / "dcim_core.json").write_text("[" * 100000),
     "{d}/dcim_core.json: not valid JSON (RecursionError: "),
    (lambda d: (d / "dcim_core.json").write_text(CoreConfig(rows=8, cols=4).to_json()),
     "{d}/dcim_core.json: no file digests (sha256; written by an older dcim generate); rerun "
     "dcim generate -o {d}"),
])
def test_regress_rejects_a_mixed_rtl_directory(tmp_path, capsys, rtl8x4, change, message):
    d = tmp_path / "rtl"
    d.mkdir()
    for p in rtl8x4.iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    change(d)
    code, _, err = run_cli(capsys, "regress", "--rows", "8", "--cols", "4", "--rtl", d,
                           "--sim", "icarus", "--out", tmp_path / "out")
    assert code == 2
    assert one_error(err).startswith(message.format(d=d))
    assert not (tmp_path / "out").exists()


def test_rtl_edited_accepts_a_verilog_changed_on_purpose(tmp_path, rtl8x4):
    d = tmp_path / "rtl"
    d.mkdir()
    for p in rtl8x4.iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    (d / "dcim_core.v").write_text((d / "dcim_core.v").read_text() + "// a mutant\n")
    cfg = CoreConfig(rows=8, cols=4)
    with pytest.raises(ValueError, match="does not match dcim_core.json"):
        cmd_regress._check_rtl(cfg, d)
    assert cmd_regress._check_rtl(cfg, d, edited=True) == (d / "dcim_core.v",
                                                           d / "dcim_core_regs.json", "rtl")
    with pytest.raises(ValueError, match="stale Verilog"):  # the configuration still counts
        cmd_regress._check_rtl(CoreConfig(rows=16, cols=4), d, edited=True)


# --------------------------------------------------------------------------------------------
# Inputs and output paths checked before the long work
@pytest.mark.parametrize(("argv", "message"), [
    (["--timeout", "0"], "--timeout must be a finite number of seconds > 0, got 0.0"),
    (["--timeout", "-5"], "--timeout must be a finite number of seconds > 0, got -5.0"),
    (["--timeout", "nan"], "--timeout must be a finite number of seconds > 0, got nan"),
    (["--timeout", "inf"], "--timeout must be a finite number of seconds > 0, got inf"),
    (["--junit", "{tmp}"], "--junit must name a file, got the directory {tmp}"),
    (["--out", "{tmp}/file"], "--out must name a directory, got the file {tmp}/file"),
])
def test_regress_options_checked_first(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = run_cli(capsys, "regress", "--rows", "8", "--cols", "4", "--sim", "icarus",
                           *argv)
    assert code == 2 and one_error(err) == message.format(tmp=tmp_path)


def _calibrate(capsys, *extra):
    return run_cli(capsys, "calibrate", EXAMPLES / "digits_mlp.onnx", "--calib",
                   EXAMPLES / "digits_calib.npz", "--eval", EXAMPLES / "digits_eval.npz",
                   "--method", "minmax", "--no-peer", "--rows", "16", "--cols", "8", *extra)


@pytest.mark.parametrize(("extra", "message"), [
    (["--batch", "0"], "--batch must be an int >= 1, got 0"),
    (["--max-drop", "nan"], "--max-drop must be a finite percentage >= 0, got nan"),
    (["--max-drop", "-1"], "--max-drop must be a finite percentage >= 0, got -1.0"),
    (["--max-drop", "inf"], "--max-drop must be a finite percentage >= 0, got inf"),
    (["--export-vectors", "{tmp}/file"],
     "--export-vectors must name a directory, got the file {tmp}/file"),
    (["--export-layer", "fc1"], "--export-layer needs --export-vectors DIR"),
    (["--export-vectors", "{tmp}/v", "--export-layer", "relu1"],
     "--export-layer must name a weighted layer (fc1, fc2, fc3), got 'relu1'"),
    (["--json", "{tmp}"], "--json must name a file, got the directory {tmp}"),
    (["--json", "{tmp}/no/r.json"], "--json: directory {tmp}/no does not exist (for "
                                    "{tmp}/no/r.json)"),
])
def test_calibrate_options_checked_first(tmp_path, capsys, monkeypatch, extra, message):
    """Each is refused before the calibration starts (which would fail this test)."""
    from dcim.sim import cmd_calibrate

    def no_calibration(*a, **kw):
        raise AssertionError("the calibration started")

    monkeypatch.setattr(cmd_calibrate, "calibrate_report", no_calibration)
    (tmp_path / "file").write_text("x")
    code, _, err = _calibrate(capsys, *[e.format(tmp=tmp_path) for e in extra])
    assert code == 2 and one_error(err) == message.format(tmp=tmp_path)
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--min-agreement", "nan"], "--min-agreement must be a finite percentage, got nan"),
    (["--min-agreement", "inf"], "--min-agreement must be a finite percentage, got inf"),
    (["--json", "{tmp}"], "--json must name a file, got the directory {tmp}"),
])
def test_check_options_checked_first(tmp_path, capsys, monkeypatch, extra, message):
    from dcim.sim import cmd_check

    monkeypatch.setattr(cmd_check, "check_report", lambda *a: pytest.fail("check started"))
    code, _, err = run_cli(capsys, "check", EXAMPLES / "digits_cnn_qdq.onnx", "--eval",
                           EXAMPLES / "digits_eval.npz", *[e.format(tmp=tmp_path) for e in extra])
    assert code == 2 and one_error(err) == message.format(tmp=tmp_path)


def test_check_rejects_labels_outside_the_classes(tmp_path, capsys):
    with np.load(EXAMPLES / "digits_eval.npz") as d:
        x, y = d["x"][:20], d["y"][:20].copy()
    y[3] = 10  # the digits model has classes 0..9
    np.savez(tmp_path / "e.npz", x=x, y=y)
    code, _, err = run_cli(capsys, "check", EXAMPLES / "digits_cnn_qdq.onnx", "--eval",
                           tmp_path / "e.npz")
    assert code == 2
    assert one_error(err) == (f"evaluation data {tmp_path / 'e.npz'}: labels y must be in 0..9 "
                              "(the model has 10 classes), got 10 (sample 3; 1 label(s) out of "
                              "range)")


@pytest.mark.parametrize(("argv", "message"), [
    (["--liberty", "{tmp}/bin.lib"], "--liberty {tmp}/bin.lib is not a liberty file (binary "
                                     "data)"),
    (["--liberty", "{tmp}/text.lib"], "--liberty {tmp}/text.lib is not a liberty file (it must "
                                      "start with library (NAME) {{ and hold cell (...) groups)"),
    (["--liberty", "{tmp}/none.lib"], "liberty file not found: {tmp}/none.lib"),
    (["--clock-ns", "nan"], "--clock-ns must be in [0.1, 1e6] ns, got nan"),
    (["--sweep", "rows=8,0"], "--sweep point rows=0: rows must be in [1, 4096], got 0"),
    (["--sweep", "cols=4,6", "dpu_lanes=4"],
     "--sweep point cols=6 dpu_lanes=4: dpu_lanes must divide cols (6), got 4"),
])
def test_synth_options_checked_first(tmp_path, capsys, argv, message):
    (tmp_path / "bin.lib").write_bytes(b"\x93NUMPY\x01\x00\x00binary")
    (tmp_path / "text.lib").write_text("hello, not a liberty\n")
    code, _, err = run_cli(capsys, "synth", "--rows", "8", "--cols", "4", "-o", tmp_path / "s",
                           *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and one_error(err) == message.format(tmp=tmp_path)
    assert not (tmp_path / "s").exists()


def test_synth_tool_failure_is_a_failed_run_not_bad_input(tmp_path, capsys, monkeypatch):
    from dcim.sim import cmd_synth
    from dcim.synth.tools import FlowError

    def fail(*a, **kw):
        raise FlowError("yosys failed (exit -7); log: s/yosys.log")

    monkeypatch.setattr(cmd_synth, "_run", fail)
    code, _, err = run_cli(capsys, "synth", "--rows", "8", "--cols", "4", "-o", tmp_path / "s")
    assert (code, err) == (1, "dcim: synthesis failed: yosys failed (exit -7); log: "
                              "s/yosys.log\n")


# --------------------------------------------------------------------------------------------
# One output directory, one run
def test_two_regressions_into_one_out_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    with lock_dir(out, "--out"):  # the first run holds it
        code, _, err = run_cli(capsys, "regress", "--rows", "8", "--cols", "4", "--sim",
                               "icarus", "--out", out)
    assert code == 2
    assert one_error(err) == (f"--out {out} is in use by another dcim run (pid {os.getpid()}); "
                              "wait for it to finish or choose another directory")
    assert [p.name for p in out.iterdir()] == [".dcim.lock"]  # nothing generated


def test_the_lock_is_released_with_its_holder(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                             "from dcim.golden.fileio import lock_dir\n"
                             f"with lock_dir({str(out)!r}, '--out'):\n"
                             "    print('locked', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "locked\n"
        with pytest.raises(ValueError, match=f"pid {proc.pid}"):
            with lock_dir(out, "--out"):
                pass
    finally:
        proc.kill()
        proc.wait()
    with lock_dir(out, "--out"):  # the holder died: a stale lock file is no lock
        pass


# --------------------------------------------------------------------------------------------
# Malformed files: one line, exit 2
def _huge_npy(path: Path) -> None:
    """An .npy file whose header claims 2**37 int64 values (1 TiB) over 64 bytes of data."""
    header = ("{'descr': '<i8', 'fortran_order': False, 'shape': (137438953472,), }"
              .ljust(117) + "\n")
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                     + header.encode() + bytes(64))


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000,
                                  '{"rows": ' + "[" * 5000 + "]" * 5000 + "}"])
@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_deeply_nested_config_is_one_line(tmp_path, capsys, text, suffix):
    if suffix == ".toml":
        text = "a = " + text.replace('{"rows": ', "").rstrip("}")
    (tmp_path / f"c{suffix}").write_text(text)
    code, _, err = run_cli(capsys, "config", "--config", tmp_path / f"c{suffix}")
    assert code == 2
    assert one_error(err) == (f"{tmp_path / ('c' + suffix)}: not a configuration "
                              f"({suffix[1:].upper()} nested too deeply for its parser)")


@pytest.fixture
def golden_inputs(tmp_path):
    np.save(tmp_path / "W.npy", np.ones((8, 4), dtype=np.int8))
    np.save(tmp_path / "X.npy", np.ones((2, 8), dtype=np.int8))
    return tmp_path


def _golden(capsys, d, **files):
    paths = {"weights": d / "W.npy", "inputs": d / "X.npy", **files}
    extra = [x for k, v in paths.items() if k not in ("weights", "inputs")
             for x in (f"--{k}", v)]
    return run_cli(capsys, "golden", "--rows", "8", "--cols", "4", "--weights",
                   paths["weights"], "--inputs", paths["inputs"], "-o", d / "Y.npy", *extra)


def test_golden_npy_header_claiming_a_tebibyte(golden_inputs, capsys):
    d = golden_inputs
    _huge_npy(d / "huge.npy")
    code, _, err = _golden(capsys, d, weights=d / "huge.npy")
    assert code == 2
    assert one_error(err) == (f"weights file {d / 'huge.npy'}: its header claims a int64 array "
                              "of shape (137438953472,) (1,099,511,627,776 bytes), the file "
                              "holds 64")


def test_golden_corrupt_npz(golden_inputs, capsys):
    d = golden_inputs
    (d / "P.npz").write_bytes(b"PK\x03\x04" + bytes(40))
    code, _, err = _golden(capsys, d, dpu=d / "P.npz")
    assert code == 2
    assert one_error(err).startswith(f"DPU file {d / 'P.npz'} is not a readable .npz archive (")


@pytest.mark.parametrize("shape", [(0, 8), (0,)])
def test_golden_empty_inputs(golden_inputs, capsys, shape):
    d = golden_inputs
    np.save(d / "X.npy", np.zeros(shape, dtype=np.int8))
    code, _, err = _golden(capsys, d)
    assert code == 2
    assert one_error(err) == (f"inputs file {d / 'X.npy'} is empty (shape {shape}); it must "
                              "hold at least one activation vector")
    assert not (d / "Y.npy").exists()


def test_golden_writes_the_path_it_reports(golden_inputs, capsys):
    d = golden_inputs
    code, out, _ = run_cli(capsys, "golden", "--rows", "8", "--cols", "4", "--weights",
                           d / "W.npy", "--inputs", d / "X.npy", "-o", d / "Y")
    assert code == 0 and out == f"wrote {d / 'Y'}: int32 [2, 4]\n"
    assert (np.load(d / "Y") == 8).all() and not (d / "Y.npy").exists()


def _vectors(d: Path, tiles: int = 1) -> Path:
    """A hand-made export directory of an 8x4 core: one pass, two vectors per tile."""
    cfg = CoreConfig(rows=8, cols=4)
    specs = []
    for t in range(tiles):
        td = d / f"tile{t}"
        td.mkdir(parents=True)
        np.save(td / "W.npy", np.zeros((1, 8, 4), dtype=np.int64))
        np.save(td / "X.npy", np.zeros((2, 8), dtype=np.int64))
        np.save(td / "Y.npy", np.zeros((2, 4), dtype=np.int64))
        np.savez(td / "P.npz", bias=np.zeros(4, np.int64), multiplier=np.full(4, 1 << 30),
                 shift=np.zeros(4, np.int64))
        specs.append({"id": t, "dir": td.name, "col0": 0, "col1": 4})
    manifest = {"format": "dcim-vectors-1", "config": cfg.fields(), "layer": "fc", "kind": "gemm",
                "K": 8, "N": 4, "vectors": 2, "passes": 1, "schedule": "stationary",
                "residual": False, "tiles": specs}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


@pytest.mark.parametrize(("spoil", "message"), [
    (lambda d: _huge_npy(d / "tile0" / "X.npy"),
     "activations file {d}/tile0/X.npy: its header claims a int64 array of shape "
     "(137438953472,) (1,099,511,627,776 bytes), the file holds 64"),
    (lambda d: (d / "tile0" / "P.npz").write_bytes(b"PK\x03\x04 corrupt"),
     "DPU file {d}/tile0/P.npz is not a readable .npz archive ("),
    (lambda d: (d / "tile0" / "W.npy").write_bytes((d / "tile0" / "P.npz").read_bytes()),
     "weights file {d}/tile0/W.npy is not a readable .npy array (it is an .npz archive)"),
    (lambda d: (d / "manifest.json").write_text(
        (d / "manifest.json").read_text().replace('"tiles": [', '"tiles": [], "x": [')),
     "{d}/manifest.json: the manifest lists no tiles (nothing to replay)"),
    (lambda d: (d / "manifest.json").write_text((d / "manifest.json").read_text().replace(
        '"col1": 4}', '"col1": 4, "sha256": {"W.npy": "%s"}}' % hashlib.sha256(b"x").hexdigest())),
     "{d}/tile0/W.npy does not match {d}/manifest.json (files of different exports: an "
     "interrupted or mixed one); export again"),
])
def test_regress_vectors_malformed_files(tmp_path, capsys, spoil, message):
    d = _vectors(tmp_path / "vec")
    spoil(d)
    code, _, err = run_cli(capsys, "regress", "--vectors", d, "--sim", "icarus", "--out",
                           tmp_path / "out")
    assert code == 2 and one_error(err).startswith(message.format(d=d))


# --------------------------------------------------------------------------------------------
# --version, --config -, generate's JSON as a config, names
def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"dcim {metadata.version('dcim')}\n"


@pytest.mark.parametrize("text", [b'{"rows": 16, "serial_bits": 2}',
                                  b"rows = 16\nserial_bits = 2\n"])
def test_config_from_standard_input(capsys, monkeypatch, text):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    code, out, _ = run_cli(capsys, "config", "--config", "-", "--cols", "8")
    assert code == 0
    got = json.loads(out)
    assert (got["rows"], got["serial_bits"], got["cols"]) == (16, 2, 8)


def test_generated_json_is_a_config(capsys, rtl8x4):
    code, out, _ = run_cli(capsys, "config", "--config", rtl8x4 / "dcim_core.json")
    assert code == 0
    assert CoreConfig.from_dict(json.loads(out)) == CoreConfig(rows=8, cols=4)


@pytest.mark.parametrize(("name", "message"), [
    ("std", "name must not be a SystemVerilog built-in (std), got 'std'"),
    ("a" * 65, "name must be at most 64 characters, got 65 ('aaaaaaaaaaaaaaaaaaaa'...)"),
])
def test_core_names_rejected(capsys, name, message):
    code, _, err = run_cli(capsys, "config", "--name", name)
    assert code == 2 and one_error(err) == message


def test_longest_name_accepted():
    assert CoreConfig(name="a" * 64).name == "a" * 64


def test_a_missing_output_directory_names_the_output(tmp_path, capsys):
    code, _, err = run_cli(capsys, "config", "-o", tmp_path / "no" / "c.json")
    assert code == 2
    assert one_error(err) == (f"-o: directory {tmp_path / 'no'} does not exist (for "
                              f"{tmp_path / 'no' / 'c.json'})")
