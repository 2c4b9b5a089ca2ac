"""Personal data at rest is for the gateway's user and group only, whatever the umask (issue 14).

End-to-end scenarios (every flow, a quarantined file, a duplicate, the daemon's lock) with the
process umask at 0022 and at 0000; then a walk of ``outbox/`` and ``var/``: outbox files 0640 in
0750 folders, everything under ``var/`` 0600 in 0700 folders; and a real other user (setpriv to
an unprivileged uid) cannot read a single one of them.
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from gateway import config
from gateway.cli import FLOWS
from gateway.errors import ConfigError
from gateway.pipeline import Pipeline
from gateway.store import open_store
from tests import builders as b
from tests.conftest import write_config

AS_OF = date(2026, 11, 2)
DPN = "EOE/RGT00/001/FY1/001"
NOBODY = 65534  # an unprivileged uid and gid with no rights on the test's files


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under the umask given as its parameter."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def inputs() -> dict[tuple[str, str], str]:
    """One file of every flow, holding personal data, and a broken one: (channel, name) → text."""
    alex = b.trainee("T1", forenames="Alex", surname="Smith", dob="1995-03-04", nino="QQ123456C")
    return {
        ("esr", "positions.xml"): b.positions("RGT", [b.position(1, dpn=DPN)]),
        ("esr", "persons.xml"): b.persons("RGT", [b.person("E1", [b.assignment("A1", "1")])]),
        ("tis", "placements.xml"): b.placements([
            b.placement("P1", dpn=DPN, start="2026-12-01", person=alex)]),
        ("trac", "checks.xml"): b.checks([b.applicant("TR1", placement_id="P1",
                                                     checks=[b.dbs()])]),
        ("tis", "broken.xml"): "<PlacementFile>Smith 1995-03-04",
        ("tis", "again.xml"): b.placements([
            b.placement("P1", dpn=DPN, start="2026-12-01", person=alex)]),
    }


def run_scenario(root: Path, check: Callable[[Path], None]) -> None:
    """Every input through the real pipeline, in process (under the test's umask); ``check``
    runs while the store is still open (its WAL is there)."""
    settings = config.load(write_config(root))
    store = open_store(settings)
    try:
        pipeline = Pipeline(settings, store, FLOWS)
        for (channel, name), text in inputs().items():
            path = settings.paths.inbox / channel / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            os.chmod(path, 0o644)  # as a partner's upload would be
            pipeline.process(pipeline.claim(path, channel), AS_OF)
        check(root)
    finally:
        store.close()


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A folder every user may traverse (unlike pytest's 0700 tmp_path), so that only the
    gateway's own modes can keep another user out."""
    root = Path(tempfile.mkdtemp(prefix="dit-gateway-modes-", dir="/tmp"))
    os.chmod(root, 0o755)  # noqa: S103 -- on purpose: others may traverse
    try:
        yield root
    finally:
        shutil.rmtree(root)


def walk(root: Path) -> list[tuple[Path, int]]:
    """(path, permission bits) of every file and folder in ``outbox/`` and ``var/``."""
    found = []
    for top in (root / "outbox", root / "var"):
        found.append((top, stat.S_IMODE(top.stat().st_mode)))
        found += [(p, stat.S_IMODE(p.lstat().st_mode)) for p in top.rglob("*")]
    return found


def assert_owner_and_group_only(root: Path) -> None:
    """outbox/: files 0640, folders 0750; var/: files 0600, folders 0700."""
    kinds = {p.relative_to(root).parts[0] for p, _m in walk(root) if p.is_file()}
    assert kinds == {"outbox", "var"}
    for path, mode in walk(root):
        private = path.relative_to(root).parts[0] == "var"
        if path.is_dir():
            assert mode == (0o700 if private else 0o750), (path, oct(mode))
        else:
            assert mode == (0o600 if private else 0o640), (path, oct(mode))


def assert_others_cannot_read(root: Path) -> None:
    """A real other user (uid and gid 65534) can read none of the files."""
    paths = [str(p) for p, _m in walk(root) if p.is_file()]
    assert paths
    script = (
        "import sys\n"
        "readable = []\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        open(p, 'rb').close()\n"
        "        readable.append(p)\n"
        "    except OSError:\n"
        "        pass\n"
        "print('\\n'.join(readable))\n"
    )
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "/usr/bin/python3", "-c", script, *paths],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"readable by another user:\n{result.stdout}"


@pytest.mark.parametrize("umask", [0o022, 0o000], indirect=True, ids=["022", "000"])
def test_every_file_with_personal_data_is_owner_and_group_only(
    open_root: Path, umask: int
) -> None:
    """After every flow, a quarantined and a duplicate file: outbox files 0640 in 0750
    folders, var/ (store, WAL, processing, archive, quarantine) 0600 in 0700 folders, and
    another user can read nothing."""

    def check(root: Path) -> None:
        names = {p.name for p, _m in walk(root)}
        assert {"gateway.db", "gateway.db-wal", "quarantine", "archive", "processing"} <= names
        assert any(p.parent.name == "RGT" and p.parent.parent.name == "esr"
                   for p, _m in walk(root))  # the applicant load: names, birth dates, NINOs
        assert_owner_and_group_only(root)
        assert_others_cannot_read(root)

    run_scenario(open_root, check)


def test_the_cli_and_the_daemon_lock_under_umask_0000(tmp_path: Path) -> None:
    """``dit-gateway process`` run as a separate process with umask 0000: the same modes."""
    write_config(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    for (_channel, name), text in inputs().items():
        (drop / name).write_text(text)
    for name in ("positions.xml", "placements.xml", "broken.xml", "again.xml"):
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "process", "--config", str(tmp_path / "gateway.toml"),
             "--as-of", AS_OF.isoformat(), str(drop / name)],
            capture_output=True, text=True, check=False, cwd=tmp_path, timeout=120, umask=0,
        )
        assert result.returncode in (0, 1), result.stderr
    assert (tmp_path / "outbox" / "esr" / "RGT").is_dir()
    assert_owner_and_group_only(tmp_path)


def test_an_existing_var_is_made_private_and_an_old_store_closed(tmp_path: Path) -> None:
    """A var/ and a store left world-readable by version 0.1 are made private on start."""
    (tmp_path / "var").mkdir(mode=0o755)
    os.chmod(tmp_path / "var", 0o755)  # noqa: S103 -- as version 0.1 left it
    settings = config.load(write_config(tmp_path))
    open_store(settings).close()
    os.chmod(tmp_path / "var" / "gateway.db", 0o644)
    open_store(settings).close()
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "var" / "gateway.db").stat().st_mode) == 0o600


def test_paths_group_gives_the_outbox_to_that_group(tmp_path: Path) -> None:
    """``[paths] group``: outbox files and folders belong to that group (read-only for it);
    var/ stays the gateway user's."""
    group = grp.getgrgid(NOBODY).gr_name
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("[paths]\n", f'[paths]\ngroup = "{group}"\n'))
    settings = config.load(path)
    assert settings.paths.gid == NOBODY
    store = open_store(settings)
    try:
        pipeline = Pipeline(settings, store, FLOWS)
        for (channel, name), text in list(inputs().items())[:3]:
            source = settings.paths.inbox / channel / name
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_text(text)
            pipeline.process(pipeline.claim(source, channel), AS_OF)
    finally:
        store.close()
    for p, _m in walk(tmp_path):
        gid = p.lstat().st_gid
        if p.relative_to(tmp_path).parts[0] == "outbox":
            assert gid == NOBODY, p
        else:
            assert gid == os.getegid(), p
    assert_owner_and_group_only(tmp_path)


def test_an_unknown_group_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    """A group that does not exist is refused at start, naming ``paths.group``."""
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("[paths]\n", '[paths]\ngroup = "no-such-group"\n'))
    with pytest.raises(ConfigError, match=r"paths\.group"):
        config.load(path)


def test_the_systemd_unit_sets_an_owner_and_group_umask() -> None:
    """The unit's ``UMask=0027``: anything else the service writes is not world-readable."""
    unit = Path(__file__).resolve().parent.parent / "config" / "systemd" / "dit-gateway.service"
    lines = [line.strip() for line in unit.read_text().splitlines()]
    assert "UMask=0027" in lines


@pytest.mark.parametrize(("path", "private"), [
    ("var", True), ("var/", True), ("var/archive/f.xml", True), ("var/a/../b", True),
    ("varx/f.xml", False), ("var/../outbox/f.xml", False), ("outbox/var/f.xml", False),
    (".", False),
])
def test_private_is_what_lies_under_var_by_its_parts(tmp_path: Path, path: str,
                                                      private: bool) -> None:
    """A path is private exactly when it lies under ``var/``, part by part as
    ``Path.is_relative_to`` says: a sibling whose name begins ``var`` is not, nor a path that
    climbs out with ``..``."""
    from gateway.transport import modes  # noqa: PLC0415

    before = modes._policy.private, modes._policy.gid
    try:
        modes.configure(tmp_path / "var")
        assert modes.file_mode(tmp_path / path) == (
            modes.PRIVATE_FILE if private else modes.SHARED_FILE)
        absolute = Path(os.path.abspath(tmp_path / path))
        assert absolute.is_relative_to(tmp_path / "var") is private
    finally:
        modes._policy.private, modes._policy.gid = before


def test_folders_are_made_in_a_parent_the_gateway_may_write_but_not_read(
    open_root: Path,
) -> None:
    """``make_dirs`` syncs each folder it makes into its parent; a parent of another owner that
    the gateway's user may write into and traverse but not list (0730) cannot be opened to be
    synced, and is not a reason to fail: the folders are made. Run as a real other user."""
    parent = open_root / "shared"
    parent.mkdir()
    os.chown(parent, 0, NOBODY)
    os.chmod(parent, 0o730)  # noqa: S103 -- on purpose: its group may write, not list
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from pathlib import Path\n"
        "from gateway.transport import modes\n"
        "modes.make_dirs(Path(sys.argv[1]))\n"
    )
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "/usr/bin/python3", "-c", script, str(parent / "inbox" / "esr")],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    made = parent / "inbox" / "esr"
    assert made.is_dir()
    assert made.stat().st_uid == NOBODY


def test_a_command_run_as_another_user_than_var_s_owner_is_refused(tmp_path: Path) -> None:
    """``var/`` belongs to the gateway's user (here uid 65534); ``process``, ``tick`` and
    ``status`` run as root (``sudo dit-gateway …``) are refused with exit 2, naming the owner,
    and leave nothing of root's in ``var/`` or the outbox: no WAL, archive day or
    acknowledgement the gateway's user could not open. Before, they ran and left root's files."""
    config_path = write_config(tmp_path)
    source = tmp_path / "pos.xml"
    source.write_text(b.positions("RGT", [b.position(1)]))
    command = [sys.executable, "-m", "gateway"]
    made = subprocess.run([*command, "process", "--config", str(config_path), str(source)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert made.returncode == 0, made.stderr
    for root in (tmp_path / "var", tmp_path / "outbox"):
        for path in [root, *root.rglob("*")]:
            os.lchown(path, NOBODY, NOBODY)
    again = tmp_path / "again.xml"
    again.write_text(b.positions("RGT", [b.position(2, "2")]))
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
    for args in (["process", str(again)], ["tick"], ["status"]):
        refused = subprocess.run([*command, args[0], "--config", str(config_path), *args[1:]],
                                 capture_output=True, text=True, check=False, timeout=120)
        assert refused.returncode == 2, (args, refused.stderr)
        assert refused.stderr.startswith(
            f"error: {tmp_path / 'var'} belongs to nobody (uid {NOBODY}), not to this user (uid 0)"
        ), refused.stderr
    after = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
    assert after == before
    assert [p for p in tmp_path.rglob("*") if p.stat().st_uid == 0 and p.is_relative_to(
        tmp_path / "var")] == []
