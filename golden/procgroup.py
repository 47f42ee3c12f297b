"""Child processes in their own process group, killed whole: nothing they started outlives a
timeout, a Ctrl-C or a SIGTERM of ours.

A tool run is often a tree of processes (a simulator under ``make``, Yosys' ABC): killing only
the direct child would leave the rest running. :class:`Group` starts the child as the leader of
a new session and kills its whole group with SIGKILL. A new session also takes the child out of
the terminal's foreground group, so a Ctrl-C reaches only us: the ``KeyboardInterrupt`` kills
the groups. :func:`guard` turns a SIGTERM into :class:`Terminated` (in the main thread) after
killing every live group, so the same clean-up runs. Used by ``dcim.sim.supervise`` and
``dcim.synth.tools`` (no amaranth or cocotb here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["Group", "Stopped", "Terminated", "guard", "kill_all", "kill_group", "stopping"]

#: The live groups started by :class:`Group` (leader pid -> its Popen), of every thread.
_live: dict[int, subprocess.Popen] = {}
#: Set while a Ctrl-C or SIGTERM stops the run: worker threads start no new group (cleared when
#: the main thread next enters an outermost :func:`guard`).
_stopping = threading.Event()
#: How many :func:`guard` blocks the main thread is inside.
_main_depth = 0
#: The main thread is between starting a group's leader and registering it in ``_live``: a
#: SIGTERM then only stops the run, and :class:`Group` raises :class:`Terminated` once the
#: group is registered (and killed), so that no leader escapes unregistered.
_starting = False
#: The SIGTERM that arrived while ``_starting``, if any.
_deferred: list[int] = []
#: Idents of the threads between deciding to start a leader and registering it in ``_live``:
#: a stop waits for them (:data:`START_WAIT`), so that its kill reaches a leader that another
#: thread was starting at the time, before the caller goes on (and perhaps exits).
_in_start: set[int] = set()
#: Longest wait (seconds) of a stop for the groups other threads are starting.
START_WAIT = 5.0


class Terminated(SystemExit):
    """SIGTERM arrived while :func:`guard` was active (exit code 128 + 15)."""


class Stopped(RuntimeError):
    """A :class:`Group` was not started because a Ctrl-C or SIGTERM is stopping the run (raised
    in the worker thread that asked for it, while the main thread unwinds)."""


def kill_group(pgid: int) -> None:
    """Send SIGKILL to process group ``pgid``; nothing if it no longer exists."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_all() -> None:
    """Kill every live group started by :class:`Group` in this process."""
    for pgid in tuple(_live):
        kill_group(pgid)


def stopping() -> bool:
    """Whether a Ctrl-C or SIGTERM is stopping the run (set by :func:`guard`): a worker whose
    child just ended tells by this that it was killed, not that it failed."""
    return _stopping.is_set()


def _stop() -> None:
    _stopping.set()  # before the wait: a thread not yet in ``_in_start`` starts nothing now
    me = threading.get_ident()
    deadline = time.monotonic() + START_WAIT
    while _in_start - {me} and time.monotonic() < deadline:
        time.sleep(0.002)
    kill_all()


def _on_sigterm(signum: int, _frame: Any) -> None:
    _stop()
    if _starting:
        _deferred.append(signum)
        return
    raise Terminated(128 + signum)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """While inside: a SIGTERM kills every live group and raises :class:`Terminated` (only when
    entered in the main thread with SIGTERM's default action; elsewhere that is left alone),
    and leaving by a ``KeyboardInterrupt`` or ``SystemExit`` kills every live group (those of
    worker threads too, which a Ctrl-C does not reach). After either, no worker thread starts a
    new group (:class:`Stopped`), so that a thread pool joined after the guard ends promptly:
    enter the guard *inside* the pool's ``with`` (``with ThreadPoolExecutor() as pool,
    guard():``), since the pool's exit waits for its threads."""
    global _main_depth
    main = threading.current_thread() is threading.main_thread()
    install = main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    if main:
        if _main_depth == 0:  # a new run (whatever SIGTERM's action): groups may start again
            _stopping.clear()
        _main_depth += 1
    old = signal.signal(signal.SIGTERM, _on_sigterm) if install else None
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        _stop()
        raise
    finally:
        if main:
            _main_depth -= 1
        if install:
            signal.signal(signal.SIGTERM, old)


class Group:
    """``with Group(cmd, ...) as g:`` runs ``cmd`` as the leader of a new process group.

    Leaving the block by an exception (a timeout of the caller, ``KeyboardInterrupt``,
    :class:`Terminated`, any error) kills the whole group; in every case the leader is then
    waited for and its pipes are closed. :func:`guard` is active inside the block.

    Parameters
    ----------
    cmd : sequence of str
        The command.
    timeout : float, optional
        Seconds after which a timer kills the whole group (the leader's output then ends);
        :attr:`timed_out` tells the caller it did.
    popen
        Passed on to :class:`subprocess.Popen` (``start_new_session`` is always True).

    Attributes
    ----------
    proc : subprocess.Popen
        The leader.
    timed_out : bool
        The timer killed the group.
    """

    def __init__(self, cmd: Sequence[str], *, timeout: float | None = None,
                 **popen: Any) -> None:
        self.cmd, self.timeout, self.popen = list(cmd), timeout, popen
        self.timed_out = False
        self._timer: threading.Timer | None = None
        self._guard = guard()

    def _expire(self) -> None:
        self.timed_out = True
        kill_group(self.proc.pid)

    def __enter__(self) -> Group:
        global _starting
        self._guard.__enter__()
        main = threading.current_thread() is threading.main_thread()
        me = threading.get_ident()
        try:
            _in_start.add(me)  # before the check: a stop either is seen or waits for us
            try:
                if _stopping.is_set():
                    raise Stopped(f"not started, the run is stopping: {' '.join(self.cmd)}")
                if main:  # a SIGTERM inside Popen must not leave the new leader unregistered
                    _starting = True
                try:
                    self.proc = subprocess.Popen(self.cmd, start_new_session=True, **self.popen)
                    _live[self.proc.pid] = self.proc
                finally:
                    if main:
                        _starting = False
            finally:
                _in_start.discard(me)
        except BaseException as exc:
            self._guard.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if _stopping.is_set():  # the stop's kill_all may have run before the registration
            kill_group(self.proc.pid)
        if _deferred:
            signum = _deferred.pop()
            _deferred.clear()
            exc = Terminated(128 + signum)
            self.__exit__(type(exc), exc, None)
            raise exc
        if self.timeout is not None:
            self._timer = threading.Timer(self.timeout, self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self._timer is not None:
                self._timer.cancel()
            if exc_type is not None:
                kill_group(self.proc.pid)
            self.proc.__exit__(None, None, None)  # close the pipes, wait for the leader
        finally:
            _live.pop(self.proc.pid, None)
            suppressed = self._guard.__exit__(exc_type, exc, tb)
        return bool(suppressed)
