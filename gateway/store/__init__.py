"""State stores, chosen by the scheme of ``store.url`` from one table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.config import Settings
from gateway.errors import ConfigError, StoreMismatch, StoreUnavailable, TransientError
from gateway.store.base import Receipt, SqlStore
from gateway.transport import files, modes

MARKER = "store-id"


def _sqlite(settings: Settings) -> SqlStore:
    from gateway.store.sqlite import SqliteStore  # noqa: PLC0415

    path = settings.sqlite_path
    if path is None:
        raise ConfigError("store.url: expected sqlite:///PATH")
    return SqliteStore(Path(path))


def _postgres(settings: Settings) -> SqlStore:
    try:
        from gateway.store.postgres import PostgresStore  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "store.url: a PostgreSQL store needs the optional extra: "
            "pip install 'dit-gateway[postgres]'"
        ) from exc
    url = settings.store.url
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return PostgresStore(url)


STORES: dict[str, Callable[[Settings], SqlStore]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def open_store(settings: Settings) -> SqlStore:
    """The store named by ``store.url``, checked to be the one ``var/`` belongs with."""
    modes.configure(settings.paths.var, settings.paths.gid)
    try:
        modes.make_private(settings.paths.var)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create {settings.paths.var}: {exc.strerror}") from exc
    scheme = settings.store.url.split(":", 1)[0]
    store = STORES[scheme](settings)
    try:
        check_identity(store, settings.paths.var)
    except BaseException:
        store.close()
        raise
    return store


def check_identity(store: SqlStore, var: Path) -> None:
    """Refuse a store that is empty or foreign while ``var/`` shows another store's history.

    ``var/.store-id`` holds the identity of the store ``var/`` was used with. A new ``var/`` takes
    the store's; a store restored wrongly (emptied, another gateway's) would make every file
    look new and send placements to ESR twice, so it is refused until an operator decides.
    """
    marker = var / MARKER
    sid, fresh = store.store_id()
    try:
        known: str | None = marker.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        known = None
    except OSError as exc:
        raise StoreUnavailable(f"cannot read {marker}: {exc.strerror}") from exc
    if known == sid:
        return
    if known is not None or (fresh and _has_history(var)):
        raise StoreMismatch(
            f"the store is {'empty' if fresh else 'not the one'} that {var} was used with "
            f"({marker} names store {known or '(none)'}, the store is {sid}); restore the store "
            f"from its backup, or move {var} aside to start afresh on purpose. Nothing was "
            "processed."
        )
    try:
        files.write_atomic(marker, f"{sid}\n".encode("ascii"))
    except TransientError as exc:
        raise StoreUnavailable(str(exc)) from exc


def _has_history(var: Path) -> bool:
    """Whether ``var/`` holds files the gateway took (archived, quarantined or in hand)."""
    for name in ("archive", "quarantine", "processing"):
        folder = var / name
        if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
            return True
    return False


__all__ = ["STORES", "Receipt", "SqlStore", "open_store"]
