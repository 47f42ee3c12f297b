"""The OSU018 standard cells for the synthesis tests: the tests that need them skip, with the
reason, when they are absent (no ``.tech`` from ``make setup`` and no ``DCIM_TECH_DIR``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcim.synth.tech import tech_files


def _missing() -> str | None:
    try:
        tech_files("osu018")
    except FileNotFoundError as exc:
        return str(exc)
    return None


_MISSING = _missing()

#: Mark for a test (or ``pytestmark`` of a module) that needs the OSU018 liberty.
needs_osu018 = pytest.mark.skipif(_MISSING is not None,
                                  reason=f"needs the OSU018 cells: {_MISSING}")


def osu018() -> tuple[Path, Path | None]:
    """``(liberty, lef)`` of OSU018, or skip the calling test with the reason."""
    if _MISSING is not None:
        pytest.skip(f"needs the OSU018 cells: {_MISSING}")
    return tech_files("osu018")
