"""Child process groups die whole (dcim.golden.procgroup): a child's own child (here ``sleep``
started in the background by ``sh``) is gone after a timeout, a Ctrl-C or a SIGTERM, through
the synthesis flow's tool runner (dcim.synth.tools.run) and the simulator supervisor
(dcim.sim.supervise.run_child), which share the group-kill code."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dcim.golden import procgroup
from dcim.sim import supervise
from dcim.synth import tools

def _family(pidfile: Path) -> list[str]:
    """A child that starts a grandchild in its group, prints and records its pid, then waits."""
    return ["sh", "-c", f"sleep 100 & echo grandchild $!; echo $! > {pidfile}; sleep 100"]


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (os.kill(pid, 0), then its /proc state)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie is dead, waiting for its parent or init to reap it


def _wait_for(pidfile: Path, limit: float = 20.0) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if pidfile.exists() and pidfile.read_text().strip():
            return int(pidfile.read_text())
        time.sleep(0.02)
    raise AssertionError("the child never started its grandchild")


def _assert_dies(pid: int, how: str) -> None:
    t0 = time.monotonic()
    while _alive(pid) and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert not _alive(pid), f"the grandchild {pid} outlived the {how}"


def test_group_timeout_kills_the_grandchild(tmp_path):
    pidfile = tmp_path / "pid"
    t0 = time.monotonic()
    with procgroup.Group(_family(pidfile), timeout=1.0, stdout=subprocess.DEVNULL) as g:
        grandchild = _wait_for(pidfile)
        assert _alive(grandchild)
        rc = g.proc.wait(timeout=30)
    assert g.timed_out and rc == -signal.SIGKILL
    assert time.monotonic() - t0 < 30
    _assert_dies(grandchild, "timeout")
    assert not procgroup._live, "a finished group is still registered"


def test_group_without_exception_leaves_the_child_alone(tmp_path):
    with procgroup.Group(["sh", "-c", "exit 3"]) as g:
        assert g.proc.wait(timeout=30) == 3
    assert not g.timed_out


def test_synth_tool_timeout_kills_the_group(tmp_path):
    pidfile = tmp_path / "pid"
    t0 = time.monotonic()
    with pytest.raises(tools.FlowError, match=r"^sh timed out after 1 s; log: "):
        tools.run(_family(pidfile), tmp_path, tmp_path / "log", "sh", lambda m: None,
                  timeout=1.0)
    assert time.monotonic() - t0 < 30
    _assert_dies(_wait_for(pidfile), "timeout")


def test_synth_tool_ctrl_c_kills_the_group(tmp_path):
    """A Ctrl-C (KeyboardInterrupt, here raised by the progress callback once the grandchild
    has started) reaches the caller after the tool's whole group is killed."""
    pidfile = tmp_path / "pid"
    seen = []

    def progress(msg: str) -> None:
        seen.append(msg)
        raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        tools.run(_family(pidfile), tmp_path, tmp_path / "log", "sh", progress,
                  re.compile("grandchild"))
    assert time.monotonic() - t0 < 30
    assert len(seen) == 1
    grandchild = int(re.search(r"sh: grandchild (\d+)", seen[0]).group(1))
    _assert_dies(grandchild, "Ctrl-C")


_SIGTERM_SCRIPT = """
import re, sys
from pathlib import Path
from dcim.synth import tools
from dcim.sim import supervise
cmd = ["sh", "-c", "sleep 100 & echo grandchild $!; echo $! > {pidfile}; sleep 100"]
if sys.argv[1] == "synth":
    tools.run(cmd, Path("{tmp}"), Path("{tmp}") / "log", "sh", print)
else:
    supervise.run_child(cmd, dict(PATH="/usr/bin:/bin"), 100.0, Path("{tmp}") / "out")
"""


@pytest.mark.parametrize("runner", ["synth", "supervise"])
def test_sigterm_kills_the_group_and_exits_143(tmp_path, runner):
    """A SIGTERM to a process running a tool kills the tool's group (which, in its own session,
    gets no signal of its own) and ends the process with 128 + 15."""
    pidfile = tmp_path / "pid"
    script = _SIGTERM_SCRIPT.format(pidfile=pidfile, tmp=tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", script, runner])
    try:
        grandchild = _wait_for(pidfile)
        assert _alive(grandchild)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    _assert_dies(grandchild, "SIGTERM")


class _Interrupt:
    """A progress tick that presses Ctrl-C once the grandchild has started."""

    def __init__(self, pidfile: Path):
        self.pidfile = pidfile

    def __call__(self) -> None:
        if self.pidfile.exists() and self.pidfile.read_text().strip():
            raise KeyboardInterrupt


@pytest.mark.parametrize("how", ["timeout", "ctrl-c"])
def test_run_child_group_dies_with_the_supervisor(tmp_path, how):
    """On a timeout or a Ctrl-C the child and what it started (a simulator under make) are
    killed, and the exception reaches the caller."""
    pidfile = tmp_path / "pid"
    env = {"PATH": "/usr/bin:/bin"}
    t0 = time.monotonic()
    if how == "timeout":
        with pytest.raises(subprocess.TimeoutExpired):
            supervise.run_child(_family(pidfile), env, 1.0, tmp_path / "out", poll=0.1)
    else:
        with pytest.raises(KeyboardInterrupt):
            supervise.run_child(_family(pidfile), env, 50.0, tmp_path / "out",
                                tick=_Interrupt(pidfile), poll=0.1)
    assert time.monotonic() - t0 < 30
    _assert_dies(_wait_for(pidfile), how)


def test_ctrl_c_in_the_main_thread_stops_a_pool_of_supervisors(tmp_path):
    """The regression's and the estimate's pattern: worker threads run simulators one after
    another; a Ctrl-C reaches only the main thread. Inside the pool's block the guard kills the
    workers' groups, and no worker starts another, so the pool's exit does not wait for them."""
    env = {"PATH": "/usr/bin:/bin"}

    def worker(i: int) -> None:
        for j in range(3):  # three "seeds" in a row
            pidfile = tmp_path / f"pid{i}_{j}"
            supervise.run_child(_family(pidfile), env, 100.0, tmp_path / f"out{i}_{j}",
                                poll=0.1)

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with ThreadPoolExecutor(max_workers=2) as pool, procgroup.guard():
            futures = [pool.submit(worker, i) for i in range(2)]
            grandchildren = [_wait_for(tmp_path / f"pid{i}_0") for i in range(2)]
            raise KeyboardInterrupt  # what a Ctrl-C raises in the main thread
    assert time.monotonic() - t0 < 30
    for pid in grandchildren:
        _assert_dies(pid, "Ctrl-C of the main thread")
    time.sleep(0.5)  # a child started late would have written its pid file by now
    ran = sorted(f.name for f in tmp_path.glob("pid*"))
    assert ran == ["pid0_0", "pid1_0"], f"a worker started a simulator after the Ctrl-C: {ran}"
    assert all(isinstance(f.exception(), procgroup.Stopped) for f in futures)


def test_a_new_run_after_a_stop_starts_groups_again(tmp_path, monkeypatch):
    """After a stop, the next outermost guard of the main thread lets groups start again,
    even where SIGTERM already has a handler (the guard then installs none)."""
    monkeypatch.setattr(signal, "getsignal", lambda s: signal.SIG_IGN)
    with pytest.raises(KeyboardInterrupt):
        with procgroup.guard():
            raise KeyboardInterrupt
    assert procgroup._stopping.is_set()
    with procgroup.guard():
        with procgroup.Group(["true"]) as g:
            assert g.proc.wait(timeout=10) == 0

