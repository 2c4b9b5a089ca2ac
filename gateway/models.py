"""The records that travel, as plain immutable values (spec sections 4 and 5).

Readers build these from inbound XML; rules take them and return outcomes; writers turn outcomes
into outbound XML. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """A frozen, slotted dataclass given an ``__init__`` that sets each slot through its
    descriptor, as the generated one does through ``object.__setattr__``: same parameters,
    defaults and result, about half the time (a national file makes a few records of each
    kind per placement; 20 fields: 3.4 → 1.9 µs). Only for classes whose every field is a plain
    parameter: a default factory, ``init=False`` or ``__post_init__`` is refused at import."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init is for frozen, slotted dataclasses")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: quick_init cannot run __post_init__")
    namespace: dict[str, Any] = {}
    signature: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: quick_init takes plain fields only")
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(signature)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # noqa: S102 - the source is built from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    cls.__reduce__ = _reduce_by_init(cls)  # type: ignore[method-assign]
    return cls


def _reduce_by_init(cls: type[Any]) -> Any:
    """Pickle (and copy) a record as its class called with its fields, in order: built again
    through the quick ``__init__``. dataclasses' own state functions walk ``fields()`` per
    object: a large file's records, sent from the reader process (:mod:`gateway.reading`),
    took 0.5 s each way for 60,000 placements, 0.2 s this way."""
    names = [f.name for f in dataclasses.fields(cls)]
    if len(names) == 1:
        name = names[0]

        def reduce_one(self: Any) -> tuple[type[Any], tuple[Any, ...]]:
            return cls, (getattr(self, name),)

        return reduce_one
    values = operator.attrgetter(*names) if names else (lambda _self: ())

    def reduce(self: Any) -> tuple[type[Any], tuple[Any, ...]]:
        return cls, values(self)

    return reduce


@functools.lru_cache(maxsize=4096)
def shared(text: str) -> str:
    """``text``, as the first equal string seen lately: a value repeated across a large file
    (a day, a level, an outcome's text) is then one object, not one per record. A bounded cache,
    not :func:`sys.intern`, whose strings some Pythons never free (3.12 before the fix of
    CPython gh-113993, free-threaded builds): a daemon would keep every value a partner sent."""
    return text


class Channel(StrEnum):
    """Which partner a file came from (and which inbox folder holds it)."""

    ESR = "esr"
    TIS = "tis"
    TRAC = "trac"


class Result(StrEnum):
    """What happened to one record (acknowledgement ``Outcome/@result``)."""

    LOADED = "loaded"
    UPDATED = "updated"
    WITHDRAWN = "withdrawn"
    DEFERRED = "deferred"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class NoticeType(StrEnum):
    """MSO notification types (spec 6.4)."""

    READY_TO_HIRE = "READY_TO_HIRE"
    REJECTED = "REJECTED"
    CHANGE_OF_START_DATE = "CHANGE_OF_START_DATE"
    CHANGE_OF_END_DATE = "CHANGE_OF_END_DATE"
    WITHDRAWAL = "WITHDRAWAL"
    REPLACEMENT = "REPLACEMENT"
    NEW_DPN = "NEW_DPN"
    DUPLICATE_POSITION = "DUPLICATE_POSITION"
    POST_REMOVED = "POST_REMOVED"
    LOAD_FAILED = "LOAD_FAILED"
    LOAD_UNCONFIRMED = "LOAD_UNCONFIRMED"
    RESENT = "RESENT"


@quick_init
@dataclass(frozen=True, slots=True)
class Address:
    """A postal address (spec 4.2)."""

    line1: str
    line2: str | None = None
    line3: str | None = None
    town: str | None = None
    county: str | None = None
    postcode: str | None = None
    country: str | None = None


# --- ESR positions (4.1) -------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True)
class Position:
    """One ESR position of a VPD."""

    esr_position_id: int
    position_number: str
    position_name: str
    effective_from: date
    hiring_status: str
    position_type: str
    esr_last_update: date
    effective_to: date | None = None
    budgeted_fte: str | None = None
    subjective_code: str | None = None
    job_staff_group: str | None = None
    job_role: str | None = None
    occupation_code: str | None = None
    payscales: tuple[str, ...] = ()
    grade_step: str | None = None
    esr_organisation_id: str | None = None
    dpn: str | None = None
    managing_deanery_body: str | None = None
    host_lead_flag: str | None = None
    workplace_org_code: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Post:
    """What the person and placement rules need of a registered position (U1 and P1: on the
    interface; U3: its deanery; A6: host or lead; A7: single or shared): read from the register
    without the rest of the position, for every person extract of the VPD and every window of
    a placement file."""

    position_number: str
    hiring_status: str
    dpn: str | None = None
    effective_to: date | None = None
    managing_deanery_body: str | None = None
    position_type: str | None = None
    host_lead_flag: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class PositionExtract:
    """An inbound ESR position extract: header and its positions."""

    vpd: str
    extract_date: date
    type: str  # "full" | "delta"
    positions: tuple[Position, ...]


# --- ESR persons (4.2) ---------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True)
class Assignment:
    """A person's assignment to a position in the VPD."""

    assignment_number: str
    position_number: str
    status: str
    honorary: bool
    start_date: date
    projected_end_date: date | None = None
    end_date: date | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Absence:
    """A period of absence (maternity, sickness, …)."""

    type: str
    start_date: date
    end_date: date | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Person:
    """An ESR employee record of a VPD."""

    esr_person_id: str
    forenames: str
    surname: str
    date_of_birth: date
    gender: str
    assignments: tuple[Assignment, ...]
    title: str | None = None
    previous_surname: str | None = None
    known_as: str | None = None
    nino: str | None = None
    ethnic_origin: str | None = None
    email: str | None = None
    home_phone: str | None = None
    mobile_phone: str | None = None
    address: Address | None = None
    gmc_number: str | None = None
    absences: tuple[Absence, ...] = ()


@dataclass(frozen=True, slots=True)
class PersonMatch:
    """What A8 compares of an ESR person: the placement rules' candidates, decoded from the
    stored person without its assignments, absences and contact details (a third of the time
    of decoding the whole person)."""

    esr_person_id: str
    forenames: str
    surname: str
    date_of_birth: date
    nino: str | None = None
    gmc_number: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class PersonExtract:
    """An inbound ESR person extract."""

    vpd: str
    extract_date: date
    persons: tuple[Person, ...]


# --- TIS placements (4.3) ------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True)
class Trainee:
    """The trainee of a placement, as TIS sends it."""

    tis_person_id: str
    forenames: str
    surname: str
    date_of_birth: date
    gender: str
    gmc_number: str
    nino: str | None = None
    email: str | None = None
    mobile_phone: str | None = None
    address: Address | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Placement:
    """One placement of a trainee into a post."""

    placement_id: str
    action: str  # "upsert" | "withdraw"
    dpn: str
    placement_type: str
    grade: str
    specialty: str
    start: date
    end: date
    wte: str
    trainee: Trainee
    managing_deanery_body: str | None = None
    line: int | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class PlacementFile:
    """An inbound TIS placement file."""

    local_office: str
    created_at: str
    placements: tuple[Placement, ...]


# --- Trac checks (4.4) ---------------------------------------------------------------------------


ELIGIBLE_CHECKS = (
    "DbsCheck",
    "ProfessionalRegistration",
    "Reference",
    "EmploymentChecklist",
    "IllegalWorkingChecklist",
    "EuStatus",
)  # C4: the only check records that travel to ESR (never Identity)


@quick_init
@dataclass(frozen=True, slots=True)
class CheckMatch:
    """How Trac identifies the applicant."""

    forenames: str
    surname: str
    date_of_birth: date
    tis_placement_id: str | None = None
    nino: str | None = None
    gmc_number: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One check record, kept as (element name, canonical XML of the element) for exact transfer.

    ``dates`` holds every date found inside it and ``fields`` its simple child values by path
    (e.g. ``CertificateNumber``), so that rules can check them without parsing XML.
    """

    kind: str  # DbsCheck | ProfessionalRegistration | Reference | EmploymentChecklist | ...
    xml: bytes
    dates: tuple[date, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The value of a simple child element, or None."""
        return next((v for k, v in self.fields if k == name), None)


@quick_init
@dataclass(frozen=True, slots=True)
class CheckApplicant:
    """One Trac applicant with its checks."""

    trac_applicant_id: str
    vpd: str
    status: str
    match: CheckMatch
    checks: tuple[CheckRecord, ...]
    has_identity: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class CheckFile:
    """An inbound Trac check file."""

    trust: str
    created_at: str
    applicants: tuple[CheckApplicant, ...]


# --- Outcomes ------------------------------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one inbound record (one acknowledgement ``Outcome``)."""

    record_id: str
    result: Result
    text: str
    reason: str | None = None
    vpd: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Notice:
    """One MSO notification row."""

    type: NoticeType
    vpd: str
    text: str
    placement_id: str | None = None
    dpn: str | None = None
    position_number: str | None = None
    trainee: str | None = None
    old_value: str | None = None
    new_value: str | None = None
    reason: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Totals:
    """Acknowledgement totals; ``received`` is the sum of the others by construction."""

    loaded: int = 0
    updated: int = 0
    withdrawn: int = 0
    deferred: int = 0
    unchanged: int = 0
    rejected: int = 0

    @property
    def received(self) -> int:
        """Every record received, whatever became of it."""
        return (
            self.loaded
            + self.updated
            + self.withdrawn
            + self.deferred
            + self.unchanged
            + self.rejected
        )

    @classmethod
    def of(cls, outcomes: list[Outcome] | tuple[Outcome, ...]) -> Totals:
        """Count outcomes by result."""
        counts = {r: 0 for r in Result}
        for o in outcomes:
            counts[o.result] += 1
        return cls(**{r.value: n for r, n in counts.items()})


@dataclass(slots=True)
class Report:
    """Everything the rules decided for one file, before it is written."""

    outcomes: list[Outcome] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


class EsrState(StrEnum):
    """What ESR made of an applicant record the gateway sent (spec 6.5)."""

    SENT = "sent"
    IN_ESR = "in ESR"
    FAILED = "failed"


# --- Applicants (spec 6.2) -----------------------------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True)
class ApplicantRecord:
    """One record of an ESR applicant load: a placement as sent to one VPD."""

    placement_id: str
    vpd: str
    action: str  # "create" | "update" | "withdraw"
    employer_role: str  # "Lead" | "Host"
    position_number: str
    dpn: str
    placement: Placement
    existing_esr_person_id: str | None = None
    changed: tuple[str, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class SentApplicant:
    """The applicant register: what was last sent for a placement to one VPD."""

    placement_id: str
    vpd: str
    tis_person_id: str
    position_number: str
    employer_role: str
    placement: Placement
    existing_esr_person_id: str | None = None
    withdrawn: bool = False
    last_action: str | None = None  # the action last sent (None: before 0.3)
    esr_state: str = "sent"  # EsrState: what ESR confirmed of it (spec 6.5)
    load_file: str | None = None  # the load file and record it last went in
    load_record: int | None = None

    @property
    def failed_create(self) -> bool:
        """R4: ESR failed the create, so the applicant was never made: not "sent"."""
        return self.esr_state == EsrState.FAILED and self.last_action == "create"


@quick_init
@dataclass(frozen=True, slots=True)
class Occupant:
    """Someone on a position over a period: a sent placement or an ESR assignment (A7)."""

    tis_person_id: str | None
    esr_person_id: str | None
    start: date
    end: date | None
    placement_id: str | None = None


# --- ESR load confirmations (spec 4.5, 6.5) -----------------------------------------------------


@quick_init
@dataclass(frozen=True, slots=True)
class Confirmation:
    """ESR's answer for one record of an applicant load."""

    placement_id: str
    action: str  # "create" | "update" | "withdraw"
    status: str  # "SUCCESS" | "FAIL"
    applicant_number: str | None = None
    assignment_id: str | None = None
    message_type: str | None = None
    message_text: str | None = None  # may name the applicant: never logged


@quick_init
@dataclass(frozen=True, slots=True)
class LoadConfirmation:
    """An inbound ESR load confirmation: ESR's answer to one applicant load file."""

    vpd: str
    load_file: str
    processed_at: str
    confirmations: tuple[Confirmation, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class LoadRecord:
    """One record of an applicant load file the gateway wrote, and what ESR confirmed of it."""

    placement_id: str
    action: str
    record: int  # 1-based position in the file
    dpn: str
    position_number: str
    status: str | None = None  # None until confirmed: "SUCCESS" | "FAIL"


@quick_init
@dataclass(frozen=True, slots=True)
class LoadFile:
    """An applicant load file the gateway wrote for a VPD (R1, R6)."""

    vpd: str
    name: str
    source_file: str
    written_at: str
    records: tuple[LoadRecord, ...]

    @property
    def unconfirmed(self) -> tuple[LoadRecord, ...]:
        """The records ESR has not confirmed yet."""
        return tuple(r for r in self.records if r.status is None)


@quick_init
@dataclass(frozen=True, slots=True)
class Awaiting:
    """A load file with records ESR has not confirmed (R6), as the store sums it up."""

    vpd: str
    name: str
    written_at: str
    records: int  # records not yet confirmed
    placements: int  # distinct placement ids among them


@quick_init
@dataclass(frozen=True, slots=True)
class Kept:
    """R7: the last version of a placement ESR failed or the rules rejected, to re-send."""

    placement: Placement
    cause: str  # "failed" | "rejected"
    vpd: str | None = None
    reason: str | None = None
