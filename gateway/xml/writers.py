"""Outbound documents (spec section 5), streamed to a binary file as they are written.

Each writer takes the open file and plain values; it never decides anything.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, Generic, TypeVar

from lxml import etree

from gateway.errors import FileError
from gateway.models import (
    Address,
    ApplicantRecord,
    CheckRecord,
    Notice,
    Outcome,
    Position,
    Totals,
    quick_init,
)

NS = {
    "ack": "urn:dit-gateway:ack:1",
    "notifications": "urn:dit-gateway:notifications:1",
    "position-extract": "urn:dit-gateway:tis:position-extract:1",
    "person-update": "urn:dit-gateway:tis:person-update:1",
    "applicant-load": "urn:dit-gateway:esr:applicant-load:1",
    "check-load": "urn:dit-gateway:esr:check-load:1",
    "placement-confirmations": "urn:dit-gateway:tis:placement-confirmations:1",
}


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# The same characters in a chunk's UTF-8: the control bytes (never part of a multi-byte
# character) are found by deleting every other byte, U+FFFE and U+FFFF by their encodings (in
# a chunk that is not all ASCII, which Python knows without reading it). Both run in C at under
# a nanosecond a byte; the expression takes ~4.4 ns a character.
_OTHER_BYTES = bytes(b for b in range(256) if b >= 0x20 or b in (0x09, 0x0A, 0x0D))
_NON_CHARACTERS = ("\ufffe".encode(), "\uffff".encode())
_FLUSH_AT = 4096  # pieces buffered before they are checked, encoded and written


_TEXT_ENTITIES = {"\r": "&#13;"}  # a parser would turn it into \n
# In an attribute a parser would also normalise whitespace to spaces.
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def escape(value: str, entities: Mapping[str, str]) -> str:
    """``&``, ``<`` and ``>`` escaped, then each of ``entities`` (what ``xml.sax.saxutils``'s
    escape does; that module would bring ``urllib`` and ``email`` into every command's start)."""
    value = value.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
    for char, entity in entities.items():
        value = value.replace(char, entity)
    return value


def _refuse_unwritable(text: str) -> None:
    """ValueError naming the first character of ``text`` that XML cannot carry, if any."""
    bad = _NOT_XML.search(text)
    if bad:
        raise ValueError(f"character U+{ord(bad.group()):04X} cannot be written in XML")


def _text(value: str) -> str:
    """Character data, escaped (most values need nothing: that is checked first, it is faster
    than escaping)."""
    if "&" in value or "<" in value or ">" in value or "\r" in value:
        return escape(value, _TEXT_ENTITIES)
    return value


def _attr(value: str) -> str:
    """An attribute value between double quotes, escaped."""
    if ("&" in value or "<" in value or ">" in value or '"' in value or "\n" in value
            or "\r" in value or "\t" in value):
        return escape(value, _ATTR_ENTITIES)
    return value


def _opt_leaf(name: str, value: str | None) -> str:
    """``<name>value</name>``, or nothing for None (as :meth:`_Doc.leaves`)."""
    return "" if value is None else f"<{name}>{_text(value)}</{name}>"


def _opt_attr(name: str, value: str | None) -> str:
    """`` name="value"``, or nothing for an empty value."""
    return f' {name}="{_attr(value)}"' if value else ""


def _start(name: str, attrs: Mapping[str, str | None]) -> str:
    return name + "".join(f' {k}="{_attr(v)}"' for k, v in attrs.items() if v is not None)


class _Doc:
    """The body of a document being written: elements in the root's default namespace.

    Markup is produced as text (escaped here, checked for characters XML cannot carry) and
    written in chunks as it goes, so that memory stays flat whatever the number of records:
    building an lxml element per field cost more than everything else a flow does with a
    record (docs/performance.md).
    """

    def __init__(self, fh: BinaryIO, ns: str) -> None:
        self.fh = fh
        self.ns = ns
        self._pieces: list[str] = []
        self._depth = 0

    @property
    def _eol(self) -> str:
        """What ends an element: a line break between records, nothing inside one."""
        return "" if self._depth else "\n"

    def _put(self, piece: str) -> None:
        self._pieces.append(piece)
        if len(self._pieces) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered; a character XML cannot carry is refused, not written."""
        chunk = "".join(self._pieces)
        self._pieces.clear()
        try:
            data = chunk.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (a ValueError): another is named first
            _refuse_unwritable(chunk)
            raise
        if data.translate(None, _OTHER_BYTES) or (
                not chunk.isascii() and any(c in data for c in _NON_CHARACTERS)):
            _refuse_unwritable(chunk)
        self.fh.write(data)

    def leaf(self, name: str, value: object | None, **attrs: str | None) -> None:
        """``<name>value</name>``, or nothing when value is None."""
        if value is None:
            return
        start = _start(name, attrs) if attrs else name
        self._put(f"<{start}>{_text(str(value))}</{name}>{self._eol}")

    def leaves(self, pairs: Iterable[tuple[str, object | None]]) -> None:
        """Leaves in order, those whose value is None left out."""
        self._put("".join(f"<{name}>{_text(str(value))}</{name}>"
                          for name, value in pairs if value is not None))

    def write(self, element: Any) -> None:
        """Append a finished lxml element; its tags are taken into this document's namespace
        (it is written without a namespace of its own, inside the root's default one)."""
        for node in element.iter():
            if isinstance(node.tag, str):
                node.tag = etree.QName(node).localname
        etree.cleanup_namespaces(element)
        text = etree.tostring(element, encoding="unicode", with_tail=False)
        self._put(text + self._eol)

    @contextmanager
    def element(self, name: str, attrs: Mapping[str, str | None] | None = None) -> Iterator[None]:
        self.open(name, attrs)
        try:
            yield
        finally:
            self._depth -= 1
        self._put(f"</{name}>{self._eol}")

    def open(self, name: str, attrs: Mapping[str, str | None] | None = None) -> None:
        """Start an element that :meth:`close` ends: :meth:`element` without a generator, for
        the records of a national file (a third of a microsecond each)."""
        self._put(f"<{_start(name, attrs) if attrs else name}>")
        self._depth += 1

    def close(self, name: str) -> None:
        """End the element :meth:`open` started."""
        self._depth -= 1
        self._put(f"</{name}>{self._eol}")

    def address(self, address: Address | None) -> None:
        if address is None:
            return
        with self.element("Address"):
            self.leaves(
                [
                    ("Line1", address.line1),
                    ("Line2", address.line2),
                    ("Line3", address.line3),
                    ("Town", address.town),
                    ("County", address.county),
                    ("Postcode", address.postcode),
                    ("Country", address.country),
                ]
            )


def _head(kind: str, root: str, attrs: Mapping[str, str | None]) -> str:
    root_tag = _start(root, {"xmlns": NS[kind], **attrs})
    return f"<?xml version='1.0' encoding='utf-8'?>\n<{root_tag}>\n"


@contextmanager
def document(
    fh: BinaryIO, kind: str, root: str, attrs: Mapping[str, str | None]
) -> Iterator[_Doc]:
    """Open an XML document of ``kind`` with its root element; yields a writer for its body.
    The document is finished (root closed, everything written) only when the block ends
    without an exception."""
    doc = _Doc(fh, NS[kind])
    doc._put(_head(kind, root, attrs))
    yield doc
    doc._put(f"</{root}>\n")
    doc.flush()


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Parts(Generic[T]):
    """A document written a piece at a time, as its records are decided (issue 13): ``head``,
    then ``body`` appending each batch of records, then ``tail``. The bytes are those the
    document's one-call writer gives for all the records at once."""

    head: bytes
    body: Callable[[BinaryIO, Iterable[T]], None]
    tail: bytes = b""


def _parts(kind: str, root: str, attrs: Mapping[str, str | None],
           rows: Callable[[_Doc, Iterable[T]], None]) -> Parts[T]:
    head = io.BytesIO()
    doc = _Doc(head, NS[kind])
    doc._put(_head(kind, root, attrs))
    doc.flush()  # checked as every chunk is
    return Parts(head.getvalue(), partial(_body, NS[kind], rows), f"</{root}>\n".encode())


def _body(ns: str, rows: Callable[[_Doc, Iterable[T]], None], fh: BinaryIO,
          records: Iterable[T]) -> None:
    doc = _Doc(fh, ns)
    rows(doc, records)
    doc.flush()


@dataclass(frozen=True, slots=True)
class AckHeader:
    """What the acknowledgement says about the file as a whole."""

    file: str
    sha256: str
    received_at: str
    channel: str
    status: str
    generated_at: str
    duplicate_of: str | None = None
    stored_as: str | None = None


def write_ack(
    fh: BinaryIO,
    header: AckHeader,
    errors: Iterable[FileError],
    outcomes: Iterable[Outcome],
    totals: Totals,
    body: BinaryIO | None = None,
) -> None:
    """An acknowledgement: errors, totals that add up, then one outcome per record — the
    ``outcomes``, then what ``body`` holds (outcomes written by :func:`outcome_rows`, from
    its start)."""
    attrs = {
        "file": header.file,
        "sha256": header.sha256,
        "receivedAt": header.received_at,
        "channel": header.channel,
        "status": header.status,
        "generatedAt": header.generated_at,
        "duplicateOf": header.duplicate_of,
        "storedAs": header.stored_as if header.stored_as != header.file else None,
    }
    with document(fh, "ack", "Acknowledgement", attrs) as doc:
        for e in errors:
            doc.leaf(
                "Error",
                e.message,
                code=e.code,
                line=None if e.line is None else str(e.line),
                column=None if e.column is None else str(e.column),
            )
        counts = {
            "received": totals.received,
            "loaded": totals.loaded,
            "updated": totals.updated,
            "withdrawn": totals.withdrawn,
            "deferred": totals.deferred,
            "unchanged": totals.unchanged,
            "rejected": totals.rejected,
        }
        doc.leaf("Totals", "", **{k: str(v) for k, v in counts.items()})
        _outcomes(doc, outcomes)
        if body is not None:
            doc.flush()
            body.seek(0)
            shutil.copyfileobj(body, fh, 1024 * 1024)


def _outcomes(doc: _Doc, outcomes: Iterable[Outcome]) -> None:
    put = doc._put
    for o in outcomes:
        reason = "" if o.reason is None else f' reason="{_attr(o.reason)}"'
        vpd = "" if o.vpd is None else f' vpd="{_attr(o.vpd)}"'
        put(f'<Outcome recordId="{_attr(o.record_id)}" result="{_attr(o.result.value)}"'
            f"{reason}{vpd}>{_text(o.text)}</Outcome>\n")


def outcome_rows(fh: BinaryIO, outcomes: Iterable[Outcome]) -> None:
    """Append acknowledgement ``Outcome`` elements, for :func:`write_ack`'s ``body``."""
    doc = _Doc(fh, NS["ack"])
    _outcomes(doc, outcomes)
    doc.flush()


NOTICE_FIELDS = (
    "type",
    "placementId",
    "deaneryPostNumber",
    "positionNumber",
    "trainee",
    "oldValue",
    "newValue",
    "reason",
    "text",
)


def _notifications_attrs(vpd: str, generated_at: str, source_file: str | None,
                         source_sha256: str | None) -> dict[str, str | None]:
    return {
        "vpd": vpd,
        "generatedAt": generated_at,
        "sourceFile": source_file,
        "sourceSha256": source_sha256,
    }


def _notifications(doc: _Doc, notices: Iterable[Notice]) -> None:
    # The attributes in NOTICE_FIELDS' order, empty ones left out; spelled out, as a
    # first load of a national register notifies every one of 100,000 new DPNs.
    put = doc._put
    for n in notices:
        put(
            f'<Notification type="{_attr(n.type.value)}"'
            f"{_opt_attr('placementId', n.placement_id)}"
            f"{_opt_attr('deaneryPostNumber', n.dpn)}"
            f"{_opt_attr('positionNumber', n.position_number)}"
            f"{_opt_attr('trainee', n.trainee)}"
            f"{_opt_attr('oldValue', n.old_value)}"
            f"{_opt_attr('newValue', n.new_value)}"
            f"{_opt_attr('reason', n.reason)}"
            f">{_text(n.text or '')}</Notification>\n"
        )


def write_notifications(
    fh: BinaryIO,
    vpd: str,
    notices: Iterable[Notice],
    generated_at: str,
    source_file: str | None = None,
    source_sha256: str | None = None,
) -> None:
    """MSO notifications of one VPD as XML."""
    attrs = _notifications_attrs(vpd, generated_at, source_file, source_sha256)
    with document(fh, "notifications", "Notifications", attrs) as doc:
        _notifications(doc, notices)


def notifications_parts(vpd: str, generated_at: str, source_file: str | None = None,
                        source_sha256: str | None = None) -> Parts[Notice]:
    """:func:`write_notifications` a piece at a time."""
    attrs = _notifications_attrs(vpd, generated_at, source_file, source_sha256)
    return _parts("notifications", "Notifications", attrs, _notifications)


def _csv_rows(notices: Iterable[Notice]) -> Iterator[tuple[str, ...]]:
    return (
        (n.type.value, n.placement_id or "", n.dpn or "", n.position_number or "",
         n.trainee or "", n.old_value or "", n.new_value or "", n.reason or "", n.text or "")
        for n in notices
    )


def _write_csv(fh: BinaryIO, rows: Iterable[Sequence[str]]) -> None:
    """Rows as CSV, CRLF-ended, exactly as the csv module writes them (minimal quoting). A row
    whose fields hold no comma, quote or line break needs no quoting: it is joined here, three
    times faster than the csv module (a first load of a national register notifies 100,000
    new DPNs); any other row, and a row of one field, goes through the csv module."""
    text = io.StringIO(newline="")
    careful = csv.writer(text, lineterminator="\r\n")
    put = text.write
    for row in rows:
        line = ",".join(row)
        if (len(row) > 1 and line.count(",") == len(row) - 1 and '"' not in line
                and "\n" not in line and "\r" not in line):
            put(line + "\r\n")
        else:
            careful.writerow(row)
    fh.write(text.getvalue().encode("utf-8"))


def _csv_body(fh: BinaryIO, notices: Iterable[Notice]) -> None:
    _write_csv(fh, _csv_rows(notices))


def write_notifications_csv(fh: BinaryIO, notices: Iterable[Notice]) -> None:
    """The same notification rows as CSV (UTF-8, header row, one row per notification)."""
    _write_csv(fh, [NOTICE_FIELDS, *_csv_rows(notices)])


def notifications_csv_parts() -> Parts[Notice]:
    """:func:`write_notifications_csv` a piece at a time."""
    head = io.BytesIO()
    _write_csv(head, [NOTICE_FIELDS])
    return Parts(head.getvalue(), _csv_body)


@quick_init
@dataclass(frozen=True, slots=True)
class ExtractPost:
    """A post as it goes to TIS: the position and whether its DPN is duplicated; ``text``:
    the position's :func:`post_text`, if it was made already (by the look-ahead reader)."""

    position: Position
    duplicate: bool
    text: str | None = None


def post_text(p: Position) -> str:
    """A position's ``<Post>`` in a TIS position extract, all but its ``<Duplicate>`` flag and
    end tag (the one thing the rules decide)."""
    scales = "".join(f"<Payscale>{_text(scale)}</Payscale>" for scale in p.payscales)
    ends = None if p.effective_to is None else p.effective_to.isoformat()
    return (
        f"<Post>{_opt_leaf('DeaneryPostNumber', p.dpn)}"
        f"<PositionNumber>{_text(p.position_number)}</PositionNumber>"
        f"<PositionName>{_text(p.position_name)}</PositionName>"
        f"<EsrPositionId>{p.esr_position_id}</EsrPositionId>"
        f"{_opt_leaf('HostLeadFlag', p.host_lead_flag)}"
        f"{_opt_leaf('ManagingDeaneryBody', p.managing_deanery_body)}"
        f"{_opt_leaf('WorkplaceOrgCode', p.workplace_org_code)}"
        f"{_opt_leaf('OccupationCode', p.occupation_code)}{scales}"
        f"<PositionType>{_text(p.position_type)}</PositionType>"
        f"<EffectiveFromDate>{p.effective_from.isoformat()}</EffectiveFromDate>"
        f"{_opt_leaf('EffectiveToDate', ends)}"
    )


_DUPLICATE = {True: "<Duplicate>true</Duplicate></Post>\n",
              False: "<Duplicate>false</Duplicate></Post>\n"}


def write_position_extract(
    fh: BinaryIO,
    deanery: str,
    vpd: str,
    extract_date: str,
    generated_at: str,
    posts: Iterable[ExtractPost],
) -> None:
    """A TIS position extract for one (deanery, VPD)."""
    attrs = {
        "deanery": deanery,
        "vpd": vpd,
        "extractDate": extract_date,
        "generatedAt": generated_at,
    }
    with document(fh, "position-extract", "PositionExtract", attrs) as doc:
        put = doc._put
        for post in posts:
            text = post.text
            put((post_text(post.position) if text is None else text) + _DUPLICATE[post.duplicate])


def write_person_update(
    fh: BinaryIO,
    deanery: str,
    vpd: str,
    extract_date: str,
    kind: str,
    generated_at: str,
    rows: Iterable[Any],
) -> None:
    """A TIS person update for one (deanery, VPD); rows are ``rules.persons.PersonRow``."""
    attrs = {
        "deanery": deanery,
        "vpd": vpd,
        "extractDate": extract_date,
        "type": kind,
        "generatedAt": generated_at,
    }
    with document(fh, "person-update", "PersonUpdate", attrs) as doc:
        for row in rows:
            p = row.person
            doc.open("Person", {"esrPersonId": p.esr_person_id})
            doc.leaves(
                [
                    ("DeaneryPostNumber", row.dpn),
                    ("PositionNumber", row.position_number),
                    ("Title", p.title),
                    ("Forenames", p.forenames),
                    ("Surname", p.surname),
                    ("PreviousSurname", p.previous_surname),
                    ("KnownAs", p.known_as),
                    ("DateOfBirth", p.date_of_birth.isoformat()),
                    ("Gender", p.gender),
                    ("NationalInsuranceNumber", p.nino),
                    ("EthnicOrigin", p.ethnic_origin),
                    ("Email", p.email),
                    ("HomePhone", p.home_phone),
                    ("MobilePhone", p.mobile_phone),
                ]
            )
            doc.address(p.address)
            doc.leaf("GmcNumber", p.gmc_number)
            for absence in p.absences:
                with doc.element("Absence"):
                    doc.leaves(
                        [
                            ("Type", absence.type),
                            ("StartDate", absence.start_date.isoformat()),
                            ("EndDate", absence.end_date.isoformat()
                             if absence.end_date else None),
                        ]
                    )
            doc.close("Person")


def _load_attrs(vpd: str, generated_at: str, source_file: str,
                source_sha256: str) -> dict[str, str | None]:
    return {
        "vpd": vpd,
        "generatedAt": generated_at,
        "sourceFile": source_file,
        "sourceSha256": source_sha256,
    }


def write_applicant_load(
    fh: BinaryIO,
    vpd: str,
    generated_at: str,
    source_file: str,
    source_sha256: str,
    records: Iterable[ApplicantRecord],
) -> None:
    """An ESR applicant load for one VPD."""
    attrs = _load_attrs(vpd, generated_at, source_file, source_sha256)
    with document(fh, "applicant-load", "ApplicantLoad", attrs) as doc:
        _applicants(doc, records)


def applicant_load_parts(vpd: str, generated_at: str, source_file: str,
                         source_sha256: str) -> Parts[ApplicantRecord]:
    """:func:`write_applicant_load` a piece at a time."""
    attrs = _load_attrs(vpd, generated_at, source_file, source_sha256)
    return _parts("applicant-load", "ApplicantLoad", attrs, _applicants)


def _applicants(doc: _Doc, records: Iterable[ApplicantRecord]) -> None:
    for r in records:
        p = r.placement
        t = p.trainee
        doc.open("Applicant", {"placementId": r.placement_id, "action": r.action})
        doc._put(  # one string a record (42,000 of them in a national rotation)
            f"<ApplicantStatus>{APPLICANT_STATUS}</ApplicantStatus>"
            f"{_opt_leaf('ExistingEsrPersonId', r.existing_esr_person_id)}"
            f"<EmployerRole>{_text(r.employer_role)}</EmployerRole>"
            f"<PositionNumber>{_text(r.position_number)}</PositionNumber>"
            f"<DeaneryPostNumber>{_text(r.dpn)}</DeaneryPostNumber>"
            f"<ProjectedHireDate>{p.start.isoformat()}</ProjectedHireDate>"
            f"<ProjectedEndDate>{p.end.isoformat()}</ProjectedEndDate>"
            f"<WholeTimeEquivalent>{_text(p.wte)}</WholeTimeEquivalent>"
            f"<Grade>{_text(p.grade)}</Grade>"
            f"<Specialty>{_text(p.specialty)}</Specialty>"
            f"<PlacementType>{_text(p.placement_type)}</PlacementType>"
            f"<Forenames>{_text(t.forenames)}</Forenames>"
            f"<Surname>{_text(t.surname)}</Surname>"
            f"<DateOfBirth>{t.date_of_birth.isoformat()}</DateOfBirth>"
            f"<Gender>{_text(t.gender)}</Gender>"
            f"{_opt_leaf('NationalInsuranceNumber', t.nino)}"
            f"<GmcNumber>{_text(t.gmc_number)}</GmcNumber>"
            f"{_opt_leaf('Email', t.email)}"
            f"{_opt_leaf('MobilePhone', t.mobile_phone)}"
        )
        doc.address(t.address)
        if r.changed:
            with doc.element("Changed"):
                for name in r.changed:
                    doc.leaf("Field", name)
        doc.close("Applicant")


APPLICANT_STATUS = "Preferred Applicant"


CheckTransferRow = tuple[str, str, Iterable[CheckRecord]]  # placementId, tracApplicantId, checks


def write_check_load(
    fh: BinaryIO,
    vpd: str,
    generated_at: str,
    source_file: str,
    source_sha256: str,
    transfers: Iterable[CheckTransferRow],
) -> None:
    """An ESR check load: per applicant (placementId, tracApplicantId, checks) the eligible
    check records exactly as received, moved into the check-load namespace."""
    attrs = _load_attrs(vpd, generated_at, source_file, source_sha256)
    with document(fh, "check-load", "CheckLoad", attrs) as doc:
        _check_transfers(doc, transfers)


def check_load_parts(vpd: str, generated_at: str, source_file: str,
                     source_sha256: str) -> Parts[CheckTransferRow]:
    """:func:`write_check_load` a piece at a time."""
    attrs = _load_attrs(vpd, generated_at, source_file, source_sha256)
    return _parts("check-load", "CheckLoad", attrs, _check_transfers)


def _check_transfers(doc: _Doc, transfers: Iterable[CheckTransferRow]) -> None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for placement_id, trac_id, checks in transfers:
        ids = {"placementId": placement_id, "tracApplicantId": trac_id}
        with doc.element("ApplicantChecks", ids):
            for check in checks:
                doc.write(etree.fromstring(check.xml, parser))


@quick_init
@dataclass(frozen=True, slots=True)
class ConfirmedPlacement:
    """One row of a TIS placement confirmation (spec 5.1)."""

    placement_id: str
    status: str  # "LOADED" | "FAILED"
    applicant_number: str | None = None
    message: str | None = None


def write_placement_confirmations(
    fh: BinaryIO,
    deanery: str,
    vpd: str,
    generated_at: str,
    source_file: str,
    source_sha256: str,
    rows: Iterable[ConfirmedPlacement],
) -> None:
    """TIS placement confirmations for one deanery: which placements ESR loaded or failed."""
    attrs = {
        "deanery": deanery,
        "vpd": vpd,
        "generatedAt": generated_at,
        "sourceFile": source_file,
        "sourceSha256": source_sha256,
    }
    with document(fh, "placement-confirmations", "PlacementConfirmations", attrs) as doc:
        for row in rows:
            with doc.element("Placement", {"placementId": row.placement_id,
                                           "status": row.status}):
                doc.leaves([("ApplicantNumber", row.applicant_number),
                            ("Message", row.message)])
