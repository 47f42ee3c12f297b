"""The built wheel works outside the source tree: its package data, `dcim generate` + Verilator
lint, and a short `dcim regress`, run from another folder by a fresh venv that has only the
wheel installed (the dependencies come from this venv, so nothing is downloaded)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from dcim.sim.runner import sim_env

pytestmark = [pytest.mark.slow, pytest.mark.sim]

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Package name -> its folder in the checkout, as pyproject maps them.
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _data_files(top: Path) -> set[str]:
    """Every file under ``top`` that is not Python source, relative to ``top``."""
    return {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file()
            and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, environment) of a fresh venv with only the built wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for top in sorted({d.split("/")[0] for d in PACKAGE_DIRS.values()}):
        shutil.copytree(ROOT / top, src / top,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in sim_env().items() if k != "PYTHONPATH"}
    env["PIP_NO_INDEX"] = "1"
    # pyproject's build backend from this venv (no isolated build env to download)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", tmp / "dist", src], tmp, env)
    wheels = list((tmp / "dist").glob("dcim-*.whl"))
    assert len(wheels) == 1
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp, env).stdout.strip())
    # the dependencies: this venv's site-packages as a plain path entry (its .pth files, such as
    # the editable install of the checkout, are not processed from there)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "dcim_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          wheels[0]], tmp, env)
    env["PATH"] = str(venv / "bin") + os.pathsep + env["PATH"]
    return python, env, site, tmp


def test_wheel_is_imported_from_the_venv(installed):
    python, env, site, tmp = installed
    where = _run([python, "-c", "import dcim.hdl, dcim.sim.cli; print(dcim.hdl.__file__)"],
                 tmp, env).stdout.strip()
    assert Path(where).is_relative_to(site), where


def test_wheel_has_every_data_file(installed):
    """Every non-Python file of a package folder is in the installed package (package data
    declared in pyproject), and no package is missing."""
    python, env, site, tmp = installed
    for package, folder in PACKAGE_DIRS.items():
        have = site.joinpath(*package.split("."))
        assert have.is_dir(), package
        want = {f for f in _data_files(ROOT / folder) if "/" not in f}
        assert want <= _data_files(have), (package, sorted(want - _data_files(have)))


def test_wheel_generates_lint_clean_verilog_elsewhere(installed):
    python, env, site, tmp = installed
    run = tmp / "generate"
    run.mkdir()
    _run([python.with_name("dcim"), "generate", "--rows", "4", "--cols", "4", "-o", "rtl"],
         run, env)
    rtl = run / "rtl"
    lint = json.loads((rtl / "dcim_core.json").read_text())["tools"]["lint"]
    assert "dcim_core.vlt" in lint
    assert (rtl / "dcim_core.vlt").read_text() == (ROOT / "hdl" / "verilator.vlt").read_text()
    if shutil.which(lint[0], path=env["PATH"]) is None:
        pytest.skip("verilator not installed (make setup)")
    _run(lint, rtl, env)


def test_wheel_runs_a_regression_elsewhere(installed):
    python, env, site, tmp = installed
    if shutil.which("iverilog", path=env["PATH"]) is None:
        pytest.skip("iverilog not installed (make setup)")
    run = tmp / "regress"
    run.mkdir()
    _run([python.with_name("dcim"), "regress", "--rows", "4", "--cols", "4", "--sim", "icarus",
          "--tests", "test_csr", "--seeds", "1", "--seed", "7", "--out", "reg"], run, env,
         timeout=600)
    (summary,) = run.glob("reg/*/summary.json")
    rows = json.loads(summary.read_text())
    assert [(r["simulator"], r["result"]) for r in rows] == [("icarus", "pass")]
