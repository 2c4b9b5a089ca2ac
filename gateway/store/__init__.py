"""State stores, chosen by the scheme of ``store.url`` from one table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.store.base import Receipt, SqlStore


def _sqlite(settings: Settings) -> SqlStore:
    from gateway.store.sqlite import SqliteStore  # noqa: PLC0415

    path = settings.sqlite_path
    if path is None:
        raise ConfigError("store.url: expected sqlite:///PATH")
    return SqliteStore(Path(path))


def _postgres(settings: Settings) -> SqlStore:
    raise ConfigError("store.url: the PostgreSQL store is not available in this version yet")


STORES: dict[str, Callable[[Settings], SqlStore]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def open_store(settings: Settings) -> SqlStore:
    """The store named by ``store.url``."""
    scheme = settings.store.url.split(":", 1)[0]
    return STORES[scheme](settings)


__all__ = ["STORES", "Receipt", "SqlStore", "open_store"]
