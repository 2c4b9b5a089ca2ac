"""The inbound document kinds, chosen by root element and namespace — never by name or folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.models import (
    Channel,
    CheckFile,
    LoadConfirmation,
    PersonExtract,
    PlacementFile,
    PositionExtract,
)
from gateway.xml import readers


@dataclass(frozen=True, slots=True)
class DocumentKind:
    """One inbound document type of spec section 4."""

    name: str
    channel: Channel
    namespace: str
    root: str
    xsd: str
    record: str
    read_record: Callable[[Any], Any]
    build: Callable[[dict[str, str], tuple[Any, ...]], Any]
    routing: frozenset[str] = frozenset()
    """The record's routing fields: elements, and attributes as ``@name`` (spec 6.0, issue 14)."""

    @property
    def record_tag(self) -> str:
        """The records' element as lxml names it: ``{namespace}Name``."""
        return f"{{{self.namespace}}}{self.record}"


def _positions(attrs: dict[str, str], records: tuple[Any, ...]) -> PositionExtract:
    return PositionExtract(
        attrs["vpd"], date.fromisoformat(attrs["extractDate"]), attrs["type"], records
    )


def _persons(attrs: dict[str, str], records: tuple[Any, ...]) -> PersonExtract:
    return PersonExtract(attrs["vpd"], date.fromisoformat(attrs["extractDate"]), records)


def _placements(attrs: dict[str, str], records: tuple[Any, ...]) -> PlacementFile:
    return PlacementFile(attrs["localOffice"], attrs["createdAt"], records)


def _checks(attrs: dict[str, str], records: tuple[Any, ...]) -> CheckFile:
    return CheckFile(attrs["trust"], attrs["createdAt"], records)


def _confirmations(attrs: dict[str, str], records: tuple[Any, ...]) -> LoadConfirmation:
    return LoadConfirmation(attrs["vpd"], attrs["loadFile"], attrs["processedAt"], records)


KINDS: tuple[DocumentKind, ...] = (
    DocumentKind(
        "positions", Channel.ESR, "urn:dit-gateway:esr:positions:1", "PositionExtract",
        "esr-positions", "Position", readers.position, _positions,
        frozenset({"DeaneryPostNumber", "ManagingDeaneryBody"}),
    ),
    DocumentKind(
        "persons", Channel.ESR, "urn:dit-gateway:esr:persons:1", "PersonExtract",
        "esr-persons", "Person", readers.person, _persons,
    ),
    DocumentKind(
        "placements", Channel.TIS, "urn:dit-gateway:tis:placements:1", "PlacementFile",
        "tis-placements", "Placement", readers.placement, _placements,
        frozenset({"DeaneryPostNumber", "ManagingDeaneryBody"}),
    ),
    DocumentKind(
        "checks", Channel.TRAC, "urn:dit-gateway:trac:checks:1", "CheckFile",
        "trac-checks", "Applicant", readers.check_applicant, _checks,
        frozenset({"@vpd"}),
    ),
    DocumentKind(
        "confirmations", Channel.ESR, "urn:dit-gateway:esr:applicant-confirmation:1",
        "LoadConfirmation", "esr-applicant-confirmation", "Confirmation", readers.confirmation,
        _confirmations,
    ),
)

BY_ROOT = {(k.namespace, k.root): k for k in KINDS}
BY_NAME = {k.name: k for k in KINDS}
