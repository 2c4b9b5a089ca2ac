"""ESR positions → the position register and the TIS position extract (spec 6.1, P1–P6)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from gateway.codes import INVALID_ROUTING_CODE, deanery_refusal, is_code
from gateway.models import Notice, NoticeType, Outcome, Position, PositionExtract, Post, Result

ON_INTERFACE_STATUSES = frozenset({"Active", "Proposed"})


def on_interface(position: Position | Post, as_of: date) -> bool:
    """P1: a DPN, hiring status Active or Proposed, and not end-dated before ``as_of``."""
    return (
        bool(position.dpn)
        and position.hiring_status in ON_INTERFACE_STATUSES
        and (position.effective_to is None or position.effective_to >= as_of)
    )


def deanery_of(position: Position | Post) -> str:
    """P3: the managing deanery body when set, else the DPN's first segment."""
    if position.managing_deanery_body:
        return position.managing_deanery_body
    return (position.dpn or "").split("/", 1)[0]


def routing_refusal(position: Position | Post) -> str | None:
    """Why a position's deanery codes (P3) cannot route a file, or None when they can."""
    wrong = deanery_refusal(position.managing_deanery_body, position.dpn)
    if wrong is None:
        return None
    return (
        f"Position {position.position_number}: {wrong} is not a plain deanery code (A-Z, 0-9, "
        "'_' or '-', at most 16): correct it in ESR."
    )


def duplicate_dpns(positions: Iterable[Position], as_of: date) -> set[str]:
    """P2: DPNs carried by more than one position on the interface."""
    counts = Counter(p.dpn for p in positions if p.dpn and on_interface(p, as_of))
    return {dpn for dpn, n in counts.items() if n > 1}


def duplicate_notice(vpd: str, dpn: str, live: Iterable[Position]) -> Notice:
    """P2: the DUPLICATE_POSITION notice for a DPN, naming the positions that carry it."""
    numbers = sorted(p.position_number for p in live if p.dpn == dpn)
    return Notice(
        NoticeType.DUPLICATE_POSITION,
        vpd,
        f"DPN {dpn} is on {len(numbers)} positions ({', '.join(numbers)}): the mapping must be "
        "one to one; keep one and remove the DPN from the others.",
        dpn=dpn,
        reason="DUPLICATE_POSITION",
    )


@dataclass(frozen=True, slots=True)
class RegisterView:
    """What the rules need to know of a VPD's state before the extract."""

    positions: Mapping[int, Position]
    seen_dpns: frozenset[str]
    interface_posts: Mapping[int, tuple[str, str]]  # esr_position_id → (dpn, deanery)


@dataclass(slots=True)
class RegisterChange:
    """The outcome of one extract: state to save, outputs to write."""

    vpd: str
    replace: bool
    save: list[Position] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    new_dpns: list[str] = field(default_factory=list)
    interface: dict[int, tuple[str, str]] = field(default_factory=dict)
    extracts: dict[str, list[tuple[Position, bool]]] = field(default_factory=dict)


def _outcome(
    vpd: str, p: Position, result: Result, text: str, reason: str | None = None
) -> Outcome:
    return Outcome(str(p.esr_position_id), result, text, reason=reason, vpd=vpd)


def apply_extract(
    extract: PositionExtract, view: RegisterView, as_of: date, las_codes: frozenset[str]
) -> RegisterChange:
    """Apply a ``full`` or ``delta`` extract to a VPD's register (P1–P6)."""
    vpd = extract.vpd
    change = RegisterChange(vpd=vpd, replace=extract.type == "full")
    register: dict[int, Position] = {} if change.replace else dict(view.positions)
    for p in extract.positions:
        refused = routing_refusal(p)
        if refused:
            change.outcomes.append(_outcome(vpd, p, Result.REJECTED, refused, INVALID_ROUTING_CODE))
            continue
        if p.dpn and p.occupation_code in las_codes:
            change.outcomes.append(
                _outcome(
                    vpd,
                    p,
                    Result.REJECTED,
                    f"Position {p.position_number} has locum-for-service occupation code "
                    f"{p.occupation_code} and must not carry a DPN: remove the DPN in ESR.",
                    "LAS_WITH_DPN",
                )
            )
            continue
        old = view.positions.get(p.esr_position_id)
        if old is None:
            result, text = Result.LOADED, "added to the register"
        elif old == p:
            result, text = Result.UNCHANGED, "unchanged"
        else:
            result, text = Result.UPDATED, "updated in the register"
        state = "on the interface" if on_interface(p, as_of) else "not on the interface"
        change.outcomes.append(
            _outcome(vpd, p, result, f"Position {p.position_number} {text}; {state}.")
        )
        register[p.esr_position_id] = p
        change.save.append(p)
    _derive(change, register, view, as_of)
    return change


def _derive(
    change: RegisterChange, register: Mapping[int, Position], view: RegisterView, as_of: date
) -> None:
    vpd = change.vpd
    live = [p for p in register.values() if on_interface(p, as_of) and is_code(deanery_of(p))]
    duplicates = duplicate_dpns(live, as_of)
    before = duplicate_dpns(view.positions.values(), as_of)
    for dpn in sorted(duplicates - before):
        change.notices.append(duplicate_notice(vpd, dpn, live))
    seen = set(view.seen_dpns)
    for p in sorted(register.values(), key=lambda p: (p.dpn or "", p.esr_position_id)):
        if p.dpn and p.dpn not in seen:
            seen.add(p.dpn)
            change.new_dpns.append(p.dpn)
            change.notices.append(
                Notice(
                    NoticeType.NEW_DPN,
                    vpd,
                    f"DPN {p.dpn} appears in this VPD for the first time "
                    f"(position {p.position_number}).",
                    dpn=p.dpn,
                    position_number=p.position_number,
                )
            )
    change.interface = {p.esr_position_id: (p.dpn or "", deanery_of(p)) for p in live}
    for pid, (dpn, _deanery) in sorted(view.interface_posts.items()):
        now = change.interface.get(pid)
        if now is None or now[0] != dpn:
            old = view.positions.get(pid) or register.get(pid)
            change.notices.append(
                Notice(
                    NoticeType.POST_REMOVED,
                    vpd,
                    f"DPN {dpn} (ESR position id {pid}) has left the interface.",
                    dpn=dpn,
                    position_number=old.position_number if old else None,
                )
            )
    deaneries = {d for _dpn, d in view.interface_posts.values() if is_code(d)}
    deaneries |= {deanery_of(p) for p in live}
    change.extracts = {d: [] for d in sorted(deaneries)}
    for p in sorted(live, key=lambda p: (p.dpn or "", p.position_number)):
        change.extracts[deanery_of(p)].append((p, p.dpn in duplicates))
