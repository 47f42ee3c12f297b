"""Atomic output files (dcim.golden.fileio)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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


# --------------------------------------------------------------------------------------------
# Directories written whole (write_dir_atomic), output paths checked first, one run per dir
def _files(d):
    return {str(p.relative_to(d)): p.read_text() for p in sorted(d.rglob("*")) if p.is_file()}


def test_a_new_directory_appears_whole(tmp_path):
    from dcim.golden.fileio import write_dir_atomic

    with write_dir_atomic(tmp_path / "out") as tmp:
        assert not (tmp_path / "out").exists()  # nothing there until the block ends
        (tmp / "a").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b").write_text("2")
    assert _files(tmp_path / "out") == {"a": "1", "sub/b": "2"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~mask


def test_an_earlier_output_is_replaced_whole(tmp_path):
    from dcim.golden.fileio import write_dir_atomic

    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("old")
    with write_dir_atomic(out) as tmp:
        (tmp / "a").write_text("new")
        (tmp / "b").write_text("new")
    assert _files(out) == {"a": "new", "b": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_other_files_stay_and_the_manifest_goes_last(tmp_path, monkeypatch):
    from dcim.golden import fileio

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user's")
    order = []
    real = os.replace
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (order.append(Path(b).name),
                                                            real(a, b)))
    with fileio.write_dir_atomic(out, last=("manifest",)) as tmp:
        (tmp / "manifest").write_text("m")
        (tmp / "z").write_text("z")
        (tmp / "a").write_text("a")
    assert _files(out) == {"a": "a", "manifest": "m", "mine.txt": "user's", "z": "z"}
    assert order[-1] == "manifest" and sorted(order) == ["a", "manifest", "z"]


def test_an_interrupted_directory_write_leaves_the_old_one(tmp_path):
    from dcim.golden.fileio import write_dir_atomic

    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with write_dir_atomic(out) as tmp:
            (tmp / "a").write_text("new")
            raise KeyboardInterrupt
    assert _files(out) == {"a": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_working_directory_is_never_renamed(tmp_path, monkeypatch):
    from dcim.golden.fileio import write_dir_atomic

    (tmp_path / "a").write_text("old")
    monkeypatch.chdir(tmp_path)
    with write_dir_atomic(".") as tmp:
        (tmp / "a").write_text("new")
    assert Path.cwd() == tmp_path and (tmp_path / "a").read_text() == "new"


def test_output_checks(tmp_path):
    from dcim.golden.fileio import check_output_dir, check_output_file

    (tmp_path / "f").write_text("x")
    check_output_file("--json", tmp_path / "r.json")
    check_output_file("--junit", tmp_path / "new" / "deeper" / "j.xml", parents=True)
    check_output_dir("-o", tmp_path / "new" / "deeper")
    with pytest.raises(ValueError, match=r"^--json must name a file, got the directory "):
        check_output_file("--json", tmp_path)
    with pytest.raises(ValueError, match=r"^--json: directory .*/new does not exist \(for "):
        check_output_file("--json", tmp_path / "new" / "r.json")
    with pytest.raises(ValueError, match=r"^-o must name a directory, got the file "):
        check_output_dir("-o", tmp_path / "f")
    with pytest.raises(ValueError, match=r"^-o: .*/f is not a directory \(for "):
        check_output_dir("-o", tmp_path / "f" / "sub")


def test_write_atomic_names_the_target_when_its_directory_is_missing(tmp_path):
    target = tmp_path / "no" / "x.json"
    with pytest.raises(FileNotFoundError) as exc:
        write_atomic(target, "{}")
    assert exc.value.filename == str(target)
