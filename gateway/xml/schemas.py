"""XSDs, loaded only from the project's ``xsd/`` folder (never from ``xsi:schemaLocation``)."""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

XSD_DIR = Path(__file__).resolve().parent.parent.parent / "xsd"


def xsd_dir() -> Path:
    """Where the XSDs live: the source tree's ``xsd/`` or the installed package's copy."""
    packaged = Path(__file__).resolve().parent.parent / "xsd"
    return packaged if packaged.is_dir() else XSD_DIR


@functools.cache
def schema(name: str) -> etree.XMLSchema:
    """The compiled XSD ``xsd/<name>.xsd``; compiled once per process."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    tree = etree.parse(str(xsd_dir() / f"{name}.xsd"), parser)
    return etree.XMLSchema(tree)
