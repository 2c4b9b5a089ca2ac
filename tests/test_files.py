"""Atomic writes, temporary names and partner file names."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest

from gateway import config
from gateway.cli import FLOWS
from gateway.errors import TransientError
from gateway.pipeline import Pipeline, safe_name
from gateway.store import open_store
from gateway.transport import files
from tests import builders as b
from tests.conftest import write_config
from tests.daemon import wait_until

AS_OF = date(2026, 11, 2)


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


def open_descriptors() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def test_a_failed_fsync_in_a_thread_is_raised_by_wait_naming_the_file(tmp_path: Path) -> None:
    """An fsync that fails in :class:`files.Syncs`' threads (of a pipe: EINVAL, a real
    failure) is raised by ``wait`` as a transient error naming the file, after the others
    are done; every descriptor handed over is closed."""
    read_end, write_end = os.pipe()
    good = tmp_path / "good.xml"
    with files.Syncs() as syncs:
        files.write_temp(good, lambda fh: fh.write(b"<x/>"), syncs=syncs)
        syncs.start(tmp_path / ".a.xml.t.tmp", write_end)
        with pytest.raises(TransientError, match=r"\.a\.xml\.t\.tmp: Invalid argument"):
            syncs.wait()
        syncs.wait()  # reported once
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(write_end)
    os.close(read_end)
    assert good.read_bytes() == b"<x/>"


def waiting_in(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` is inside ``function`` now."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


def test_syncs_hold_at_most_sync_pending_descriptors(tmp_path: Path) -> None:
    """With every fsync thread busy, the fsync started after :data:`files.SYNC_PENDING`
    others waits for the oldest instead of holding one more descriptor; once the threads are
    free every fsync is done and no descriptor is left open."""
    before = open_descriptors()
    release = threading.Event()
    busy = [files._sync_pool().submit(release.wait) for _ in range(files.SYNC_THREADS)]
    syncs = files.Syncs()
    opened: list[int] = []

    def start_many() -> None:
        for n in range(files.SYNC_PENDING + 5):
            opened.append(os.open(tmp_path / f"{n}.xml", os.O_WRONLY | os.O_CREAT, 0o640))
            syncs.start(tmp_path / f"{n}.xml", opened[-1])

    starter = threading.Thread(target=start_many)
    starter.start()
    try:
        wait_until(lambda: waiting_in(starter, "_settle"), what="a start to wait")
        assert len(opened) == files.SYNC_PENDING + 1
        assert open_descriptors() - before == files.SYNC_PENDING + 1
    finally:
        release.set()
        starter.join(timeout=60)
    assert all(future.result() for future in busy)
    syncs.wait()
    assert len(opened) == files.SYNC_PENDING + 5
    assert open_descriptors() == before


def test_leaving_syncs_on_an_error_waits_for_every_fsync(tmp_path: Path) -> None:
    """Work that fails with fsyncs under way leaves no fsync running and no descriptor open."""
    before = open_descriptors()

    def fail_with_fsyncs_under_way() -> None:
        with files.Syncs() as syncs:
            for n in range(100):
                files.write_temp(tmp_path / f"{n}.xml", lambda fh: fh.write(b"x"), syncs=syncs)
            raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError, match="the work failed"):
        fail_with_fsyncs_under_way()
    assert open_descriptors() == before


def test_folders_are_fsynced_together_and_a_missing_one_is_raised(tmp_path: Path) -> None:
    """:func:`files.fsync_dirs` syncs every folder it can and raises the failure of one that
    is gone."""
    (tmp_path / "a").mkdir()
    files.fsync_dirs([tmp_path, tmp_path / "a"])
    with pytest.raises(FileNotFoundError):
        files.fsync_dirs([tmp_path, tmp_path / "gone", tmp_path / "a"])


def test_every_folder_made_for_an_output_is_synced_into_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file renamed into a new folder is durable only once that folder's name is in its
    parent: every folder a file's processing creates (the deanery's extract folder, the VPD's
    reports, the archive's day) and the folder it was made in are fsynced. A power cut is not a
    fault made for real here: ``os.fsync`` is watched (and still called), by the path of its
    descriptor."""
    settings = config.load(write_config(tmp_path))
    store = open_store(settings)
    try:
        pipeline = Pipeline(settings, store, FLOWS)
        drop = settings.paths.inbox / "esr" / "positions.xml"
        drop.parent.mkdir(parents=True, exist_ok=True)
        drop.write_text(b.positions("RGT", [b.position(1, dpn="EOE/RGT00/001/FY1/001")]))
        before = {p for p in tmp_path.rglob("*") if p.is_dir()}
        synced: set[Path] = set()
        real = os.fsync

        def watched(fd: int) -> None:
            synced.add(Path(os.readlink(f"/proc/self/fd/{fd}")))
            real(fd)

        monkeypatch.setattr(os, "fsync", watched)
        assert pipeline.process(pipeline.claim(drop, "esr"), AS_OF) == "processed"
    finally:
        monkeypatch.undo()
        store.close()
    made = {p for p in tmp_path.rglob("*") if p.is_dir()} - before
    tops = {p.relative_to(tmp_path).parts[:2] for p in made}
    assert tops >= {("outbox", "tis"), ("var", "archive")}
    unsynced = sorted(str(p.relative_to(tmp_path)) for p in made
                      if p not in synced or p.parent not in synced)
    assert unsynced == []
