"""ESR load confirmations → the applicant register, MSOs and TIS (spec 6.5, R1–R6).

Pure: functions of one confirmation file, a read-only :class:`LoadView` of the state it names
(plain values, read once per file) and, for R6, the loads awaiting an answer and a time.

R1  A confirmation must name a load file the gateway wrote for the VPD (``UNKNOWN_LOAD``) and a
    record (placementId, action) of it (``NOT_IN_LOAD``).
R5  The same status for the same record again (in an earlier file or earlier in this one) is
    ``unchanged``: nothing is written.
R2  ``SUCCESS``: the record is confirmed; when it is the record the register last sent for the
    placement in that VPD, the applicant is *in ESR* with its ApplicantNumber and AssignmentId
    (kept whatever comes later). ``updated``; ``LOADED`` to TIS.
R3  ``FAIL``: the record is confirmed failed; when it is the register's last record, the
    applicant is *failed* with ESR's message, and the placement is kept to re-send (R7) unless
    the failed record was a withdraw. ``updated``; ``LOAD_FAILED`` to the VPD with ESR's message;
    ``FAILED`` to TIS.
A confirmation of an older record (the placement went out again since) changes the load's
record only: the register follows the later record.
R6  A load file with records not confirmed ``confirm_hours`` after it was written raises one
    ``LOAD_UNCONFIRMED`` per load file (the caller remembers which were raised).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.models import (
    Awaiting,
    Confirmation,
    EsrState,
    Kept,
    LoadConfirmation,
    LoadFile,
    LoadRecord,
    Notice,
    NoticeType,
    Outcome,
    Result,
    SentApplicant,
)

SUCCESS, FAIL = "SUCCESS", "FAIL"
LOADED, FAILED = "LOADED", "FAILED"
WITHDRAW = "withdraw"


@dataclass(frozen=True, slots=True)
class LoadView:
    """What the rules know of the load file a confirmation names: plain values."""

    load: LoadFile | None  # None: the gateway never wrote it for this VPD
    register: Mapping[str, SentApplicant]  # placement id → its register row in the VPD
    deaneries: Mapping[str, str]  # placement id → the deanery of its DPN (P3)


@dataclass(frozen=True, slots=True)
class TisRow:
    """One placement confirmation for TIS (spec 5.1)."""

    deanery: str
    placement_id: str
    status: str  # LOADED | FAILED
    applicant_number: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    """The register's ESR state of one applicant, as a confirmation leaves it."""

    placement_id: str
    vpd: str
    state: str
    applicant_number: str | None
    assignment_id: str | None
    message: str | None


@dataclass(slots=True)
class ConfirmationDecision:
    """Everything the rules decided for one confirmation file."""

    outcomes: list[Outcome] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    tis: list[TisRow] = field(default_factory=list)
    confirmed: list[tuple[str, str, str]] = field(default_factory=list)  # (pid, action, status)
    states: list[StateChange] = field(default_factory=list)
    keep: list[Kept] = field(default_factory=list)
    unkeep: list[str] = field(default_factory=list)


def decide(document: LoadConfirmation, view: LoadView) -> ConfirmationDecision:
    """R1–R5 for every confirmation of the file, in order: one outcome each."""
    decision = ConfirmationDecision()
    records = _records(view.load)
    statuses = {key: r.status for key, r in records.items()}
    for confirmation in document.confirmations:
        key = (confirmation.placement_id, confirmation.action)
        record = records.get(key)
        if view.load is None or record is None:
            decision.outcomes.append(_refused(document, view.load is None, confirmation))
        elif statuses.get(key) == confirmation.status:
            decision.outcomes.append(_unchanged(document, confirmation))
        else:
            statuses[key] = confirmation.status
            _confirm(decision, document, view, record, confirmation)
    return decision


def _records(load: LoadFile | None) -> dict[tuple[str, str], LoadRecord]:
    """The load's records by (placement id, action), the first of each (as written)."""
    found: dict[tuple[str, str], LoadRecord] = {}
    for r in load.records if load else ():
        found.setdefault((r.placement_id, r.action), r)
    return found


def _refused(document: LoadConfirmation, no_load: bool, c: Confirmation) -> Outcome:
    """R1: the load file or the record is not one the gateway wrote."""
    if no_load:
        reason = "UNKNOWN_LOAD"
        text = (
            f"No applicant load {document.load_file} was written for VPD {document.vpd}: "
            "the confirmation cannot be matched to anything the gateway sent."
        )
    else:
        reason = "NOT_IN_LOAD"
        text = (
            f"Load {document.load_file} holds no {c.action} record of placement "
            f"{c.placement_id}: the confirmation cannot be matched."
        )
    return Outcome(c.placement_id, Result.REJECTED, text, reason=reason, vpd=document.vpd)


def _unchanged(document: LoadConfirmation, c: Confirmation) -> Outcome:
    """R5: the same confirmation again."""
    text = f"ESR already confirmed the {c.action} in {document.load_file} as {c.status}."
    return Outcome(c.placement_id, Result.UNCHANGED, text, vpd=document.vpd)


def _confirm(
    decision: ConfirmationDecision,
    document: LoadConfirmation,
    view: LoadView,
    record: LoadRecord,
    c: Confirmation,
) -> None:
    """R2 / R3: record ESR's answer, and the register's state when it is its last record."""
    pid, vpd = c.placement_id, document.vpd
    decision.confirmed.append((pid, c.action, c.status))
    row = view.register.get(pid)
    current = row is not None and (row.load_file, row.load_record) == (
        document.load_file, record.record)
    deanery = view.deaneries.get(pid) or record.dpn.split("/", 1)[0]
    ok = c.status == SUCCESS
    decision.tis.append(
        TisRow(deanery, pid, LOADED if ok else FAILED,
               c.applicant_number if ok else None, None if ok else c.message_text)
    )
    later = "" if current else " The placement was sent again since: the register follows that."
    if ok:
        text = f"ESR loaded the {c.action} (record {record.record} of {document.load_file})."
    else:
        text = (
            f"ESR failed the {c.action} (record {record.record} of {document.load_file}); its "
            "message is in the LOAD_FAILED notification to the VPD."
        )
    decision.outcomes.append(Outcome(pid, Result.UPDATED, text + later, vpd=vpd))
    if not ok:
        decision.notices.append(_load_failed(document, record, row, c))
    if not current or row is None:
        return
    state = EsrState.IN_ESR if ok else EsrState.FAILED
    decision.states.append(StateChange(
        pid, vpd, state.value, c.applicant_number, c.assignment_id,
        None if ok else c.message_text,
    ))
    if ok or c.action == WITHDRAW:
        decision.unkeep.append(pid)
    else:
        decision.keep.append(Kept(row.placement, "failed", vpd))


def _load_failed(
    document: LoadConfirmation, record: LoadRecord, row: SentApplicant | None, c: Confirmation
) -> Notice:
    """R3: the MSO learns what ESR said, and how to put it right."""
    trainee = row.placement.trainee if row else None
    return Notice(
        NoticeType.LOAD_FAILED,
        document.vpd,
        f"ESR failed the {c.action} of placement {c.placement_id} (record {record.record} of "
        f"{document.load_file}): {c.message_text or 'ESR gave no message'}. Correct the cause, "
        f"then re-send it (dit-gateway resend --placement {c.placement_id}) or hire directly.",
        placement_id=c.placement_id,
        dpn=record.dpn,
        position_number=record.position_number,
        trainee=(
            f"{' '.join(trainee.surname.split())}, {' '.join(trainee.forenames.split())}"
            if trainee else None
        ),
        new_value=c.message_type,
    )


# --- R6 ------------------------------------------------------------------------------------------


SHOWN = 10  # placement ids a LOAD_UNCONFIRMED names; the rest are counted


def overdue(
    loads: Iterable[Awaiting], at: datetime, hours: int, raised: Iterable[tuple[str, str]]
) -> list[Awaiting]:
    """R6: the load files with records unconfirmed ``hours`` after they were written, except
    those already raised."""
    done = set(raised)
    return [
        load for load in loads
        if (load.vpd, load.name) not in done
        and load.records
        and at - datetime.fromisoformat(load.written_at) >= timedelta(hours=hours)
    ]


def unconfirmed_notice(load: Awaiting, first: Sequence[str], hours: int) -> Notice:
    """R6: LOAD_UNCONFIRMED for one load file, naming the first placements still unconfirmed
    (``first``: the first :data:`SHOWN` of their ids, sorted) and counting the others."""
    more = load.placements - len(first)
    shown = ", ".join(first) + (f" and {more} more" if more > 0 else "")
    return Notice(
        NoticeType.LOAD_UNCONFIRMED,
        load.vpd,
        f"ESR has not confirmed {load.records} record(s) of {load.name} (written "
        f"{load.written_at}) after {hours} hours: placements {shown}. ESR may have quarantined "
        "the file or never received it: check in ESR, then re-send (dit-gateway resend) or hire "
        "directly.",
    )
