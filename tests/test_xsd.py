"""The XSDs of ``xsd/`` (spec sections 4 and 5) against the samples of ``tests/samples/``.

Every document has one good sample, which must validate, and broken variants of it, built here
by editing the sample's text, which must fail with an error on the line that was broken. The
"broken line" is the line of the first character that differs from the good sample, so each
variant breaks the document at a place where the validator reports it: a required element is
dropped from the middle of its parent (the validator then stops at the next sibling), and two
elements are swapped where the first of the new order cannot stand there.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

TESTS = Path(__file__).resolve().parent
XSD_DIR = TESTS.parent / "xsd"
SAMPLES = TESTS / "samples"
XS = "http://www.w3.org/2001/XMLSchema"

# document (the XSD's and the sample's stem) -> (namespace, root element)
DOCUMENTS: dict[str, tuple[str, str]] = {
    "esr-positions": ("urn:dit-gateway:esr:positions:1", "PositionExtract"),
    "esr-persons": ("urn:dit-gateway:esr:persons:1", "PersonExtract"),
    "tis-placements": ("urn:dit-gateway:tis:placements:1", "PlacementFile"),
    "trac-checks": ("urn:dit-gateway:trac:checks:1", "CheckFile"),
    "esr-applicant-load": ("urn:dit-gateway:esr:applicant-load:1", "ApplicantLoad"),
    "esr-check-load": ("urn:dit-gateway:esr:check-load:1", "CheckLoad"),
    "tis-position-extract": ("urn:dit-gateway:tis:position-extract:1", "PositionExtract"),
    "tis-person-update": ("urn:dit-gateway:tis:person-update:1", "PersonUpdate"),
    "ack": ("urn:dit-gateway:ack:1", "Acknowledgement"),
    "notifications": ("urn:dit-gateway:notifications:1", "Notifications"),
    "esr-applicant-confirmation": (
        "urn:dit-gateway:esr:applicant-confirmation:1", "LoadConfirmation"),
    "tis-placement-confirmations": (
        "urn:dit-gateway:tis:placement-confirmations:1", "PlacementConfirmations"),
}
INBOUND = (
    "esr-positions", "esr-persons", "tis-placements", "trac-checks", "esr-applicant-confirmation"
)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@functools.cache
def _schema(document: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_DIR / f"{document}.xsd"), _parser()))


def _sample(document: str) -> str:
    return (SAMPLES / f"{document}.xml").read_text(encoding="utf-8")


def _errors(document: str, text: str) -> list[etree._LogEntry]:
    """The schema errors of ``text`` against the document's XSD (empty when valid)."""
    schema = _schema(document)
    root = etree.fromstring(text.encode("utf-8"), _parser())
    if schema.validate(root):
        return []
    return list(schema.error_log)


def _first_difference_line(good: str, broken: str) -> int:
    """1-based line of ``broken`` holding the first character that differs from ``good``."""
    at = next((i for i, (a, b) in enumerate(zip(good, broken, strict=False)) if a != b), len(good))
    return broken.count("\n", 0, at) + 1


@dataclass(frozen=True, slots=True)
class Broken:
    """A broken variant of a document's good sample: ``pattern`` (matching once) → ``repl``."""

    document: str
    flaw: str
    pattern: str
    repl: str

    def apply(self, text: str) -> str:
        broken, count = re.subn(self.pattern, lambda m: m.expand(self.repl), text)
        assert count == 1, f"{self.document}/{self.flaw}: pattern matched {count} times"
        return broken

    @property
    def id(self) -> str:
        return f"{self.document}:{self.flaw}"


def replace(document: str, flaw: str, old: str, new: str) -> Broken:
    """Replace the text ``old`` (found once) with ``new``."""
    return Broken(document, flaw, re.escape(old), new.replace("\\", "\\\\"))


def drop(document: str, line: str) -> Broken:
    """Drop the whole line that starts with ``line`` (an element that is required, not last)."""
    tag = re.match(r"<(\w+)", line)
    assert tag is not None
    return Broken(
        document, f"missing {tag.group(1)}", r"\n[ \t]*" + re.escape(line) + r"[^\n]*(?=\n)", ""
    )


def swap(document: str, first: str, second: str) -> Broken:
    """Swap two adjacent lines, starting with ``first`` and ``second`` (one element each)."""
    return Broken(
        document,
        "wrong order",
        "(" + re.escape(first) + r"[^\n]*)(\s*)(" + re.escape(second) + r"[^\n]*)",
        r"\3\2\1",
    )


BROKEN: tuple[Broken, ...] = (
    # ---- ESR position extract (4.1)
    drop("esr-positions", "<PositionName>ST3 Cardiology</PositionName>"),
    replace("esr-positions", "wrong HiringStatus", ">Frozen<", ">Closed<"),
    replace("esr-positions", "bad date", ">2027-03-31<", ">31/03/2027<"),
    swap("esr-positions", "<HiringStatus>Proposed<", "<PositionType>Shared<"),
    replace("esr-positions", "wrong type", 'type="full"', 'type="partial"'),
    replace("esr-positions", "16-digit esrPositionId", '"100004630"', '"1000046300000000"'),
    replace("esr-positions", "11-digit PositionNumber", ">4701<", ">12345678901<"),
    replace("esr-positions", "lower-case vpd", 'vpd="RGT"', 'vpd="rgt"'),
    replace("esr-positions", "BudgetedFte over 999.99", ">2.50<", ">1000.00<"),
    # ---- ESR person extract (4.2)
    drop("esr-persons", "<Surname>Whitfield</Surname>"),
    replace("esr-persons", "wrong Assignment Status", ">Terminated<", ">Left<"),
    replace("esr-persons", "bad date", ">1996-01-29<", ">1996-02-30<"),
    swap("esr-persons", "<Status>Active</Status>", "<Honorary>false</Honorary>"),
    replace("esr-persons", "Honorary as 1", "<Honorary>true<", "<Honorary>1<"),
    replace("esr-persons", "wrong Absence Type", "<Type>Adoption<", "<Type>Holiday<"),
    replace("esr-persons", "date with a zone", '"2027-04-30"', '"2027-04-30Z"'),
    # ---- TIS placement file (4.3)
    drop("tis-placements", "<Grade>ST3</Grade>"),
    replace("tis-placements", "wrong PlacementType", ">LAT<", ">Locum<"),
    replace("tis-placements", "bad date", ">2027-06-02</Projected", ">2027-13-02</Projected"),
    swap("tis-placements", "<Forenames>Hannah<", "<Surname>Kowalczyk<"),
    replace("tis-placements", "wrong action", 'action="withdraw"', 'action="delete"'),
    replace("tis-placements", "6-digit GmcNumber", ">7234567<", ">723456<"),
    replace("tis-placements", "WholeTimeEquivalent over 1", ">0.6<", ">1.5<"),
    replace("tis-placements", "time without zone", "06:15:00Z", "06:15:00"),
    # ---- Trac employment-check file (4.4)
    drop("trac-checks", "<IssueDate>2025-07-14</IssueDate>"),
    replace("trac-checks", "wrong DisclosureLevel", ">Enhanced</Disc", ">Full</Disc"),
    replace("trac-checks", "bad date", ">2027-06-18</VerifiedDate>", ">18/06/2027</VerifiedDate>"),
    swap("trac-checks", "<RefereeName>Mr Rajesh Pillai<", "<Organisation>Norfolk"),
    replace("trac-checks", "missing vpd", ' vpd="RGT">\n    <Status>Cond', '>\n    <Status>Cond'),
    replace("trac-checks", "wrong EuStatus", ">Pre-Settled<", ">Settled Status<"),
    # ---- ESR applicant load (5)
    drop("esr-applicant-load", "<EmployerRole>Host</EmployerRole>"),
    replace("esr-applicant-load", "wrong action", 'action="withdraw"', 'action="cancel"'),
    replace("esr-applicant-load", "bad date", ">2027-06-02<", ">2027-06-02T00:00:00<"),
    swap("esr-applicant-load", "<Grade>F1<", "<Specialty>General (Internal) Medicine<"),
    replace("esr-applicant-load", "Field not a name", ">ProjectedEndDate</", ">End date</"),
    replace("esr-applicant-load", "upper-case sha256", '="10140df1', '="10140DF1'),
    replace("esr-applicant-load", "wrong EmployerRole", ">Host</Employer", ">Guest</Employer"),
    # ---- ESR check load (5)
    drop("esr-check-load", "<DisclosureLevel>Enhanced</DisclosureLevel>"),
    replace("esr-check-load", "wrong DBS Outcome", ">Information Disclosed<", ">Disclosed<"),
    replace("esr-check-load", "bad date", ">2025-07-14<", ">2025-7-14<"),
    swap("esr-check-load", "<Body>GMC</Body>", "<RegistrationNumber>7234567<"),
    replace("esr-check-load", "missing sourceFile", ' sourceFile="trac-checks.xml"', ""),
    # ---- TIS position extract (5)
    drop("tis-position-extract", "<PositionName>ST3 Cardiology (rota B)</PositionName>"),
    replace("tis-position-extract", "wrong PositionType", ">Shared<", ">Split<"),
    replace("tis-position-extract", "bad date", ">2028-08-01<", ">2028-08-32<"),
    swap("tis-position-extract", "<DeaneryPostNumber>EOE/RGT00/021/", "<PositionNumber>4512<"),
    replace("tis-position-extract", "Duplicate not boolean", ">false</Dup", ">no</Dup"),
    replace("tis-position-extract", "missing generatedAt",
            ' generatedAt="2027-04-30T22:05:41+00:00"', ""),
    # ---- TIS person update (5)
    drop("tis-person-update", "<PositionNumber>4630</PositionNumber>"),
    replace("tis-person-update", "wrong type", 'type="delta"', 'type="partial"'),
    replace("tis-person-update", "bad date", 'Date="2027-04-30"', 'Date="30-04-2027"'),
    swap("tis-person-update", "<Forenames>Thomas<", "<Surname>Whitfield<"),
    replace("tis-person-update", "wrong Gender", "<Gender>M<", "<Gender>Male<"),
    # ---- acknowledgement (5)
    drop("ack", "<Totals "),
    replace("ack", "wrong status", 'status="processed"', 'status="done"'),
    replace("ack", "bad time", 'receivedAt="2027-07-01T16:', 'receivedAt="2027-07-01T25:'),
    swap("ack", "<Totals ", '<Outcome recordId="TRAC-2027-001842"'),
    replace("ack", "wrong reason", 'reason="NOT_RECRUITED"', 'reason="NOT_HIRED"'),
    replace("ack", "negative total", 'received="3"', 'received="-3"'),
    replace("ack", "missing result",
            'result="loaded" vpd="RGT">Checks loaded for placement P-884377',
            'vpd="RGT">Checks loaded for placement P-884377'),
    # ---- MSO notifications (5)
    replace("notifications", "missing type", '<Notification type="WITHDRAWAL" ', "<Notification "),
    replace("notifications", "wrong type", 'type="WITHDRAWAL"', 'type="WITHDRAWN"'),
    replace("notifications", "bad time", "2027-05-01T06:16:04+00:00", "2027-05-01 06:16:04"),
    replace("notifications", "child element", ">Projected end date changed.<",
            "><Text>Projected end date changed.</Text><"),
    # ---- ESR applicant load confirmation (4.5)
    replace("esr-applicant-confirmation", "wrong status", 'status="FAIL"', 'status="FAILED"'),
    replace("esr-applicant-confirmation", "wrong action", 'action="update"', 'action="upsert"'),
    replace("esr-applicant-confirmation", "unknown element",
            "<ApplicantNumber>APP-20270415-0107</ApplicantNumber>", "<Message>m</Message>"),
    replace("esr-applicant-confirmation", "wrong MessageType", ">ERROR<", ">FATAL<"),
    replace("esr-applicant-confirmation", "MessageText over 200",
            ">Applicant created.<", ">" + "x" * 201 + "<"),
    replace("esr-applicant-confirmation", "loadFile a path", 'loadFile="applicants-',
            'loadFile="../esr/RGT/applicants-'),
    replace("esr-applicant-confirmation", "processedAt without zone", "03:12:45+01:00",
            "03:12:45"),
    # ---- TIS placement confirmations (5.1)
    replace("tis-placement-confirmations", "wrong status", 'status="FAILED"', 'status="FAIL"'),
    replace("tis-placement-confirmations", "deanery not a code", 'deanery="EOE"',
            'deanery="../EOE"'),
    replace("tis-placement-confirmations", "missing sourceSha256", ' sourceSha256="5b1e',
            ' x="5b1e'),
    replace("tis-placement-confirmations", "Message before ApplicantNumber",
            "<ApplicantNumber>APP-20270502-0001</ApplicantNumber>",
            "<Message>m</Message><ApplicantNumber>APP-20270502-0001</ApplicantNumber>"),
)


# ------------------------------------------------------------------ the XSD files themselves


@pytest.mark.parametrize("document", DOCUMENTS)
def test_xsd_has_no_external_reference(document: str) -> None:
    """The XSD imports, includes and points at nothing: it is self-contained."""
    path = XSD_DIR / f"{document}.xsd"
    tree = etree.parse(str(path), _parser())
    assert tree.docinfo.doctype == ""
    for name in ("import", "include", "redefine", "override"):
        assert tree.findall(f".//{{{XS}}}{name}") == [], name
    for element in tree.iter():
        assert not any(etree.QName(a).localname == "schemaLocation" for a in element.attrib)
    text = path.read_text(encoding="utf-8")
    assert "schemaLocation" not in text
    assert re.findall(r"https?://[^\s\"'<>]+", text) == [XS]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_xsd_declares_namespace_forms_and_one_root(document: str) -> None:
    """The XSD has the spec's namespace, qualified elements, and only its root as global element."""
    namespace, root = DOCUMENTS[document]
    schema = etree.parse(str(XSD_DIR / f"{document}.xsd"), _parser()).getroot()
    assert schema.tag == f"{{{XS}}}schema"
    assert schema.get("targetNamespace") == namespace
    assert schema.get("elementFormDefault") == "qualified"
    assert schema.get("attributeFormDefault") == "unqualified"
    assert [e.get("name") for e in schema.findall(f"{{{XS}}}element")] == [root]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_xsd_compiles_as_xsd_1_0_with_xmlschema_too(document: str) -> None:
    """The second validator (xmlschema, XSD 1.0) compiles the XSD and accepts the good sample."""
    schema = xmlschema.XMLSchema10(str(XSD_DIR / f"{document}.xsd"))
    schema.validate(str(SAMPLES / f"{document}.xml"))


# ------------------------------------------------------------------ good samples


@pytest.mark.parametrize("document", DOCUMENTS)
def test_good_sample_validates(document: str) -> None:
    """The document's good sample is valid against its XSD."""
    assert _errors(document, _sample(document)) == []


@pytest.mark.parametrize("document", DOCUMENTS)
def test_sample_root_and_namespace(document: str) -> None:
    """The sample's root element and namespace are the ones the spec gives the document."""
    namespace, root = DOCUMENTS[document]
    tree = etree.parse(str(SAMPLES / f"{document}.xml"), _parser())
    assert tree.getroot().tag == f"{{{namespace}}}{root}"


@pytest.mark.parametrize("document", INBOUND)
def test_inbound_sample_uses_every_element_and_has_three_records(document: str) -> None:
    """An inbound sample holds at least three records and every element its XSD declares."""
    xsd = etree.parse(str(XSD_DIR / f"{document}.xsd"), _parser())
    declared = {e.get("name") for e in xsd.iter(f"{{{XS}}}element")}
    tree = etree.parse(str(SAMPLES / f"{document}.xml"), _parser())
    used = {etree.QName(e).localname for e in tree.iter() if isinstance(e.tag, str)}
    assert declared - used == set()
    assert len(tree.getroot()) >= 3


@pytest.mark.parametrize("document", DOCUMENTS)
def test_sample_is_not_valid_against_another_document(document: str) -> None:
    """A sample is valid against its own XSD only: the root and namespace decide the kind."""
    text = _sample(document)
    for other in DOCUMENTS:
        if other != document:
            assert _errors(other, text), other


# ------------------------------------------------------------------ broken variants


@pytest.mark.parametrize("broken", BROKEN, ids=lambda b: b.id)
def test_broken_variant_fails_on_the_broken_line(broken: Broken) -> None:
    """A broken variant of a good sample is invalid, with an error on the broken line."""
    good = _sample(broken.document)
    text = broken.apply(good)
    line = _first_difference_line(good, text)
    errors = _errors(broken.document, text)
    assert errors, "the broken variant validated"
    assert line > 0
    assert line in {e.line for e in errors}, [f"{e.line}: {e.message}" for e in errors]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_document_has_at_least_two_broken_variants(document: str) -> None:
    """Each document is tested with two or more broken variants."""
    assert sum(b.document == document for b in BROKEN) >= 2


# ------------------------------------------------------------------ decisions worth pinning


def test_check_load_rejects_identity() -> None:
    """Identity never travels to ESR: the check-load schema rejects it (spec 6.3 C4)."""
    good = _sample("esr-check-load")
    identity = (
        "\n      <Identity>\n        <DocumentType>Passport</DocumentType>\n"
        "        <DocumentNumber>502135326</DocumentNumber>\n"
        "        <CheckedDate>2027-06-11</CheckedDate>\n      </Identity>"
    )
    anchor = "<CheckedDate>2027-06-11</CheckedDate>\n    </EuStatus>"
    assert good.count(anchor) == 1
    text = good.replace(anchor, anchor + identity)
    errors = _errors("esr-check-load", text)
    line = _first_difference_line(good, text)
    assert line in {e.line for e in errors if "Identity" in e.message}


def test_trac_checks_accepts_identity() -> None:
    """The Trac file may carry Identity (it is accepted, then dropped by the gateway)."""
    good = _sample("trac-checks")
    assert "<Identity>" in good
    assert _errors("trac-checks", good) == []


def test_dbs_certificate_number_is_a_record_rule_not_a_schema_rule() -> None:
    """A DBS number of other than 12 digits leaves the file valid: rule C6 rejects one applicant."""
    good = _sample("trac-checks")
    assert _errors("trac-checks", good.replace(">009876543210<", ">DBS-98765<")) == []
    assert _errors("esr-check-load", _sample("esr-check-load").replace(">0012", ">A12")) == []


@pytest.mark.parametrize(
    ("document", "record"),
    [("tis-position-extract", "Post"), ("tis-person-update", "Person"),
     ("notifications", "Notification")],
)
def test_outbound_document_may_be_empty(document: str, record: str) -> None:
    """An extract, person update or notification file with no record at all is valid."""
    good = _sample(document)
    empty = re.sub(rf"\n  <{record}\b.*?</{record}>", "", good, flags=re.DOTALL)
    assert re.search(rf"<{record}\b", empty) is None
    assert _errors(document, empty) == []


def test_notifications_of_a_scheduled_job_have_no_source_file() -> None:
    """Notifications raised by a scheduled job carry no sourceFile and no sourceSha256."""
    good = _sample("notifications")
    text = re.sub(r' sourceFile="[^"]*" sourceSha256="[0-9a-f]{64}"', "", good)
    assert "sourceFile" not in text
    rejected = (
        '  <Notification type="REJECTED" placementId="P-884455" deaneryPostNumber='
        '"EOE/RGT00/093/STR/001" trainee="Baptiste, Marie" reason="START_TOO_SOON">'
        "Projected start is less than 2 days away: please direct-hire.</Notification>\n"
    )
    text = text.replace("</Notifications>", rejected + "</Notifications>")
    assert _errors("notifications", text) == []


def test_rejected_acknowledgement_lists_errors_before_totals() -> None:
    """A rejected file's acknowledgement: errors with code, line and column, zero totals."""
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Acknowledgement xmlns="urn:dit-gateway:ack:1" file="tis_placements.xml" '
        f'sha256="{"ab" * 32}" receivedAt="2027-05-01T06:15:02Z" channel="tis" '
        'status="rejected" generatedAt="2027-05-01T06:15:03Z">\n'
        '  <Error code="SCHEMA_INVALID" line="14" column="0">Element Grade: not expected.</Error>\n'
        '  <Error code="NOT_WELL_FORMED">Premature end of data.</Error>\n'
        '  <Totals received="0" loaded="0" updated="0" withdrawn="0" deferred="0" '
        'unchanged="0" rejected="0"/>\n'
        "</Acknowledgement>\n"
    )
    assert _errors("ack", text) == []
    assert _errors("ack", text.replace("SCHEMA_INVALID", "INVALID"))


def test_duplicate_acknowledgement_names_the_earlier_file() -> None:
    """A duplicate file's acknowledgement may name the earlier file in duplicateOf."""
    good = _sample("ack")
    text = good.replace('status="processed"', 'status="duplicate" duplicateOf="checks-0630.xml"')
    assert _errors("ack", text) == []
