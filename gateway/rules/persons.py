"""ESR persons → TIS person update (spec 6.4, U1–U3).

Decisions (docs/decisions.md): a person in scope through several assignments is sent with the
one that started last; a person out of scope is acknowledged ``unchanged`` with the reason; a
deanery with nothing to send gets no file.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from operator import attrgetter

from gateway.codes import INVALID_ROUTING_CODE
from gateway.models import Assignment, Outcome, Person, Position, Post, Result, quick_init
from gateway.rules.positions import deanery_of, on_interface, routing_refusal

SCOPE_STATUSES = frozenset({"Active", "Maternity & Adoption"})


def scope(
    person: Person, positions: Mapping[str, Position | Post], as_of: date
) -> tuple[Assignment, Position | Post] | None:
    """U1: the assignment that puts the person in scope (latest start wins), or None."""
    qualifying = [
        (a, positions[a.position_number])
        for a in person.assignments
        if not a.honorary
        and a.status in SCOPE_STATUSES
        and a.position_number in positions
        and on_interface(positions[a.position_number], as_of)
    ]
    if not qualifying:
        return None
    return max(qualifying, key=lambda pair: (pair[0].start_date, pair[0].assignment_number))


def why_out_of_scope(
    person: Person, positions: Mapping[str, Position | Post], as_of: date
) -> str:
    """A sentence saying why no assignment qualifies (for the acknowledgement)."""
    if all(a.honorary for a in person.assignments):
        return "honorary (host) records never flow: the lead employer's record is the master"
    paid = [a for a in person.assignments if not a.honorary]
    if not any(a.status in SCOPE_STATUSES for a in paid):
        return "no Active or Maternity & Adoption assignment"
    return "no assignment on a position of this VPD that is on the interface"


@quick_init
@dataclass(frozen=True, slots=True)
class PersonRow:
    """One person as the update sends them."""

    person: Person
    dpn: str
    position_number: str
    deanery: str
    fingerprint: str


_PERSON_FIELDS = tuple(f.name for f in fields(Person) if f.repr)
# The person's repr with its assignments left out, as one format: str.format fills in every
# field's repr in one call.
_SENT_TEXT = (
    f"({Person.__qualname__}("
    + ", ".join("assignments=()" if name == "assignments" else f"{name}={{!r}}"
                for name in _PERSON_FIELDS)
    + "), "
)
_SENT_FIELDS = attrgetter(*(name for name in _PERSON_FIELDS if name != "assignments"))


def sent_text(person: Person) -> str:
    """The person's part of the text :func:`fingerprint` hashes: the same whatever DPN and
    position they are sent with (the look-ahead reader makes it beside the rules)."""
    return _SENT_TEXT.format(*_SENT_FIELDS(person))


def fingerprint(person: Person, dpn: str, position_number: str, sent: str | None = None) -> str:
    """U2: the content sent for a person (4.2 fields, DPN, position, absences), hashed;
    ``sent``: the person's :func:`sent_text`, if made already.

    The text hashed is ``repr((replace(person, assignments=()), dpn, position_number))`` (the
    dataclass repr is deterministic and names every field), made without the copy, in one
    ``str.format`` of the fields: fingerprints stored by earlier versions stay the same."""
    text = (sent_text(person) if sent is None else sent) + f"{dpn!r}, {position_number!r})"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class PersonUpdate:
    """What one person extract (or a full run) sends and remembers."""

    outcomes: list[Outcome] = field(default_factory=list)
    by_deanery: dict[str, list[PersonRow]] = field(default_factory=dict)
    fingerprints: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        """How many persons go out."""
        return sum(len(rows) for rows in self.by_deanery.values())


def person_update(
    vpd: str,
    persons: Iterable[Person],
    positions: Iterable[Position | Post],
    previous: Mapping[str, tuple[str, bool]],
    as_of: date,
    *,
    full: bool = False,
    sent: Sequence[str] | None = None,
) -> PersonUpdate:
    """U1–U3: who goes to which deanery, and the fingerprints to remember. ``sent``: each
    person's :func:`sent_text`, in order, if made already."""
    by_number = {p.position_number: p for p in positions}
    update = PersonUpdate()
    texts: Iterable[str | None] = sent if sent is not None else itertools.repeat(None)
    for person, made in zip(persons, texts, strict=sent is not None):
        pid = person.esr_person_id
        found = scope(person, by_number, as_of)
        last = previous.get(pid)
        if found is None:
            reason = why_out_of_scope(person, by_number, as_of)
            update.outcomes.append(
                Outcome(pid, Result.UNCHANGED, f"Not sent to TIS: {reason}.", vpd=vpd)
            )
            if last is not None and last[1]:
                update.fingerprints.append((pid, last[0], False))
            continue
        assignment, position = found
        refused = routing_refusal(position)
        if refused:  # a position stored before the XSDs held deanery codes to the pattern
            update.outcomes.append(
                Outcome(pid, Result.REJECTED, refused, reason=INVALID_ROUTING_CODE, vpd=vpd)
            )
            continue
        dpn = position.dpn or ""
        row = PersonRow(
            person, dpn, assignment.position_number, deanery_of(position),
            fingerprint(person, dpn, assignment.position_number, made),
        )
        changed = last is None or last[0] != row.fingerprint or not last[1]
        if changed or full:
            update.by_deanery.setdefault(row.deanery, []).append(row)
            update.fingerprints.append((pid, row.fingerprint, True))
        result = (
            Result.LOADED if last is None
            else Result.UPDATED if changed
            else Result.UNCHANGED
        )
        text = {
            Result.LOADED: f"Sent to TIS {row.deanery} for the first time.",
            Result.UPDATED: f"Changed since last sent: sent to TIS {row.deanery}.",
            Result.UNCHANGED: "Unchanged since last sent." + (" Sent in full." if full else ""),
        }[result]
        update.outcomes.append(Outcome(pid, result, text, vpd=vpd))
    return update
