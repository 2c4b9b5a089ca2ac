"""Trac pre-employment checks → the ESR check load (spec 6.3, C1–C6).

Each ``Applicant`` of a check file gets exactly one outcome, decided in this order:

- C1: ``Status`` must be exactly ``Outcome Recruited`` once trimmed (case matters).
- C2: the applicant must match a register row of its own VPD that is not withdrawn. A
  ``TisPlacementId`` decides alone: its row must exist in that VPD and not be withdrawn; there is no
  fallback to the demographics. Without it: same date of birth, surname (trimmed, spaces collapsed,
  case-insensitive) and first forename, and the same NINO and GMC number wherever both sides have
  one. No row → ``NO_MATCHING_APPLICANT``; several placements → ``AMBIGUOUS_APPLICANT_MATCH``.
  Trac never creates an applicant.
- C3: one transfer per (VPD, placement): refused when the store says it went, or when an earlier
  applicant of the same file transferred for it.
- C6 (before C5): a date after ``as_of`` in an eligible check, or a DBS certificate number that is
  not exactly 12 digits, refuses the whole applicant. ``ExpiryDate`` and ``FollowUpDate`` look
  forward by nature (a visa, a registration) and are exempt. The text names the check, never a
  value.
- C5: nothing eligible (only an identity record, or no check at all) → ``NO_ELIGIBLE_CHECKS``.
- C4: otherwise the eligible checks travel, in document order; identity never does, and the outcome
  says so when it was present.

Outcome and notice texts name records by ids and VPD codes only: never a name, date of birth, NINO,
GMC, certificate or document number. A refusal also raises a ``REJECTED`` notice to the applicant's
VPD, naming the trainee ("Surname, Forenames") from the matched register row, else from Trac.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from gateway.codes import INVALID_ROUTING_CODE, is_code, shown
from gateway.models import (
    ELIGIBLE_CHECKS,
    CheckApplicant,
    CheckMatch,
    CheckRecord,
    Notice,
    NoticeType,
    Outcome,
    Result,
    SentApplicant,
    Trainee,
    quick_init,
)
from gateway.rules import Marks

RECRUITED = "Outcome Recruited"
ELIGIBLE_KINDS = ELIGIBLE_CHECKS
FORWARD_DATES = frozenset({"ExpiryDate", "FollowUpDate"})
_DBS_NUMBER = re.compile(r"[0-9]{12}")
_SEND_AGAIN = "Correct it in Trac and send the applicant again; nothing went to ESR."


class CheckView(Protocol):
    """What the check rules read of the applicant register (read-only)."""

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """Register rows of a placement, every VPD, withdrawn ones flagged."""
        ...

    def applicants_born(self, vpd: str, date_of_birth: date) -> Sequence[SentApplicant]:
        """Register rows of the VPD whose trainee has that date of birth, withdrawn ones flagged."""
        ...

    def transferred(self, vpd: str, placement_id: str) -> bool:
        """Whether checks already went to ESR for this applicant (C3)."""
        ...


@quick_init
@dataclass(frozen=True, slots=True)
class CheckTransfer:
    """One ``ApplicantChecks`` element of an ESR check load."""

    vpd: str
    placement_id: str
    trac_applicant_id: str
    checks: tuple[CheckRecord, ...]


@dataclass(slots=True)
class CheckDecision:
    """Everything decided for one check file; the flow records each transfer in the store."""

    outcomes: list[Outcome] = field(default_factory=list)
    transfers: list[CheckTransfer] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


class _Refusal(Exception):
    """A rule refused the applicant: the reason code, a sentence an MSO can act on, the match."""

    def __init__(self, reason: str, text: str, row: SentApplicant | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.row = row


def decide(applicants: Iterable[CheckApplicant], view: CheckView, as_of: date) -> CheckDecision:
    """C1–C6 for every applicant of a check file, in order; one outcome each (``applicants`` is
    iterated once: the view may follow it)."""
    return CheckDecider(as_of).decide(applicants, view)


class CheckDecider:
    """Decides a check file's applicants in parts (windows), in file order, remembering between
    parts the applicants whose checks this file transferred (C3); :func:`decide` is one part."""

    def __init__(self, as_of: date, done: Marks[tuple[str, str]] | None = None) -> None:
        self.as_of = as_of
        # (vpd, placement_id) transferred in the file: a set unless the flow keeps them
        self.done: Marks[tuple[str, str]] = set() if done is None else done

    def decide(self, applicants: Iterable[CheckApplicant], view: CheckView) -> CheckDecision:
        """C1–C6 for the next applicants of the file, against ``view``."""
        return _decide(applicants, view, self.as_of, self.done)


def _decide(applicants: Iterable[CheckApplicant], view: CheckView, as_of: date,
            done: Marks[tuple[str, str]]) -> CheckDecision:
    decision = CheckDecision()
    for applicant in applicants:
        if not is_code(applicant.vpd):  # nowhere to route it, not even a notice
            decision.outcomes.append(Outcome(
                applicant.trac_applicant_id, Result.REJECTED,
                f"VPD {shown(applicant.vpd)!r} is not a plain VPD code: correct it in Trac.",
                reason=INVALID_ROUTING_CODE,
            ))
            continue
        try:
            transfer = _transfer(applicant, view, as_of, done)
        except _Refusal as refusal:
            _refuse(decision, applicant, refusal)
            continue
        done.add((transfer.vpd, transfer.placement_id))
        decision.transfers.append(transfer)
        decision.outcomes.append(
            Outcome(
                applicant.trac_applicant_id,
                Result.LOADED,
                _loaded_text(transfer, identity=_has_identity(applicant)),
                vpd=applicant.vpd,
            )
        )
    return decision


def _transfer(
    applicant: CheckApplicant, view: CheckView, as_of: date, done: Marks[tuple[str, str]]
) -> CheckTransfer:
    """C1, C2, C3, C6, C5 in turn; what travels (C4) when none refuses."""
    if applicant.status.strip() != RECRUITED:
        raise _Refusal(
            "NOT_RECRUITED",
            f"The Trac status is not '{RECRUITED}': checks transfer only once the applicant is "
            "recruited. Send them again from Trac when that status is reached.",
        )
    row = _match(applicant, view)
    _check_once(applicant.vpd, row, view, done)
    checks = tuple(c for c in applicant.checks if c.kind in ELIGIBLE_KINDS)
    problems = [p for c in checks for p in _problems(c, as_of)]
    if problems:
        raise _Refusal("INVALID_CHECK", f"Invalid check: {'; '.join(problems)}. {_SEND_AGAIN}", row)
    if not checks:
        raise _Refusal(
            "NO_ELIGIBLE_CHECKS",
            (
                "Only an identity record came, and identity never transfers"
                if _has_identity(applicant)
                else "No check record came"
            )
            + f": nothing to copy onto placement {row.placement_id}. "
            "Enter the checks in ESR directly.",
            row,
        )
    return CheckTransfer(applicant.vpd, row.placement_id, applicant.trac_applicant_id, checks)


def _match(applicant: CheckApplicant, view: CheckView) -> SentApplicant:
    """C2: the one live register row of the applicant's VPD it stands for."""
    vpd, match = applicant.vpd, applicant.match
    if match.tis_placement_id:
        return _by_placement_id(vpd, match.tis_placement_id, view)
    rows = [
        row
        for row in view.applicants_born(vpd, match.date_of_birth)
        if row.vpd == vpd and not row.withdrawn and _same_trainee(match, row)
    ]
    placements = sorted({row.placement_id for row in rows})
    if not placements:
        raise _Refusal(
            "NO_MATCHING_APPLICANT",
            f"No applicant created from TIS in VPD {vpd} matches the date of birth, surname, "
            "first forename, NINO and GMC number given in Trac. Check them in Trac or give the "
            "TIS placement id; Trac never creates an applicant.",
        )
    if len(placements) > 1:
        raise _Refusal(
            "AMBIGUOUS_APPLICANT_MATCH",
            f"{len(placements)} applicants of VPD {vpd} match (placements "
            f"{', '.join(placements)}): give the TIS placement id in Trac to choose one.",
        )
    return rows[0]


def _by_placement_id(vpd: str, placement_id: str, view: CheckView) -> SentApplicant:
    """C2 by ``TisPlacementId``: the placement's row in the VPD, not withdrawn."""
    rows = [row for row in view.sent(placement_id) if row.vpd == vpd]
    live = [row for row in rows if not row.withdrawn]
    if live:
        return live[0]
    state = "was withdrawn" if rows else "was never sent"
    raise _Refusal(
        "NO_MATCHING_APPLICANT",
        f"The applicant for TIS placement {placement_id} in VPD {vpd} {state}, so there is "
        "nothing to copy checks onto. Check the placement id in Trac; Trac never creates an "
        "applicant.",
    )


def _same_trainee(match: CheckMatch, row: SentApplicant) -> bool:
    """C2 by demographics: names, and NINO and GMC number wherever both sides have one."""
    trainee = row.placement.trainee
    return (
        trainee.date_of_birth == match.date_of_birth
        and _folded(trainee.surname) == _folded(match.surname)
        and _first_forename(trainee.forenames) == _first_forename(match.forenames)
        and _same_code(trainee.nino, match.nino)
        and _same_code(trainee.gmc_number, match.gmc_number)
    )


def _check_once(
    vpd: str, row: SentApplicant, view: CheckView, done: Marks[tuple[str, str]]
) -> None:
    """C3: checks go once per applicant, counting this file's earlier transfers."""
    pid = row.placement_id
    if (vpd, pid) in done:
        where = "earlier in this file"
    elif view.transferred(vpd, pid):
        where = "by an earlier file"
    else:
        return
    raise _Refusal(
        "ALREADY_TRANSFERRED",
        f"Checks for placement {pid} in VPD {vpd} were already transferred {where}; the "
        "transfer is one-off. Record any later change in ESR directly.",
        row,
    )


def _problems(check: CheckRecord, as_of: date) -> list[str]:
    """C6: what is wrong with one eligible check, naming its kind and never a value."""
    problems = []
    backward = Counter(d.isoformat() for d in check.dates)
    backward.subtract(value for name, value in check.fields if name in FORWARD_DATES)
    if any(date.fromisoformat(d) > as_of for d, n in backward.items() if n > 0):
        problems.append(f"{check.kind} dated after the processing date")
    if check.kind == "DbsCheck" and not _DBS_NUMBER.fullmatch(check.get("CertificateNumber") or ""):
        problems.append("DbsCheck certificate number not exactly 12 digits")
    return problems


def _refuse(decision: CheckDecision, applicant: CheckApplicant, refusal: _Refusal) -> None:
    """A rejected outcome and a REJECTED notice to the applicant's VPD."""
    row = refusal.row
    decision.outcomes.append(
        Outcome(
            applicant.trac_applicant_id,
            Result.REJECTED,
            refusal.text,
            reason=refusal.reason,
            vpd=applicant.vpd,
        )
    )
    names: Trainee | CheckMatch = row.placement.trainee if row else applicant.match
    decision.notices.append(
        Notice(
            NoticeType.REJECTED,
            applicant.vpd,
            f"Trac applicant {applicant.trac_applicant_id}: {refusal.text}",
            placement_id=row.placement_id if row else None,
            dpn=row.placement.dpn if row else None,
            position_number=row.position_number if row else None,
            trainee=f"{' '.join(names.surname.split())}, {' '.join(names.forenames.split())}",
            reason=refusal.reason,
        )
    )


def _loaded_text(transfer: CheckTransfer, *, identity: bool) -> str:
    """C4: what goes to ESR, and that identity stayed behind."""
    counts = Counter(c.kind for c in transfer.checks)
    kinds = ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in counts.items())
    text = (
        f"{len(transfer.checks)} check record(s) ({kinds}) go to ESR for placement "
        f"{transfer.placement_id}."
    )
    if identity:
        text += (
            " The identity record was dropped and never transferred: "
            "enter identity checks in ESR manually."
        )
    return text


def _has_identity(applicant: CheckApplicant) -> bool:
    """An identity record came, whether the reader dropped it or not."""
    return applicant.has_identity or any(c.kind == "Identity" for c in applicant.checks)


def _folded(name: str) -> str:
    """A name trimmed, inner spaces collapsed, case folded."""
    return " ".join(name.split()).casefold()


def _first_forename(forenames: str) -> str:
    """The first whitespace-separated forename, case folded."""
    return next(iter(forenames.split()), "").casefold()


def _same_code(ours: str | None, theirs: str | None) -> bool:
    """NINO or GMC number: equal without spaces, in capitals, where both sides have one."""
    a, b = _code(ours), _code(theirs)
    return not a or not b or a == b


def _code(value: str | None) -> str:
    return "".join((value or "").split()).upper()
