"""Atomic writes, temporary names and partner file names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import TransientError
from gateway.pipeline import safe_name
from gateway.transport import files


def test_write_atomic_leaves_only_the_final_file(tmp_path: Path) -> None:
    """An atomic write leaves the final file and no temporary behind."""
    target = tmp_path / "out" / "a.xml"
    files.write_atomic(target, b"<x/>")
    assert target.read_bytes() == b"<x/>"
    assert [p.name for p in target.parent.iterdir()] == ["a.xml"]


def test_two_processes_writing_one_file_atomically_do_not_rename_each_others(
    tmp_path: Path,
) -> None:
    """Two processes write the same file at once, again and again (two nodes starting on one
    ``var/`` write its ``store-id``): neither fails, the file is always one of theirs, whole,
    and no temporary file is left."""
    target = tmp_path / "store-id"
    script = (
        "import sys; from pathlib import Path; from gateway.transport import files\n"
        "for _ in range(400): files.write_atomic(Path(sys.argv[1]), sys.argv[2].encode() * 64)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), tag],
                              stderr=subprocess.PIPE, text=True) for tag in "ab"]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert target.read_bytes() in (b"a" * 64, b"b" * 64)
    assert [p.name for p in tmp_path.iterdir()] == ["store-id"]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    """A writer that fails half-way leaves no partial temporary file."""

    def broken(fh: object) -> None:
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    temp = tmp_path / ".a.xml.t.tmp"
    with pytest.raises(TransientError, match="No space left"):
        files.write_temp(temp, broken)
    assert not temp.exists()


@pytest.mark.parametrize(
    ("name", "temporary"),
    [(".hidden.xml", True), ("a.xml.tmp", True), ("a.part", True), ("a.filepart", True),
     ("a.xml~", True), ("a.xml", False), ("DE_EOE_APP_20270101_1.xml", False)],
)
def test_temporary_names(name: str, temporary: bool) -> None:
    """Dot-files and .tmp/.part/.filepart/~ names are not yet files (spec 2)."""
    assert files.is_temporary(name) is temporary


@pytest.mark.parametrize(
    ("raw", "safe"),
    [("a.xml", "a.xml"), ("../../etc/passwd", "_._etc_passwd"), ("a\nb.xml", "a_b.xml"),
     ("..", "file"), ("naïve name.xml", "na_ve_name.xml")],
)
def test_partner_names_are_made_safe(raw: str, safe: str) -> None:
    """A partner's file name never carries separators, dot-dot or control characters."""
    assert safe_name(raw) == safe


def test_long_names_are_bounded() -> None:
    """A very long name is cut, keeping its extension."""
    name = safe_name("x" * 500 + ".xml")
    assert len(name) <= 120
    assert name.endswith(".xml")


def test_move_never_overwrites(tmp_path: Path) -> None:
    """Moving into a folder that already has the name keeps both files."""
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "a.xml").write_text("old")
    src = tmp_path / "a.xml"
    src.write_text("new")
    moved = files.move(src, tmp_path / "dst")
    assert moved.name != "a.xml"
    assert (tmp_path / "dst" / "a.xml").read_text() == "old"
    assert moved.read_text() == "new"
    assert sorted(os.listdir(tmp_path / "dst")) == ["a.1.xml", "a.xml"]
