"""Atomic file output: every file dcim writes for a user goes through :func:`write_atomic`.

A reader (or a run interrupted half-way) sees either the previous file or the whole new one,
never a part: the data goes to a temporary file in the same directory, is flushed to disk, and
is renamed over the target. Imports nothing of dcim, so that every layer can use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic"]


def write_atomic(path: str | Path, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        The target; its directory must exist.
    data : str, bytes or callable
        The content (``str`` is written as UTF-8), or a function that writes it into the binary
        file handle it is given (``np.savez``, a plot's ``savefig``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        The directory does not exist or cannot be written; no file is left behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600: give it the mode a plain open() would.
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
