"""A partner's value never steers where a file is written (issue 14).

Each path-steering value goes into every routing code of every inbound document, through the
real pipeline: the file (a root attribute) or the record (a routing code inside it) gets its
clear code, the other records go on, and nothing is written outside ``outbox/`` and ``var/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from gateway import config
from gateway.cli import FLOWS
from gateway.codes import INVALID_ROUTING_CODE, deanery_refusal, is_code
from gateway.errors import RejectedFile
from gateway.models import Position
from gateway.paths import UnsafePath, output_path
from gateway.pipeline import Pipeline
from gateway.rules.positions import routing_refusal
from gateway.store import open_store
from tests import builders as b
from tests.conftest import Gateway, write_config
from tests.xsdcheck import assert_valid

ACK = "{urn:dit-gateway:ack:1}"
AS_OF = date(2026, 11, 2)
DPN = "EOE/RGT00/001/FY1/001"


def steering(tmp_path: Path) -> dict[str, str]:
    """The values an attacker would try, by name."""
    return {
        "dotdot": "..",
        "dotdot2": "../..",
        "climb": "../../../esc1",
        "absolute": str(tmp_path / "abs"),
        "empty": "",
        "dot": ".",
        "nul": "A\x00B",
        "control": "A\x1bB",
        "long": "A" * 300,
        "nonascii": "ÉOE",
        "lower": "eoe",
        "hidden": ".EOE",
    }


def expected(value: str, *, record: bool, element: bool) -> str:
    """The code a file or record gets for ``value``: characters XML cannot carry make the file
    not well formed; a root attribute (``record=False``) makes it invalid against the XSD; a
    routing code inside a record refuses that record. An empty element reads as absent, so its
    own schema error stands."""
    if "\x00" in value or "\x1b" in value:
        return "NOT_WELL_FORMED"
    if not record or (element and value == ""):
        return "SCHEMA_INVALID"
    return INVALID_ROUTING_CODE


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    """A gateway in ``tmp_path/gw`` on SQLite, with RGT's posts loaded (one on DPN)."""
    root = tmp_path / "gw"
    root.mkdir()
    settings = config.load(write_config(root))
    store = open_store(settings)
    gateway = Gateway(root, settings, store, Pipeline(settings, store, FLOWS))
    extract = b.positions("RGT", [b.position(1, dpn=DPN)])
    assert gateway.process("esr", "rgt-positions.xml", extract, AS_OF) == "processed"
    try:
        yield gateway
    finally:
        store.close()


def ack(gw: Gateway, stem: str) -> etree._Element:
    """The acknowledgement of ``stem``, valid against its XSD."""
    return assert_valid(gw.settings.paths.outbox / "reports" / "acks" / f"{stem}.ack.xml")


def file_codes(root: etree._Element) -> set[str]:
    """The codes of a file's errors."""
    return {e.get("code", "") for e in root.findall(f"{ACK}Error")}


def record_codes(root: etree._Element) -> dict[str, tuple[str, str | None]]:
    """recordId → (result, reason)."""
    return {o.get("recordId", ""): (o.get("result", ""), o.get("reason"))
            for o in root.findall(f"{ACK}Outcome")}


def assert_nothing_outside(tmp_path: Path, gw: Gateway) -> None:
    """Every file under ``tmp_path`` is the gateway's own (config, inbox, outbox, var), and every
    folder the outbox holds is one of the gateway's names or a plain code."""
    allowed = [gw.root / "outbox", gw.root / "var", gw.root / "inbox"]
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != gw.root / "gateway.toml":
            assert any(path.is_relative_to(a) for a in allowed), f"written outside: {path}"
    for folder in (gw.root / "outbox").rglob("*"):
        if folder.is_dir():
            assert is_code(folder.name) or folder.name in {"esr", "tis", "reports", "acks"}, folder
    assert not Path(str(tmp_path / "abs")).exists()


# (document, field, builder of a file with a good record "1" and the value in record "2")
Builder = Callable[[str], tuple[str, str]]


def positions_mdb(value: str) -> tuple[str, str]:
    """ESR positions: ManagingDeaneryBody of position 2."""
    return "esr", b.positions("RGT", [b.position(1, dpn=DPN),
                                      b.position(2, dpn="EOE/RGT00/002/FY1/001", mdb=value)])


def positions_dpn(value: str) -> tuple[str, str]:
    """ESR positions: first segment of position 2's DPN."""
    return "esr", b.positions("RGT", [b.position(1, dpn=DPN),
                                      b.position(2, dpn=f"{value}/RGT00/002/FY1/001")])


def placements_dpn(value: str) -> tuple[str, str]:
    """TIS placements: first segment of placement 2's DPN."""
    return "tis", b.placements([b.placement("1", dpn=DPN, start="2026-12-01"),
                                b.placement("2", dpn=f"{value}/RGT00/001/FY1/001",
                                            start="2026-12-01")])


def placements_mdb(value: str) -> tuple[str, str]:
    """TIS placements: ManagingDeaneryBody of placement 2."""
    return "tis", b.placements([b.placement("1", dpn=DPN, start="2026-12-01"),
                                b.placement("2", dpn=DPN, mdb=value, start="2026-12-01")])


def checks_vpd(value: str) -> tuple[str, str]:
    """Trac checks: the vpd of applicant 2."""
    return "trac", b.checks([b.applicant("1", "RGT"), b.applicant("2", value)])


RECORD_FIELDS: dict[str, tuple[Builder, bool]] = {
    "positions-mdb": (positions_mdb, True),
    "positions-dpn": (positions_dpn, False),
    "placements-dpn": (placements_dpn, False),
    "placements-mdb": (placements_mdb, True),
    "checks-vpd": (checks_vpd, False),
}

ROOT_FIELDS: dict[str, Builder] = {
    "positions-vpd": lambda v: ("esr", b.positions(v, [b.position(3)])),
    "persons-vpd": lambda v: ("esr", b.persons(v, [b.person("E1", [])])),
    "placements-localOffice": lambda v: ("tis", b.placements([b.placement("3")],
                                                             local_office=v)),
    "checks-trust": lambda v: ("trac", b.checks([b.applicant("3")], trust=v)),
}


@pytest.mark.parametrize("field", sorted(RECORD_FIELDS))
def test_a_routing_code_in_a_record_refuses_that_record_only(
    tmp_path: Path, gw: Gateway, field: str
) -> None:
    """Every steering value in a record's routing code: that record is rejected with
    INVALID_ROUTING_CODE (or the file, when XML cannot carry the value), the good record of the
    same file goes on, and nothing is written outside outbox/ and var/."""
    build, element = RECORD_FIELDS[field]
    for name, value in steering(tmp_path).items():
        channel, text = build(value)
        stem = f"{field}-{name}"
        status = gw.process(channel, f"{stem}.xml", text.encode("utf-8"), AS_OF)
        root = ack(gw, stem)
        want = expected(value, record=True, element=element)
        if want == INVALID_ROUTING_CODE:
            assert status == "processed", (stem, file_codes(root))
            outcomes = record_codes(root)
            assert outcomes["2"] == ("rejected", INVALID_ROUTING_CODE), stem
            assert outcomes["1"][1] != INVALID_ROUTING_CODE, stem
            message = next(o.text or "" for o in root.findall(f"{ACK}Outcome")
                           if o.get("recordId") == "2")
            assert "plain" in message, message
        else:
            assert status == "rejected", stem
            assert file_codes(root) == {want}, (stem, file_codes(root))
    assert_nothing_outside(tmp_path, gw)


@pytest.mark.parametrize("field", sorted(ROOT_FIELDS))
def test_a_routing_code_on_the_root_rejects_the_file(
    tmp_path: Path, gw: Gateway, field: str
) -> None:
    """Every steering value in a file-level routing code (a root attribute): the whole file is
    SCHEMA_INVALID (NOT_WELL_FORMED for characters XML cannot carry), nothing else is written."""
    for name, value in steering(tmp_path).items():
        channel, text = ROOT_FIELDS[field](value)
        stem = f"{field}-{name}"
        status = gw.process(channel, f"{stem}.xml", text.encode("utf-8"), AS_OF)
        root = ack(gw, stem)
        assert status == "rejected", stem
        assert file_codes(root) == {expected(value, record=False, element=False)}, stem
        assert root.find(f"{ACK}Outcome") is None
    assert_nothing_outside(tmp_path, gw)


def test_the_good_placement_beside_a_refused_one_is_loaded(tmp_path: Path, gw: Gateway) -> None:
    """The record next to a refused routing code is loaded as usual: one applicant in RGT's
    load, none anywhere else."""
    channel, text = placements_dpn("../..")
    assert gw.process(channel, "mixed.xml", text, AS_OF) == "processed"
    assert record_codes(ack(gw, "mixed"))["1"] == ("loaded", None)
    loads = gw.outbox("esr/**/*.xml")
    assert [p.parent.name for p in loads] == ["RGT"]
    assert_nothing_outside(tmp_path, gw)


def test_output_path_refuses_anything_but_plain_codes(tmp_path: Path) -> None:
    """Defence in depth: the one function that makes paths from codes refuses every steering
    value (as a file rejection with INVALID_ROUTING_CODE) and a name with a separator."""
    root = tmp_path / "outbox"
    root.mkdir()
    assert output_path(root, "tis", "EOE", name="positions-RGT-2026-11-02.xml") == (
        root / "tis" / "EOE" / "positions-RGT-2026-11-02.xml"
    )
    for value in steering(tmp_path).values():
        with pytest.raises(UnsafePath) as caught:
            output_path(root, "tis", value, name="x.xml")
        assert isinstance(caught.value, RejectedFile)
        assert [e.code for e in caught.value.errors] == [INVALID_ROUTING_CODE]
    for name in ("../x.xml", "a/b.xml", "..", ".hidden", ""):
        with pytest.raises(UnsafePath):
            output_path(root, "tis", "EOE", name=name)
    (root / "tis").mkdir()
    (root / "tis" / "EVIL").symlink_to(tmp_path)
    with pytest.raises(UnsafePath):
        output_path(root, "tis", "EVIL", name="x.xml")


def test_the_rules_refuse_a_stored_code_that_is_not_plain(tmp_path: Path) -> None:
    """A position stored before the XSDs held codes to the pattern (or one that bypassed them)
    is refused by the rules themselves: both the body and the DPN's first segment count."""
    for value in steering(tmp_path).values():
        assert deanery_refusal(value, None) is not None
        assert deanery_refusal(None, f"{value}/X/001") is not None
        position = Position(9, "P9", "FY1", date(2020, 1, 1), "Active", "Single",
                            date(2026, 1, 1), dpn=f"{value}/X/001")
        assert routing_refusal(position) is not None
    assert deanery_refusal("EOE", DPN) is None
