"""The command line, run as an operator runs it: ``python -m gateway ...`` in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from tests import builders as b
from tests.conftest import write_config
from tests.daemon import wait_until
from tests.xsdcheck import assert_valid

NOTE = "{urn:dit-gateway:notifications:1}Notification"


def gateway(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway`` in ``root``."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder with a gateway config."""
    write_config(tmp_path)
    return tmp_path


def test_help_lists_every_command(root: Path) -> None:
    """``--help`` names the commands of spec 8."""
    out = gateway(root, "--help").stdout
    for command in ("run", "process", "tick", "validate", "status", "extract", "resend",
                    "requeue"):
        assert command in out


def test_process_exit_codes(root: Path) -> None:
    """process: 0 when all are processed, 1 when a file is rejected whole, 2 on bad config."""
    good = root / "pos.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    bad = root / "bad.xml"
    bad.write_text("<nope")
    config = str(root / "gateway.toml")
    ok = gateway(root, "process", "--config", config, "--as-of", "2026-11-02", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "processed" in ok.stdout
    assert good.exists(), "process must not take the operator's file away"
    rejected = gateway(root, "process", "--config", config, str(bad))
    assert rejected.returncode == 1
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "bad.ack.xml")
    assert ack.get("channel") == "unknown"
    broken = root / "broken.toml"
    broken.write_text("[intake]\nsettle_seconds = 'x'\n")
    usage = gateway(root, "process", "--config", str(broken), str(good))
    assert usage.returncode == 2
    assert "intake.settle_seconds" in usage.stderr
    assert gateway(root, "process", "--config", config, "--as-of", "nonsense", str(good)
                   ).returncode == 2


def test_process_refuses_a_file_that_is_not_regular_before_taking_any(root: Path) -> None:
    """A FIFO among the FILEs (or a device, or ``<(…)``): exit 2 at once, saying which, and no
    file taken. Before, the look-ahead's hash of the next file waited for a FIFO's writer
    forever, after the first file had been processed."""
    first, last = root / "a.xml", root / "c.xml"
    first.write_text(b.positions("RGT", [b.position(1)]))
    last.write_text(b.positions("RGT", [b.position(2, "2")]))
    fifo = root / "b.xml"
    os.mkfifo(fifo)
    try:
        result = gateway(root, "process", "--config", str(root / "gateway.toml"),
                         str(first), str(fifo), str(last))
    finally:
        with contextlib.suppress(OSError):  # the old code's reader, waiting: let it end
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: not a regular file: {fifo}"
    assert result.stdout == ""
    assert not (root / "outbox").exists()
    assert not (root / "var").exists()


# Run as a script: the real command line with the positions flow replaced by a bug whose
# message carries a record's values (a date of birth, a NINO).
_A_BUG = """
import sys
from gateway import cli


def bug(document, ctx):
    raise ValueError("a record born 1995-03-04, NINO QQ123456C")


cli.FLOWS["positions"] = bug
sys.argv = ["dit-gateway", *sys.argv[1:]]
cli.main()
"""


def test_an_internal_error_is_one_line_and_a_scrubbed_log_entry(root: Path) -> None:
    """A bug while deciding a FILE: exit 1, one ``error:`` line saying what was left (the file
    in var/processing/, retried; the FILEs after it not taken), the traceback only in the
    ``command.failed`` log entry, scrubbed; never Python's raw traceback, whose text could
    carry a record's values to a terminal or a job's mail."""
    first, second = root / "a.xml", root / "b.xml"
    first.write_text(b.positions("RGT", [b.position(1)]))
    second.write_text(b.positions("RGT", [b.position(2, "2")]))
    result = subprocess.run(
        [sys.executable, "-c", _A_BUG, "process", "--config", str(root / "gateway.toml"),
         str(first), str(second)],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    said = [line for line in lines if not line.startswith("{")]
    assert said == [
        "error: internal error (ValueError; its traceback is logged as command.failed) "
        f"({first} stays in var/processing/ and is retried; no FILE after it was taken)"]
    (failed,) = [json.loads(line) for line in lines
                 if line.startswith("{") and json.loads(line)["event"] == "command.failed"]
    assert failed["error"] == "ValueError"
    assert "in _take_through" in failed["exception"]
    assert "1995-03-04" not in result.stderr
    assert "QQ123456C" not in result.stderr
    assert result.stdout == ""


# Run as a script: the real command line, with something outside the gateway removing a
# notification's temporary file after the commit, before it is published.
_AN_OUTPUT_TAKEN = """
import os, sys
from gateway import cli
from gateway.transport import files

real = files.publish_all


def publish_all(outputs):
    outputs = list(outputs)
    for temp, *_rest in outputs:
        if "notifications" in temp.name:
            os.unlink(temp)
    return real(outputs)


files.publish_all = publish_all
sys.argv = ["dit-gateway", *sys.argv[1:]]
cli.main()
"""


def test_an_output_lost_before_publishing_is_said_as_such(root: Path) -> None:
    """An output's temporary file removed by something else between the commit and its
    publishing: ``process`` says so in its own words (no acknowledgement is published) and
    exits 1; it is not reported as an internal error."""
    source = root / "pos.xml"
    source.write_text(b.positions("RGT", [b.position(1)]))
    result = subprocess.run(
        [sys.executable, "-c", _AN_OUTPUT_TAKEN, "process", "--config",
         str(root / "gateway.toml"), "--as-of", "2026-11-02", str(source)],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )
    assert result.returncode == 1
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1
    assert said[0].startswith("error: 2 output(s) lost before publishing, e.g. notifications-")
    assert not (root / "outbox" / "reports" / "acks" / "pos.ack.xml").exists()


# Run as a script: the real command line, sending itself SIGINT (as Ctrl-C does) N times
# while the first position file is being decided (N is the first argument).
_SIGNALLED = """
import signal, sys
from gateway import cli

times = int(sys.argv.pop(1))
real = cli.FLOWS["positions"]
sent = []


def signalled(document, ctx):
    if not sent:
        sent.append(True)
        for _ in range(times):
            signal.raise_signal(signal.SIGINT)  # returns once its handler has run
    return real(document, ctx)


cli.FLOWS["positions"] = signalled
sys.argv = ["dit-gateway", *sys.argv[1:]]
cli.main()
"""


def _two_position_files(root: Path) -> tuple[Path, Path]:
    first, second = root / "a.xml", root / "b.xml"
    first.write_text(b.positions("RGT", [b.position(1)]))
    second.write_text(b.positions("RGT", [b.position(2, "2")]))
    return first, second


def _signalled(root: Path, times: int, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SIGNALLED, str(times), "process", "--config",
         str(root / "gateway.toml"), "--as-of", "2026-11-02", *map(str, files)],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )


def _said(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What a command said on stderr, its log lines aside."""
    return [line for line in result.stderr.splitlines() if not line.startswith("{")]


def test_ctrl_c_during_process_finishes_the_file_in_hand_and_takes_no_other(root: Path) -> None:
    """Ctrl-C while a FILE is decided: that file is finished and acknowledged, the FILEs after
    it are not taken, and the command says so and exits 130 (not click's bare "Aborted!"). The
    FILE not taken is processed by the next ``process``."""
    first, second = _two_position_files(root)
    acks = root / "outbox" / "reports" / "acks"
    result = _signalled(root, 1, first, second)
    assert result.returncode == 130, result.stderr
    assert result.stdout == f"{first}: processed ({acks / 'a.ack.xml'})\n"
    assert _said(result) == [
        "stopping after the file in hand (a second signal stops at once)",
        f"interrupted ({second} was not taken, nor any FILE after it)"]
    assert not (acks / "b.ack.xml").exists()
    again = gateway(root, "process", "--config", str(root / "gateway.toml"),
                    "--as-of", "2026-11-02", str(second))
    assert again.returncode == 0, again.stderr
    assert (acks / "b.ack.xml").exists()


def test_a_second_ctrl_c_stops_at_once_and_the_next_process_finishes_the_file(
    root: Path,
) -> None:
    """A second Ctrl-C stops ``process`` at once, as a crash would (exit 130): the file in
    hand stays claimed in var/processing/, and the next ``process`` finishes it before its
    own FILEs: each file acknowledged once."""
    first, second = _two_position_files(root)
    result = _signalled(root, 2, first, second)
    assert result.returncode == 130, result.stderr
    assert result.stdout == ""
    assert _said(result) == [
        "stopping after the file in hand (a second signal stops at once)",
        "stopped at once: the file in hand stays in var/processing/ and is taken by the next "
        "process or the daemon"]
    assert [p.name for p in (root / "var" / "processing" / "esr").iterdir()] == ["1-a.xml"]
    assert not (root / "outbox" / "reports").exists()
    again = gateway(root, "process", "--config", str(root / "gateway.toml"),
                    "--as-of", "2026-11-02", str(second))
    assert again.returncode == 0, again.stderr
    assert "recovery.taken_over" in again.stderr
    acks = sorted(p.name for p in (root / "outbox" / "reports" / "acks").iterdir())
    assert acks == ["a.ack.xml", "b.ack.xml"]
    assert list((root / "var" / "processing" / "esr").iterdir()) == []
    status = gateway(root, "status", "--config", str(root / "gateway.toml"))
    assert "esr   processed  2" in status.stdout


# Run as a script: claim FILEs (as the daemon would, from the inbox) and die holding them.
_CLAIM_AND_DIE = """
import os, sys
from pathlib import Path
from gateway import config
from gateway.cli import FLOWS
from gateway.pipeline import Pipeline
from gateway.store import open_store

settings = config.load(Path(sys.argv[1]))
pipeline = Pipeline(settings, open_store(settings), FLOWS)
for name in sys.argv[2:]:
    pipeline.claim(Path(name), "esr")
os._exit(9)
"""


def test_ctrl_c_while_process_finishes_what_a_crash_left_says_what_is_left(
    root: Path,
) -> None:
    """Two files left claimed by a process that died; ``process c.xml`` finishes them first.
    Ctrl-C during the first: it is finished, the second stays in var/processing/ for the next
    run, c.xml is not taken, and the command says so (exit 130)."""
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    first, second = _two_position_files(inbox)
    claimed = subprocess.run(
        [sys.executable, "-c", _CLAIM_AND_DIE, str(root / "gateway.toml"), str(first),
         str(second)], capture_output=True, text=True, check=False, cwd=root, timeout=60)
    assert claimed.returncode == 9, claimed.stderr
    third = root / "c.xml"
    third.write_text(b.positions("RGT", [b.position(3, "3")]))
    result = _signalled(root, 1, third)
    assert result.returncode == 130, result.stderr
    assert _said(result) == [
        "stopping after the file in hand (a second signal stops at once)",
        "interrupted (1 file(s) left in var/processing/ for the next process or the daemon; "
        "no FILE was taken)"]
    assert [p.name for p in (root / "outbox" / "reports" / "acks").iterdir()] == ["a.ack.xml"]
    again = gateway(root, "process", "--config", str(root / "gateway.toml"),
                    "--as-of", "2026-11-02", str(third))
    assert again.returncode == 0, again.stderr
    acks = sorted(p.name for p in (root / "outbox" / "reports" / "acks").iterdir())
    assert acks == ["a.ack.xml", "b.ack.xml", "c.ack.xml"]


def test_ctrl_c_in_any_command_is_one_line(root: Path) -> None:
    """Ctrl-C where no file is in hand (``validate`` of a FIFO that nobody writes, which waits
    as ``cat`` would): ``interrupted`` and exit 130, no traceback."""
    fifo = root / "f.xml"
    os.mkfifo(fifo)
    with subprocess.Popen(
        [sys.executable, "-m", "gateway", "validate", str(fifo)], cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as command:
        wchan = Path(f"/proc/{command.pid}/wchan")
        wait_until(lambda: wchan.read_text() == "wait_for_partner",  # opening the FIFO
                   what="validate to wait for the FIFO's writer")
        command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=30)
    assert command.returncode == 130
    assert (out, err) == ("", "interrupted\n")


def _closed_stdout(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dit-gateway ARGS | head -0``: standard output a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args], stdout=write_end,
            stderr=subprocess.PIPE, text=True, check=False, cwd=root, timeout=120,
        )
    finally:
        os.close(write_end)


def test_a_closed_standard_output_ends_a_command_quietly(root: Path) -> None:
    """``dit-gateway status | head``: when the reader of standard output has gone, the
    command ends as ``cat`` would (exit 141, 128 + SIGPIPE) with nothing on stderr: no
    traceback, no "internal error". ``process`` says which FILE it had finished and that it
    took none after it, and that file is acknowledged."""
    config = str(root / "gateway.toml")
    status = _closed_stdout(root, "status", "--config", config)
    assert status.returncode == 141
    assert status.stderr == ""
    first, second = _two_position_files(root)
    process = _closed_stdout(root, "process", "--config", config, "--as-of", "2026-11-02",
                             str(first), str(second))
    assert process.returncode == 141
    assert [line for line in process.stderr.splitlines() if not line.startswith("{")] == [
        f"error: standard output was closed ({first} was processed; no FILE after it was "
        "taken)"]
    acks = sorted(p.name for p in (root / "outbox" / "reports" / "acks").iterdir())
    assert acks == ["a.ack.xml"]


def test_process_in_inbox_folder_keeps_its_channel(root: Path) -> None:
    """A file given from inbox/tis is judged as a TIS file (WRONG_CHANNEL for positions)."""
    path = root / "inbox" / "tis" / "pos.xml"
    path.parent.mkdir(parents=True)
    path.write_text(b.positions("RGT", [b.position(1)]))
    result = gateway(root, "process", "--config", str(root / "gateway.toml"), str(path))
    assert result.returncode == 1
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "pos.ack.xml")
    assert ack.find("{urn:dit-gateway:ack:1}Error").get("code") == "WRONG_CHANNEL"  # type: ignore[union-attr]


def test_validate_prints_file_line_column(root: Path) -> None:
    """validate prints file:line:column: message per error and exits 1; 0 when valid."""
    good = root / "good.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    bad = root / "bad.xml"
    bad.write_text(b.positions("RGT", [b.position(1), b.position(2, ptype="Triple")]))
    ok = gateway(root, "validate", str(good))
    assert ok.returncode == 0
    assert "valid positions document" in ok.stdout
    result = gateway(root, "validate", str(good), str(bad))
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith(str(bad)))
    _file, lineno, column, message = line.split(":", 3)
    assert (int(lineno), int(column) > 0) == (4, True)
    assert "SCHEMA_INVALID" in message
    assert not (root / "var").exists(), "validate must change nothing"


def test_status_reports_the_ledger(root: Path) -> None:
    """status shows files by channel and result and the last extract per VPD."""
    config = str(root / "gateway.toml")
    good = root / "pos.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    gateway(root, "process", "--config", config, "--as-of", "2026-11-02", str(good))
    out = gateway(root, "status", "--config", config)
    assert out.returncode == 0
    assert "esr   processed  1" in out.stdout
    assert "positions RGT   EOE      2026-11-02" in out.stdout


def test_tick_writes_the_duplicate_position_report(root: Path) -> None:
    """tick runs the weekly duplicate report now: one DUPLICATE_POSITION row per duplicated DPN."""
    config = str(root / "gateway.toml")
    extract = root / "pos.xml"
    records = [b.position(1), b.position(2), b.position(3, dpn="EOE/X")]
    extract.write_text(b.positions("RGT", records))
    gateway(root, "process", "--config", config, "--as-of", "2026-11-02", str(extract))
    result = gateway(root, "tick", "--config", config, "--as-of", "2026-11-04")
    assert result.returncode == 0, result.stderr
    report = root / "outbox" / "reports" / "RGT" / "duplicate-positions-2026-11-04.xml"
    rows = assert_valid(report).findall(NOTE)
    assert [(r.get("type"), r.get("deaneryPostNumber")) for r in rows] == [
        ("DUPLICATE_POSITION", "EOE/RGT00/001/FY1/001")
    ]
    csv = report.with_suffix(".csv").read_text()
    assert csv.splitlines()[0].startswith("type,placementId,deaneryPostNumber")
    assert etree.parse(str(report)).getroot().get("sourceFile") is None


def test_process_of_a_missing_file_is_a_usage_error(root: Path) -> None:
    """``process`` of a file that does not exist exits 2 (usage) and processes nothing."""
    good = root / "pos.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    result = gateway(root, "process", "--config", str(root / "gateway.toml"), str(good),
                     str(root / "missing.xml"))
    assert result.returncode == 2
    assert "missing.xml" in result.stderr
    assert not (root / "outbox").exists()


def test_extract_persons_of_an_unknown_vpd_is_refused(root: Path) -> None:
    """``extract persons --vpd`` of a VPD the gateway has never seen says so and exits 2."""
    result = gateway(root, "extract", "persons", "--config", str(root / "gateway.toml"),
                     "--vpd", "XXX", "--full")
    assert result.returncode == 2
    assert "unknown VPD XXX" in result.stderr


def test_the_ack_keeps_the_name_the_partner_sent_and_the_stored_name(root: Path) -> None:
    """The ack's ``file`` is the partner's name as sent (what XML cannot carry escaped), with
    the safe name the gateway stored it under beside it, so partners can match their acks."""
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    sent = inbox / "ESR extract (RGT)\x01.xml"
    sent.write_text(b.positions("RGT", [b.position(1)]))
    result = gateway(root, "process", "--config", str(root / "gateway.toml"), "--as-of",
                     "2026-11-02", str(sent))
    assert result.returncode == 0, result.stderr
    ack = assert_valid(next((root / "outbox" / "reports" / "acks").glob("*.ack.xml")))
    assert ack.get("file") == "ESR extract (RGT)\\x01.xml"
    assert ack.get("storedAs") == "ESR_extract_RGT_.xml"


def test_a_name_that_is_not_utf8_is_taken_and_acknowledged(root: Path) -> None:
    """A partner's file whose name is not UTF-8 (the file system allows any bytes but ``/``)
    and holds a newline: processed, its ack named safely, its name as sent in the ack with
    the bytes written as ``\\xNN``. Before, the claim failed on the store's UTF-8 (the daemon
    logged ``file.claim_failed`` every scan and never took the file)."""
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    sent = Path(os.fsdecode(bytes(inbox) + b"/\xff\xfeRGT\nextract.xml"))
    sent.write_text(b.positions("RGT", [b.position(1)]))
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "process", "--config", str(root / "gateway.toml"),
         "--as-of", "2026-11-02", str(sent)],
        capture_output=True, check=False, cwd=root, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (ack,) = (root / "outbox" / "reports" / "acks").iterdir()
    assert ack.name == "_xff_xfeRGT_extract.ack.xml"
    assert result.stdout == os.fsencode(sent) + f": processed ({ack})\n".encode()
    doc = assert_valid(ack)
    assert doc.get("file") == "\\xff\\xfeRGT\nextract.xml"
    assert doc.get("status") == "processed"


def test_a_private_key_holding_garbage_is_refused_at_start(root: Path) -> None:
    """An SFTP partner whose key file holds garbage stops ``run`` at once with exit 2 and the
    key's name, instead of being retried forever."""
    (root / "key").write_text("this is not a key\n")
    (root / "known_hosts").write_text("")
    config = root / "gateway.toml"
    config.write_text(config.read_text() + (
        '[[sftp]]\nname = "hee"\nhost = "127.0.0.1"\nuser = "u"\nprivate_key = "key"\n'
        'known_hosts = "known_hosts"\n'
    ))
    result = gateway(root, "run", "--config", str(config))
    assert result.returncode == 2
    assert "sftp[0].private_key" in result.stderr


def test_schema_error_columns_are_right_past_the_first_64_kib(root: Path) -> None:
    """An error deep in a large file gets the column of its element, not 1."""
    many = [b.position(i) for i in range(1, 400)]
    text = b.positions("RGT", [*many, "  " + b.position(400, ptype="Triple")])
    assert len(text.encode()) > 2 * 64 * 1024
    bad = root / "big.xml"
    bad.write_text(text)
    result = gateway(root, "validate", str(bad))
    line = next(x for x in result.stdout.splitlines() if x.startswith(str(bad)))
    _file, lineno, column, _message = line.split(":", 3)
    assert int(lineno) == text.count("\n") - 1
    last = text.splitlines()[int(lineno) - 1]
    assert int(column) == last.index("<PositionType") + 1 > 1


def test_every_command_runs_with_the_collector_tuned(root: Path) -> None:
    """A command runs with what the imports made frozen out of the collector's way and young
    objects collected every 50,000 allocations, not Python's 700 (docs/performance.md)."""
    good = root / "pos.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print(gc.get_threshold()[0], gc.get_freeze_count()))\n"
        "from gateway.cli import main\n"
        f"sys.argv = ['dit-gateway', 'validate', {str(good)!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=False, cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    threshold, frozen = map(int, result.stdout.split()[-2:])
    assert threshold == 50_000
    assert frozen > 10_000  # the modules, classes and functions of the imports
