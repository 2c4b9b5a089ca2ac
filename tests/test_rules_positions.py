"""Rules P1–P6: the position register and what goes to TIS (pure functions, plain values)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from gateway.models import NoticeType, Position, PositionExtract, Result
from gateway.rules.positions import (
    RegisterView,
    apply_extract,
    deanery_of,
    duplicate_dpns,
    on_interface,
)

AS_OF = date(2026, 11, 2)
EMPTY = RegisterView({}, frozenset(), {})


def pos(pid: int, dpn: str | None = "EOE/RGT00/001/FY1/001", **kw: object) -> Position:
    """A position with sensible defaults."""
    base = Position(
        esr_position_id=pid,
        position_number=str(1000 + pid),
        position_name="FY1",
        effective_from=date(2020, 1, 1),
        hiring_status="Active",
        position_type="Single",
        esr_last_update=date(2026, 1, 1),
        dpn=dpn,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def extract(*positions: Position, kind: str = "full") -> PositionExtract:
    """A position extract of VPD RGT."""
    return PositionExtract("RGT", AS_OF, kind, positions)


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        pytest.param(pos(1), True, id="P1 active with DPN is on"),
        pytest.param(pos(1, hiring_status="Proposed"), True, id="P1 proposed is on"),
        pytest.param(pos(1, dpn=None), False, id="P1 no DPN is off"),
        pytest.param(pos(1, hiring_status="Frozen"), False, id="P1 frozen is off"),
        pytest.param(pos(1, hiring_status="Eliminated"), False, id="P1 eliminated is off"),
        pytest.param(pos(1, hiring_status="Deleted"), False, id="P1 deleted is off"),
        pytest.param(pos(1, effective_to=AS_OF), True, id="P1 ending today is on"),
        pytest.param(pos(1, effective_to=date(2026, 11, 1)), False, id="P1 ended yesterday is off"),
    ],
)
def test_p1_on_the_interface(position: Position, expected: bool) -> None:
    """P1 decides which positions are on the interface."""
    assert on_interface(position, AS_OF) is expected


def test_p3_destination_deanery() -> None:
    """P3: the managing deanery body wins, else the DPN's first segment."""
    assert deanery_of(pos(1)) == "EOE"
    assert deanery_of(pos(1, managing_deanery_body="LDN")) == "LDN"


def test_p2_duplicates_only_among_live_positions() -> None:
    """P2: a DPN on two live positions is duplicate; a frozen second one does not count."""
    assert duplicate_dpns([pos(1), pos(2)], AS_OF) == {"EOE/RGT00/001/FY1/001"}
    assert duplicate_dpns([pos(1), pos(2, hiring_status="Frozen")], AS_OF) == set()


def test_full_extract_loads_and_sends_live_posts_by_deanery() -> None:
    """A full extract fills the register; live posts go out per deanery, dead ones do not."""
    change = apply_extract(
        extract(
            pos(1),
            pos(2, dpn="LDN/R1K00/002/FY2/001"),
            pos(3, dpn="EOE/RGT00/003/FY1/001", hiring_status="Frozen"),
            pos(4, dpn=None),
        ),
        EMPTY,
        AS_OF,
        frozenset(),
    )
    assert [o.result for o in change.outcomes] == [Result.LOADED] * 4
    sent = {d: [p.esr_position_id for p, _dup in posts] for d, posts in change.extracts.items()}
    assert sent == {"EOE": [1], "LDN": [2]}
    assert change.replace is True


def test_p2_duplicate_posts_flagged_and_notified_once() -> None:
    """P2: both posts carry Duplicate=true and one DUPLICATE_POSITION notice names the DPN."""
    change = apply_extract(extract(pos(1), pos(2)), EMPTY, AS_OF, frozenset())
    assert [dup for _p, dup in change.extracts["EOE"]] == [True, True]
    dups = [n for n in change.notices if n.type is NoticeType.DUPLICATE_POSITION]
    assert len(dups) == 1
    assert dups[0].dpn == "EOE/RGT00/001/FY1/001"


def test_p4_new_dpn_notified_only_the_first_time() -> None:
    """P4: a DPN new to the VPD raises NEW_DPN; one already seen does not."""
    first = apply_extract(extract(pos(1)), EMPTY, AS_OF, frozenset())
    assert [n.type for n in first.notices] == [NoticeType.NEW_DPN]
    view = RegisterView({1: pos(1)}, frozenset(first.new_dpns), first.interface)
    again = apply_extract(extract(pos(1)), view, AS_OF, frozenset())
    assert again.notices == []
    assert [o.result for o in again.outcomes] == [Result.UNCHANGED]


def test_p5_las_position_with_dpn_is_rejected_and_not_sent() -> None:
    """P5: a locum-for-service occupation code with a DPN is rejected with LAS_WITH_DPN."""
    change = apply_extract(extract(pos(1, occupation_code="LAS01")), EMPTY, AS_OF,
                           frozenset({"LAS01"}))
    assert change.outcomes[0].result is Result.REJECTED
    assert change.outcomes[0].reason == "LAS_WITH_DPN"
    assert change.save == []
    assert change.extracts == {}


def test_p6_post_removed_when_it_leaves_the_interface() -> None:
    """P6: a post on the interface at the last extract and now frozen raises POST_REMOVED,
    and its deanery still gets an (empty) extract so TIS learns it is gone."""
    view = RegisterView({1: pos(1)}, frozenset({"EOE/RGT00/001/FY1/001"}),
                        {1: ("EOE/RGT00/001/FY1/001", "EOE")})
    change = apply_extract(extract(pos(1, hiring_status="Frozen"), kind="delta"), view, AS_OF,
                           frozenset())
    assert [n.type for n in change.notices] == [NoticeType.POST_REMOVED]
    assert change.outcomes[0].result is Result.UPDATED
    assert change.extracts == {"EOE": []}


def test_delta_amends_and_full_replaces() -> None:
    """A delta keeps positions it does not carry; a full extract drops them."""
    view = RegisterView({1: pos(1), 2: pos(2, dpn="EOE/X/2")}, frozenset(), {})
    delta = apply_extract(extract(pos(3, dpn="EOE/X/3"), kind="delta"), view, AS_OF, frozenset())
    assert sorted(p.esr_position_id for posts in delta.extracts.values() for p, _ in posts) == [
        1, 2, 3]
    full = apply_extract(extract(pos(3, dpn="EOE/X/3")), view, AS_OF, frozenset())
    assert [p.esr_position_id for posts in full.extracts.values() for p, _ in posts] == [3]
