"""Atomic file output: every file dcim writes for a user goes through :func:`write_atomic`,
every directory of files that belong together through :func:`write_dir_atomic`.

A reader (or a run interrupted half-way) sees either the previous file or the whole new one,
never a part: the data goes to a temporary file in the same directory, is flushed to disk, and
is renamed over the target. :func:`check_output_file` and :func:`check_output_dir` check an
output path before the long work starts; :func:`lock_dir` keeps two runs out of one output
directory. Imports nothing of dcim but its exception type, so that every layer can use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import InputError

__all__ = ["check_output_dir", "check_output_file", "lock_dir", "write_atomic",
           "write_dir_atomic"]


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
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # name the target, not the temporary file
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
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
        try:
            os.replace(tmp, path)
        except OSError as exc:  # name the target (a directory there, say), not the temporary
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _nearest_dir(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (``path`` itself if it exists)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(option: str, d: Path, path: Path) -> None:
    if not d.is_dir():
        raise InputError(f"{option}: {d} is not a directory (for {path})")
    if not os.access(d, os.W_OK | os.X_OK):
        raise InputError(f"{option}: directory {d} is not writable (for {path})")


def check_output_file(option: str, path: str | Path | None, parents: bool = False) -> None:
    """Check, before any long work, that the file ``path`` can be written where asked.

    Parameters
    ----------
    option : str
        The option that named it (for the message), e.g. ``"--json"``.
    path : str, Path or None
        The file; None (not asked for) is accepted.
    parents : bool
        Its directory is created if missing (then its nearest existing ancestor is checked).

    Raises
    ------
    InputError
        ``path`` is a directory, or its directory does not exist (unless ``parents``) or is not
        writable.
    """
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} must name a file, got the directory {path}")
    parent = Path(os.path.abspath(path)).parent
    if parents:
        parent = _nearest_dir(parent)
    elif not parent.is_dir():
        raise InputError(f"{option}: directory {path.parent} does not exist (for {path})")
    _writable(option, parent, path)


def check_output_dir(option: str, path: str | Path | None) -> None:
    """Check, before any long work, that the directory ``path`` exists or can be created.

    Raises
    ------
    InputError
        ``path`` (or an ancestor) is a file, or the nearest existing ancestor is not writable.
    """
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} must name a directory, got the file {path}")
    _writable(option, _nearest_dir(path), path)


@contextlib.contextmanager
def write_dir_atomic(path: str | Path, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """``with write_dir_atomic(DIR) as tmp:`` write a directory's files into ``tmp``; on a
    normal exit they replace ``DIR`` as a whole, on an exception ``tmp`` is removed and ``DIR``
    is left as it was.

    ``tmp`` is a new directory beside ``DIR``. If ``DIR`` does not exist it is renamed into
    place (one rename); if ``DIR`` holds nothing but names ``tmp`` holds too (an earlier run's
    output; not the working directory or one of its parents), ``DIR`` is renamed away, ``tmp``
    into place, and the old one removed (a reader sees the old directory, none, or the new
    one). Otherwise every file of ``tmp`` is renamed over its namesake in ``DIR`` (other files
    of ``DIR`` stay), the files named in ``last`` (relative paths) last:
    name there the file that vouches for the others (a manifest with their digests), so that a
    reader who checks the digests never takes a mix of old and new files for a whole.

    Raises
    ------
    OSError
        The parent of ``DIR`` cannot be created or written.
    """
    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes it 0700: give it a plain mkdir's mode
        if not path.exists():
            os.rename(tmp, path)
        elif not path.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(path))
        elif (path not in (cwd := Path.cwd(), *cwd.parents)
              and {p.name for p in path.iterdir()} <= {p.name for p in tmp.iterdir()}):
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.rename(path, old / path.name)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            files = sorted(tmp.rglob("*"), key=lambda f: str(f.relative_to(tmp)) in last)
            for f in files:
                if f.is_dir():
                    (path / f.relative_to(tmp)).mkdir(parents=True, exist_ok=True)
            for f in files:
                if not f.is_dir():
                    os.replace(f, path / f.relative_to(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def lock_dir(path: str | Path, what: str) -> Iterator[Path]:
    """``with lock_dir(DIR, "dcim regress --out"):`` hold an exclusive lock on ``DIR`` (created
    if missing) for the block, so that two runs never mix their results in one directory.

    The lock is an ``flock`` on ``DIR/.dcim.lock``, released when the block ends or the process
    dies (a stale lock file left behind is not a lock).

    Raises
    ------
    InputError
        Another process holds the lock (the message names its pid when it wrote it).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lockfile = path / ".dcim.lock"
    fd = os.open(lockfile, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise InputError(f"{what} {path} is in use by another dcim run{who}; wait for "
                                "it to finish or choose another directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # releases the lock
