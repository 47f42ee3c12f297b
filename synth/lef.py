"""Standard-cell areas from a LEF library, and a liberty file with its cell areas corrected.

The OSU 0.18 um liberty has wrong ``area`` values for some cells (LATCH 0, OAI21X1 23,
NAND3X1 36 um2); the LEF ``SIZE w BY h`` of each macro is the layout footprint and is the area
the synthesis flow trusts.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..golden.errors import InputError

__all__ = ["AreaCorrection", "correct_liberty", "liberty_areas", "parse_lef_sizes",
           "read_corrected"]

_MACRO = re.compile(r"^\s*MACRO\s+(\S+)\s*$")
_SIZE = re.compile(r"^\s*SIZE\s+([0-9.eE+-]+)\s+BY\s+([0-9.eE+-]+)\s*;")
_END = re.compile(r"^\s*END\s+(\S+)\s*$")
_CELL = re.compile(r"\bcell\s*\(\s*\"?([A-Za-z0-9_]+)\"?\s*\)\s*\{")
_AREA = re.compile(r"(\barea\s*:\s*)([0-9.eE+-]+)(\s*;)")


def parse_lef_sizes(text: str) -> dict[str, tuple[float, float]]:
    """Return ``{macro: (width_um, height_um)}`` for every MACRO with a SIZE in LEF ``text``.

    SITE sizes are ignored. A MACRO without SIZE is left out.

    Raises
    ------
    ValueError
        A MACRO is not closed by its ``END <name>`` line, or a size is not positive.
    """
    sizes: dict[str, tuple[float, float]] = {}
    current: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _MACRO.match(line)
        if m:
            if current is not None:
                raise InputError(f"LEF line {lineno}: MACRO {m.group(1)} starts inside MACRO "
                                 f"{current} (missing END {current})")
            current = m.group(1)
            continue
        if current is None:
            continue
        m = _SIZE.match(line)
        if m:
            w, h = float(m.group(1)), float(m.group(2))
            if w <= 0 or h <= 0:
                raise InputError(f"LEF line {lineno}: MACRO {current} has a non-positive size "
                                 f"{w} BY {h}")
            sizes[current] = (w, h)
            continue
        m = _END.match(line)
        if m and m.group(1) == current:
            current = None
    if current is not None:
        raise InputError(f"LEF: MACRO {current} is not closed (missing END {current})")
    return sizes


def liberty_areas(text: str) -> dict[str, float]:
    """Return ``{cell: area}`` from the first ``area`` attribute of each liberty cell."""
    areas: dict[str, float] = {}
    cells = list(_CELL.finditer(text))
    for i, m in enumerate(cells):
        end = cells[i + 1].start() if i + 1 < len(cells) else len(text)
        a = _AREA.search(text, m.end(), end)
        if a:
            areas[m.group(1)] = float(a.group(2))
    return areas


@dataclasses.dataclass(frozen=True)
class AreaCorrection:
    """One cell whose liberty area disagrees with its LEF footprint."""

    cell: str
    liberty_um2: float
    lef_um2: float

    def to_dict(self) -> dict[str, float | str]:
        """The correction as a JSON-ready dict."""
        return dataclasses.asdict(self)


def correct_liberty(lib_text: str, lef_text: str,
                    tolerance: float = 1e-6) -> tuple[str, dict[str, float], list[AreaCorrection]]:
    """Replace every liberty cell area that differs from its LEF footprint.

    Parameters
    ----------
    lib_text, lef_text : str
        The liberty and LEF files' text.
    tolerance : float
        Relative difference below which an area is kept.

    Returns
    -------
    (corrected_text, areas, corrections)
        The liberty text with corrected ``area`` attributes, the trusted area of every liberty
        cell (LEF where the LEF has the macro, else the liberty value), and the list of cells
        that were corrected, in liberty order.
    """
    sizes = parse_lef_sizes(lef_text)
    out: list[str] = []
    pos = 0
    areas: dict[str, float] = {}
    corrections: list[AreaCorrection] = []
    cells = list(_CELL.finditer(lib_text))
    for i, m in enumerate(cells):
        name = m.group(1)
        end = cells[i + 1].start() if i + 1 < len(cells) else len(lib_text)
        a = _AREA.search(lib_text, m.end(), end)
        if a is None:
            continue
        lib_area = float(a.group(2))
        areas[name] = lib_area
        if name in sizes:
            w, h = sizes[name]
            lef_area = round(w * h, 6)
            areas[name] = lef_area
            if abs(lef_area - lib_area) > tolerance * max(lef_area, 1.0):
                corrections.append(AreaCorrection(name, lib_area, lef_area))
                out.append(lib_text[pos:a.start(2)])
                out.append(f"{lef_area:g}")
                pos = a.end(2)
    out.append(lib_text[pos:])
    return "".join(out), areas, corrections


def read_corrected(lib_path: Path, lef_path: Path | None):
    """:func:`correct_liberty` on files; without a LEF, the liberty is used unchanged."""
    lib_text = Path(lib_path).read_text()
    if lef_path is None:
        return lib_text, liberty_areas(lib_text), []
    return correct_liberty(lib_text, Path(lef_path).read_text())
