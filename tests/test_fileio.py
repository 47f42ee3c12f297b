"""Atomic output files (dcim.golden.fileio)."""

from __future__ import annotations

import os
import stat

import pytest

from dcim.golden.fileio import write_atomic


def test_text_bytes_and_writer(tmp_path):
    p = tmp_path / "a.txt"
    assert write_atomic(p, "héllo\n") == p
    assert p.read_bytes() == "héllo\n".encode()
    write_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    write_atomic(p, lambda fh: fh.write(b"from a writer"))
    assert p.read_bytes() == b"from a writer"
    # the mode a plain open() gives, not mkstemp's 0600
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "keep.json"
    p.write_text("old")

    def broken(fh):
        fh.write(b"half of the new ")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        write_atomic(p, broken)
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.json"]


def test_missing_directory_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "x.txt", "x")
