"""Settings: TOML parsed once into frozen, typed objects (spec section 9).

Every key has a default, so the gateway runs with no file at all. An unknown key, a value of the
wrong type or a missing key file is a :class:`ConfigError` that names the key. Relative paths in a
file are taken from the folder that holds the file; without a file, from the working directory.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

DEFAULT_CONFIG = Path("config/gateway.toml")
CHANNELS = ("esr", "tis", "trac")
# Files given to ``process`` whose kind cannot be told are claimed under this channel.
UNKNOWN_CHANNEL = "unknown"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Paths:
    """Where the drop folders and the gateway's own state live."""

    inbox: Path = Path("inbox")
    outbox: Path = Path("outbox")
    var: Path = Path("var")
    group: str = ""  # the group that may read the outbox (none: the gateway user's own group)

    @property
    def gid(self) -> int | None:
        """The id of ``group``, or None when no group is set."""
        return grp.getgrnam(self.group).gr_gid if self.group else None

    @property
    def processing(self) -> Path:
        """Files claimed and being processed."""
        return self.var / "processing"

    @property
    def archive(self) -> Path:
        """Inputs processed (or duplicates), by channel and day."""
        return self.var / "archive"

    @property
    def quarantine(self) -> Path:
        """Inputs rejected whole."""
        return self.var / "quarantine"

    @property
    def acks(self) -> Path:
        """One acknowledgement per inbound file."""
        return self.outbox / "reports" / "acks"


@dataclass(frozen=True, slots=True)
class Store:
    """The state store: ``sqlite:///path`` (relative to the config's folder) or ``postgresql://``."""

    url: str = "sqlite:///var/gateway.db"
    lease_seconds: float = 60.0  # a claim whose holder stopped renewing it this long is free
    node: str = ""  # this node's name in claims (default: the host's name); unique per node


@dataclass(frozen=True, slots=True)
class Intake:
    """How inbound files are noticed and taken."""

    settle_seconds: float = 2.0
    rescan_seconds: float = 30.0
    max_file_mb: float = 512.0
    retry_limit: int = 5
    retry_seconds: float = 5.0
    polling_observer: bool = False

    @property
    def max_bytes(self) -> int:
        """The largest file (after decompression) the gateway reads."""
        return int(self.max_file_mb * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class Rules:
    """Parameters of the interface rules (spec section 6)."""

    window_days: int = 91
    cutoff_days: int = 2
    las_occupation_codes: tuple[str, ...] = ()
    out_of_scope_grades: tuple[str, ...] = ("GPST1", "GPST2", "GPST3", "GPST4")
    duplicate_report_weekday: str = "monday"
    confirm_hours: int = 48  # R6: a load not wholly confirmed after this raises LOAD_UNCONFIRMED


@dataclass(frozen=True, slots=True)
class Log:
    """Log format and level."""

    format: str = "json"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Http:
    """The operator's HTTP server inside ``run`` (spec 10): metrics, health, the status page."""

    listen: str = "127.0.0.1:9180"  # host:port; empty: no server

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, or None when the server is off."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the archive, the quarantine and delivered outputs are kept (spec 10)."""

    days: int = 90


@dataclass(frozen=True, slots=True)
class Expect:
    """A file that should come at least every ``every_hours`` (spec 10, ``[[expect]]``)."""

    channel: str
    every_hours: float
    vpd: str = ""
    partner: str = ""

    @property
    def key(self) -> str:
        """What the expectation is about, as the logs, the metric and the page name it."""
        return ":".join(p for p in (self.channel, self.vpd, self.partner) if p)


@dataclass(frozen=True, slots=True)
class SftpPartner:
    """One SFTP partner: where to take files from and deliver outputs to."""

    name: str
    host: str
    user: str
    private_key: Path
    known_hosts: Path
    port: int = 22
    passphrase_env: str = ""
    remote_inbox: str = "/outgoing"
    channel: str = "tis"
    remote_done: str = ""
    remote_outbox: str = "/incoming"
    deliver: tuple[str, ...] = ()
    poll_seconds: float = 30.0
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Settings:
    """All settings, as one immutable object."""

    paths: Paths = field(default_factory=Paths)
    store: Store = field(default_factory=Store)
    intake: Intake = field(default_factory=Intake)
    rules: Rules = field(default_factory=Rules)
    log: Log = field(default_factory=Log)
    http: Http = field(default_factory=Http)
    retention: Retention = field(default_factory=Retention)
    sftp: tuple[SftpPartner, ...] = ()
    expect: tuple[Expect, ...] = ()
    source: Path | None = None

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file named by ``store.url``, or None for another store."""
        prefix = "sqlite:///"
        if not self.store.url.startswith(prefix):
            return None
        return Path(self.store.url[len(prefix) :])


_SECTIONS: dict[str, type[Any]] = {
    "paths": Paths,
    "store": Store,
    "intake": Intake,
    "rules": Rules,
    "log": Log,
    "http": Http,
    "retention": Retention,
}


def load(path: Path | None) -> Settings:
    """Read settings from ``path``; None means ``config/gateway.toml`` if present, else defaults."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return _resolve(Settings(), Path.cwd())
        path = DEFAULT_CONFIG
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    settings = parse(raw)
    return dataclasses.replace(_resolve(settings, path.parent.resolve()), source=path)


def parse(raw: dict[str, Any]) -> Settings:
    """Build settings from a parsed TOML document, refusing unknown keys and wrong types."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("sftp", "expect"):
            if not isinstance(value, list):
                raise ConfigError(f"{key}: expected [[{key}]] tables")
            cls = SftpPartner if key == "sftp" else Expect
            values[key] = tuple(
                _section(f"{key}[{i}]", cls, item) for i, item in enumerate(value)
            )
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table [{key}]")
            values[key] = _section(key, _SECTIONS[key], value)
        else:
            raise ConfigError(f"{key}: unknown section")
    settings = Settings(**values)
    _check(settings)
    return settings


def _section(name: str, cls: type[Any], table: Any) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown key")
        kwargs[key] = _coerce(f"{name}.{key}", hints[key], value)
    missing = [
        k
        for k, f in known.items()
        if k not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{name}.{missing[0]}: required key is missing")
    return cls(**kwargs)


_SCALARS: dict[Any, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (int, float),
    str: (str,),
}


def _coerce(key: str, hint: Any, value: Any) -> Any:
    if hint in _SCALARS:
        if isinstance(value, _SCALARS[hint]) and (hint is bool or not isinstance(value, bool)):
            return float(value) if hint is float else value  # type: ignore[arg-type]
    elif hint is Path:
        if isinstance(value, str) and value:
            return Path(value)
    elif typing.get_origin(hint) is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _check_group(name: str) -> None:
    """``paths.group`` must exist, and the gateway's user must be able to give files to it."""
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"paths.group: there is no group {name!r} on this machine") from None
    if os.geteuid() != 0 and gid != os.getegid() and gid not in os.getgroups():
        raise ConfigError(
            f"paths.group: the gateway's user is not a member of group {name!r}, so it cannot "
            "give the outbox to it"
        )


def _check_http(http: Http) -> None:
    """``http.listen`` is empty or ``host:port`` with a port number."""
    if not http.listen:
        return
    host, colon, port = http.listen.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"http.listen: expected host:port (or empty), got {http.listen!r}")


def _check_expect(settings: Settings) -> None:
    """Each ``[[expect]]``: a channel, a positive period, a partner that exists."""
    partners = {p.name for p in settings.sftp}
    for i, expect in enumerate(settings.expect):
        if expect.channel not in CHANNELS:
            raise ConfigError(f"expect[{i}].channel: expected one of {', '.join(CHANNELS)}")
        if expect.every_hours <= 0:
            raise ConfigError(f"expect[{i}].every_hours: must be positive")
        if expect.partner and expect.partner not in partners:
            raise ConfigError(f"expect[{i}].partner: no [[sftp]] partner named {expect.partner!r}")


def _check(settings: Settings) -> None:
    positive = {
        "intake.settle_seconds": settings.intake.settle_seconds >= 0,
        "intake.rescan_seconds": settings.intake.rescan_seconds > 0,
        "intake.max_file_mb": settings.intake.max_file_mb > 0,
        "intake.retry_limit": settings.intake.retry_limit >= 1,
        "intake.retry_seconds": settings.intake.retry_seconds >= 0,
        "store.lease_seconds": settings.store.lease_seconds > 0,
        "rules.window_days": settings.rules.window_days >= 0,
        "rules.cutoff_days": settings.rules.cutoff_days >= 0,
        "rules.confirm_hours": settings.rules.confirm_hours >= 1,
        "retention.days": settings.retention.days >= 1,
    }
    for key, ok in positive.items():
        if not ok:
            raise ConfigError(f"{key}: must be positive")
    if settings.rules.duplicate_report_weekday not in WEEKDAYS:
        raise ConfigError(
            f"rules.duplicate_report_weekday: expected one of {', '.join(WEEKDAYS)}"
        )
    if settings.log.format not in ("json", "console"):
        raise ConfigError("log.format: expected 'json' or 'console'")
    if settings.log.level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log.level: expected debug, info, warning or error")
    if settings.paths.group:
        _check_group(settings.paths.group)
    _check_http(settings.http)
    _check_expect(settings)
    if not settings.store.url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("store.url: expected sqlite:///PATH or postgresql://…")
    names = set()
    for i, partner in enumerate(settings.sftp):
        if partner.channel not in CHANNELS:
            raise ConfigError(f"sftp[{i}].channel: expected one of {', '.join(CHANNELS)}")
        if partner.name in names:
            raise ConfigError(f"sftp[{i}].name: {partner.name!r} is used twice")
        names.add(partner.name)


def _check_apart(paths: Paths, sqlite: Path | None) -> None:
    """``inbox``, ``outbox`` and ``var`` apart, none of them in another, and the SQLite store
    in neither drop folder: a file the gateway keeps in an inbox would be taken as a partner's
    (its own database among them), and an outbox inside ``var/`` would be private to the
    gateway's user, out of the partners' reach."""
    folders = {"inbox": paths.inbox, "outbox": paths.outbox, "var": paths.var}
    real = {key: folder.resolve() for key, folder in folders.items()}
    for key, folder in real.items():
        for other, around in real.items():
            if key != other and folder.is_relative_to(around):
                where = "the same folder as" if folder == around else "inside"
                raise ConfigError(
                    f"paths.{key}: {folders[key]} is {where} paths.{other} ({folders[other]}):"
                    " the inbox, outbox and var folders must be apart")
    if sqlite is not None:
        for key in ("inbox", "outbox"):
            if sqlite.resolve().is_relative_to(real[key]):
                raise ConfigError(f"store.url: the SQLite file {sqlite} is inside paths.{key} "
                                  f"({folders[key]}): keep it in var")


def _resolve(settings: Settings, base: Path) -> Settings:
    """Make every relative path absolute against ``base`` and check that key files exist."""

    def at(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    paths = dataclasses.replace(
        settings.paths, inbox=at(settings.paths.inbox), outbox=at(settings.paths.outbox),
        var=at(settings.paths.var),
    )
    store = settings.store
    sqlite = settings.sqlite_path
    if sqlite is not None:
        store = dataclasses.replace(store, url=f"sqlite:///{at(sqlite)}")
    _check_apart(paths, at(sqlite) if sqlite is not None else None)
    partners = []
    for i, p in enumerate(settings.sftp):
        resolved = dataclasses.replace(
            p, private_key=at(p.private_key), known_hosts=at(p.known_hosts)
        )
        for key in ("private_key", "known_hosts"):
            if not getattr(resolved, key).is_file():
                raise ConfigError(f"sftp[{i}].{key}: file {getattr(resolved, key)} does not exist")
        partners.append(resolved)
    return dataclasses.replace(settings, paths=paths, store=store, sftp=tuple(partners))
