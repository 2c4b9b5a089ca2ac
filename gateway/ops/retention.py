"""``[retention] days`` (spec 10): the daily job (and ``tick``) removes what is older than that.

Removed, by modification time before ``as_of`` minus ``days``: files in ``var/archive/`` and
``var/quarantine/``, and outputs in ``outbox/`` that every SFTP partner they are for has been
sent (the delivery ledger holds that content of that path as *sent*). Never removed: anything in
``var/processing/``; an output no partner delivers (whoever collects it from the outbox removes
it: the gateway cannot know it was taken); an output a partner has not been sent; an applicant
load that ESR has not wholly confirmed (spec 6.5). Empty day folders of the archive go too. What
was freed is logged as counts and bytes per kind — never a name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from gateway import logs
from gateway.flows import Context, Plan
from gateway.store.exchange import ExchangeLedger
from gateway.transport import files

log = logs.get("gateway.retention")


@dataclass
class Freed:
    """What one run removed (files and bytes by kind) and kept (old but still needed)."""

    files: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)

    def remove(self, kind: str, path: Path) -> None:
        """Remove one file, counting it."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self.files[kind] += 1
        self.bytes[kind] += size


def _old(path: Path, cutoff: float) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff
    except OSError:
        return False


def apply_retention(ctx: Context) -> Freed:
    """Remove what is older than ``[retention] days`` before ``ctx.as_of`` (see the module)."""
    paths = ctx.settings.paths
    start = datetime.combine(ctx.as_of - timedelta(days=ctx.settings.retention.days), time(), UTC)
    cutoff = start.timestamp()
    freed = Freed()
    for kind, root in (("archive", paths.archive), ("quarantine", paths.quarantine)):
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if _old(path, cutoff):
                    freed.remove(kind, path)
    if paths.archive.is_dir():
        for folder in sorted((p for p in paths.archive.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
    if paths.outbox.is_dir():
        _delivered_outputs(ctx, cutoff, freed)
    for kind in ("archive", "quarantine", "outbox"):
        log.info("retention.removed", kind=kind, files=freed.files[kind],
                 bytes=freed.bytes[kind], kept=freed.kept[kind])
    return freed


def _delivered_outputs(ctx: Context, cutoff: float, freed: Freed) -> None:
    """Old outputs sent to every partner they are for, and not loads awaiting confirmation."""
    awaiting = {(load.vpd, load.name) for load in ctx.store.loads_awaiting()}
    outbox = ctx.settings.paths.outbox
    for path in sorted(outbox.rglob("*")):
        if not _old(path, cutoff) or files.is_temporary(path.name):
            continue
        relative = path.relative_to(outbox)
        partners = [p.name for p in ctx.settings.sftp
                    if any(relative.is_relative_to(entry) for entry in p.deliver)]
        parts = relative.parts
        load = parts[0] == "esr" and len(parts) == 3 and (parts[1], parts[2]) in awaiting
        if not partners or load:
            freed.kept["outbox"] += 1
            continue
        sha = files.sha256_of(path)
        ledger = ExchangeLedger(ctx.store)
        if all(ledger.sent(partner, relative.as_posix(), sha) for partner in partners):
            freed.remove("outbox", path)
        else:
            freed.kept["outbox"] += 1


def retention_job(ctx: Context) -> Plan:
    """The daily job: the files are removed now (each removal stands alone); no outputs."""
    apply_retention(ctx)
    return Plan()


__all__ = ["Freed", "apply_retention", "retention_job"]
