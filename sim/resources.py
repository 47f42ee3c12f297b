"""Memory a simulator build or a synthesis run needs, estimated from the array size.

The commands check the estimate before any long work starts, so that a size that cannot fit
this machine's memory gets one line instead of a crash an hour in. The coefficients are fits to
runs on this project's 2-core, 24 GiB machines (docs/benchmarks.md), rounded up: the estimate is
meant to refuse what clearly cannot fit, not to predict a figure.
"""

from __future__ import annotations

import os

from ..golden.config import CoreConfig

__all__ = ["TASKS", "check_memory", "estimate_gib", "machine_gib"]

#: (fixed GiB, GiB per weight word) of each task; a weight word is one of the array's
#: ``stored_words`` (rows x cols, times two with double-buffered weights).
_COEFF = {
    # Verilator's elaboration and C++ compile of the flip-flop array: 256x64 took 0.7 GB,
    # 256x256 3.5 GB before its C++ compile (~55 kB per word).
    ("verilator", "rtl"): (0.5, 55e3 / 2**30),
    # The behavioural columns: 512x512 columns alone built in 0.7 GB.
    ("verilator", "fast"): (0.5, 4e3 / 2**30),
    # vvp holds every net and event of the array.
    ("icarus", "rtl"): (0.3, 25e3 / 2**30),
    ("icarus", "fast"): (0.3, 2e3 / 2**30),
    # One flat Yosys run maps ~130 cells per word at ~8 kB per cell (270k cells: 2 GB).
    ("synth", "rtl"): (0.5, 1.1e6 / 2**30),
}
#: The tasks :func:`estimate_gib` knows, as (tool, array view).
TASKS = tuple(_COEFF)


def machine_gib() -> float:
    """Physical memory of this machine in GiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def estimate_gib(tool: str, view: str, cfg: CoreConfig) -> float:
    """Estimated peak memory (GiB) of ``tool`` (``verilator``, ``icarus`` or ``synth``, one
    flat synthesis) on the ``view`` (``rtl`` or ``fast``) array of ``cfg``.

    Raises
    ------
    KeyError
        ``(tool, view)`` is not in :data:`TASKS`.
    """
    fixed, per_word = _COEFF[(tool, view)]
    return fixed + per_word * cfg.stored_words


def check_memory(tool: str, view: str, cfg: CoreConfig, *, total_gib: float | None = None,
                 hint: str = "") -> float:
    """Return the estimate of :func:`estimate_gib`; raise if it exceeds 90 % of the memory.

    Parameters
    ----------
    total_gib : float, optional
        The memory to compare with (default :func:`machine_gib`).
    hint : str
        Appended to the message (what to do instead).

    Raises
    ------
    MemoryError
        The estimate does not fit; the message is one line naming the task, the size, the
        estimate and the memory.
    """
    need = estimate_gib(tool, view, cfg)
    have = machine_gib() if total_gib is None else total_gib
    if need > 0.9 * have:
        what = {"verilator": "a Verilator build", "icarus": "an Icarus simulation",
                "synth": "a flat synthesis"}[tool]
        sets = " with weight_sets 2" if cfg.weight_sets == 2 else ""
        raise MemoryError(f"{what} of the {view} array at {cfg.rows}x{cfg.cols}{sets} needs "
                          "about "
                          f"{need:.0f} GiB (estimated from the size); this machine has "
                          f"{have:.0f} GiB{'; ' + hint if hint else ''}")
    return need
