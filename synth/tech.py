"""The standard-cell files of the flow: the OSU 0.18 um liberty and LEF (``make setup`` unpacks
them into the checkout's ``.tech``), or a liberty the user names, and its Verilog cell models."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from ..golden.errors import InputError

__all__ = ["cell_models", "check_liberty", "tech_files"]

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
    InputError
        The file named is not a liberty file (:func:`check_liberty`).
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
    check_liberty(lib)
    lef = lib.with_suffix(".lef")
    return lib, lef if lef.is_file() else None


def cell_models(lib: Path) -> Path | None:
    """The Verilog models of the cells of liberty ``lib`` (``.v`` with the same stem), or None."""
    v = lib.with_suffix(".v")
    return v if v.is_file() else None



_COMMENT = re.compile(rb"/\*.*?\*/|//[^\n]*", re.S)
_LIBRARY = re.compile(rb"\s*library\s*\(\s*\"?[\w.-]+\"?\s*\)\s*\{")


def check_liberty(lib: Path) -> None:
    """Check that ``lib`` looks like a Liberty file (text whose first statement is
    ``library (NAME) {``, with at least one ``cell (...)`` group) before any tool reads it.

    Raises
    ------
    InputError
        It is not text, or not a Liberty library.
    """
    with open(lib, "rb") as f:
        head = f.read(1 << 20)
    if b"\0" in head:
        raise InputError(f"--liberty {lib} is not a liberty file (binary data)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not a character cut by the 1 MiB read
            raise InputError(f"--liberty {lib} is not a liberty file (not text)") from None
    text = _COMMENT.sub(b" ", head)
    if not _LIBRARY.match(text) or not re.search(rb"\bcell\s*\(", text):
        raise InputError(f"--liberty {lib} is not a liberty file (it must start with "
                         "library (NAME) { and hold cell (...) groups)")
