"""The standard-cell files of the flow: the OSU 0.18 um liberty and LEF (``make setup`` unpacks
them into the checkout's ``.tech``), or a liberty the user names, and its Verilog cell models."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["cell_models", "tech_files"]

#: The source checkout holding this package (its ``.tech`` is where ``make setup`` unpacks the
#: cells); for an installed wheel it is site-packages, where no ``.tech`` is found.
_CHECKOUT = Path(str(resources.files("dcim.synth"))).resolve().parent


def tech_files(liberty: str | Path = "osu018") -> tuple[Path, Path | None]:
    """Return ``(liberty, lef)`` paths for ``"osu018"`` or a liberty path.

    ``osu018`` is looked up in ``$DCIM_TECH_DIR``, the repository's ``.tech/osu018`` (``make
    setup``) and Debian's ``/usr/share/qflow/tech/osu018``. For a path, a ``.lef`` next to it
    with the same stem is used when present.

    Raises
    ------
    FileNotFoundError
        The liberty cannot be found.
    """
    if str(liberty) == "osu018":
        dirs = [Path(os.environ["DCIM_TECH_DIR"])] if os.environ.get("DCIM_TECH_DIR") else []
        dirs += [_CHECKOUT / ".tech" / "osu018", Path("/usr/share/qflow/tech/osu018")]
        for d in dirs:
            lib = d / "osu018_stdcells.lib"
            if lib.is_file():
                lef = d / "osu018_stdcells.lef"
                return lib, lef if lef.is_file() else None
        raise FileNotFoundError("OSU018 liberty not found in " + ", ".join(map(str, dirs))
                                + " (run `make setup` in a checkout, or set DCIM_TECH_DIR)")
    lib = Path(liberty)
    if not lib.is_file():
        raise FileNotFoundError(f"liberty file not found: {lib}")
    lef = lib.with_suffix(".lef")
    return lib, lef if lef.is_file() else None


def cell_models(lib: Path) -> Path | None:
    """The Verilog models of the cells of liberty ``lib`` (``.v`` with the same stem), or None."""
    v = lib.with_suffix(".v")
    return v if v.is_file() else None

