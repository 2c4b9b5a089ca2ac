"""Validate outputs against the project's XSDs, as a partner would."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from gateway.xml.schemas import schema

BY_NAMESPACE = {
    "urn:dit-gateway:ack:1": "ack",
    "urn:dit-gateway:notifications:1": "notifications",
    "urn:dit-gateway:tis:position-extract:1": "tis-position-extract",
    "urn:dit-gateway:tis:person-update:1": "tis-person-update",
    "urn:dit-gateway:esr:applicant-load:1": "esr-applicant-load",
    "urn:dit-gateway:esr:check-load:1": "esr-check-load",
    "urn:dit-gateway:tis:placement-confirmations:1": "tis-placement-confirmations",
}


def assert_valid(path: Path) -> etree._Element:
    """Parse an output XML file and assert it is valid against the XSD of its namespace."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    tree = etree.parse(str(path), parser)
    ns = etree.QName(tree.getroot()).namespace
    xsd = schema(BY_NAMESPACE[ns or ""])
    assert xsd.validate(tree), f"{path.name}: {xsd.error_log}"
    return tree.getroot()


def assert_all_valid(outbox: Path) -> int:
    """Every XML file under ``outbox`` is valid; returns how many were checked."""
    count = 0
    for path in sorted(outbox.rglob("*.xml")):
        if not path.name.startswith("."):
            assert_valid(path)
            count += 1
    return count
