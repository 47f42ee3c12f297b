"""Reading the ``.npy`` and ``.npz`` files a user gives (``dcim golden``, ``dcim regress
--vectors``): every way such a file can be wrong is one :class:`~dcim.golden.errors.InputError`
naming the file, never a traceback or a huge allocation.

:func:`load_npy` reads the header first and refuses an array the file cannot hold (a header
that claims 1 TiB in a file of a few bytes), an ``.npz`` archive where one array belongs, object
arrays (pickles) and truncated data; :func:`load_npz` refuses what is not a zip archive and
checks each member the same way.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["load_npy", "load_npz"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _header(fh, size: int, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Read an array header from ``fh`` (``size`` bytes from the header on) and check that the
    data it claims fit in what is left."""
    try:
        version = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InputError(f"{where} is not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise InputError(f"{where} holds Python objects (a pickle), not numbers")
    count = 1
    for d in shape:
        count *= d
    need = count * dtype.itemsize
    have = size - fh.tell()
    if need > have:
        raise InputError(f"{where}: its header claims a {dtype} array of shape {shape} "
                         f"({need:,} bytes), the file holds {max(have, 0):,}")
    return shape, dtype


def load_npy(what: str, path: str | Path) -> np.ndarray:
    """Read the one array of the ``.npy`` file ``path`` (``what`` names it in messages).

    Raises
    ------
    InputError
        No such file, not an ``.npy`` file (an ``.npz`` archive, anything else), a header
        larger than the data, object arrays, truncated data.
    """
    path = Path(path)
    where = f"{what} file {path}"
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(6)
        if magic[:4] == _ZIP_MAGIC:
            raise InputError(f"{where} is not a readable .npy array (it is an .npz archive)")
        if magic != _NPY_MAGIC:
            raise InputError(f"{where} is not a readable .npy array (not a NumPy file)")
        fh.seek(0)
        _header(fh, size, where)
        fh.seek(0)
        try:
            return np.load(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{where} is not a readable .npy array ({exc})") from None


def load_npz(what: str, path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of the ``.npz`` archive ``path``: ``{name: array}``.

    Raises
    ------
    InputError
        No such file, not a zip archive (an ``.npy`` file, a corrupt one), a member that is not
        a readable array (see :func:`load_npy`).
    """
    path = Path(path)
    where = f"{what} file {path}"
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == _NPY_MAGIC:
        raise InputError(f"{where} is not a readable .npz archive (it holds one array)")
    if magic[:4] != _ZIP_MAGIC:
        raise InputError(f"{where} is not a readable .npz archive (not a NumPy file)")
    try:
        with zipfile.ZipFile(path) as z:
            out = {}
            for info in z.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                member = f"{where} (member {info.filename})"
                with z.open(info) as m:
                    head = io.BytesIO(m.read(65536 + 10))
                _header(head, info.file_size, member)
                with z.open(info) as m:
                    try:
                        out[name] = np.lib.format.read_array(io.BytesIO(m.read()),
                                                             allow_pickle=False)
                    except (ValueError, OSError, EOFError) as exc:
                        raise InputError(f"{member} is not a readable array ({exc})") from None
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError
            ) as exc:
        raise InputError(f"{where} is not a readable .npz archive ({exc})") from None
