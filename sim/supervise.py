"""Supervision of a child process: its own process group, its output in a file, a wall-clock
limit, and nothing left running after a timeout or a Ctrl-C.

A simulator run is a tree of processes (``python -m dcim.sim.child``, ``make``, compilers, the
simulator): killing only the direct child would leave the rest running, so the child is started
as the leader of a new session and its whole group is killed (:mod:`dcim.golden.procgroup`,
shared with the synthesis flow's tools).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..golden import procgroup

__all__ = ["report_progress", "run_child", "tail"]


def run_child(cmd: list[str], env: dict[str, str], timeout: float, out_path: Path,
              tick: Callable[[], None] | None = None, poll: float = 30.0) -> int:
    """Run ``cmd`` in its own process group with stdout and stderr in ``out_path``.

    Parameters
    ----------
    cmd, env
        The command and its whole environment.
    timeout : float
        Wall-clock seconds before the group is killed.
    out_path : Path
        The file the child's output goes to (overwritten).
    tick : callable, optional
        Called every ``poll`` seconds while the child runs (progress reports).
    poll : float
        Seconds between calls of ``tick``.

    Returns
    -------
    int
        The child's exit code.

    Raises
    ------
    subprocess.TimeoutExpired
        After ``timeout``; the group has been killed with SIGKILL.
    BaseException
        Whatever interrupted the wait (KeyboardInterrupt, a SIGTERM as
        :class:`dcim.golden.procgroup.Terminated`, an exception of ``tick``) is re-raised after
        the group has been killed.
    """
    deadline = time.monotonic() + timeout
    with open(out_path, "w") as out, procgroup.Group(cmd, env=env, stdout=out,
                                                     stderr=subprocess.STDOUT) as group:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(cmd, timeout)
            try:
                return group.proc.wait(timeout=min(poll, left))
            except subprocess.TimeoutExpired:
                if tick is not None:
                    tick()


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of the text file at ``path`` ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


_RUNNING = re.compile(r"running \S*\.(test_[^.\s]+) \((\d+)/(\d+)\)")


def report_progress(log: Path, progress: Callable[[str], None]) -> None:
    """Call ``progress`` with the test cocotb last said it runs in ``log`` (``"running
    test_k_tiled (7/19)"``); nothing if the log cannot be read or names no test yet."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            text = f.read().decode(errors="replace")
    except OSError:
        return
    found = _RUNNING.findall(text)
    if found:
        name, i, n = found[-1]
        progress(f"running {name} ({i}/{n})")
