"""The command line (spec section 8). The only place that turns errors into exit codes."""

from __future__ import annotations

import gc
import os
import pwd
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import date, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from gateway import config as config_module
from gateway import logs
from gateway.documents import BY_ROOT
from gateway.errors import (
    AlreadyRunning,
    ConfigError,
    GatewayError,
    OutputLost,
    RejectedFile,
    StoreMismatch,
    TransientError,
)
from gateway.flows import Context, Flow
from gateway.flows import checks as checks_flow
from gateway.flows import confirmations as confirmations_flow
from gateway.flows import persons as persons_flow
from gateway.flows import placements as placements_flow
from gateway.flows import positions as positions_flow
from gateway.pipeline import Pipeline
from gateway.reading import parse
from gateway.store import open_store
from gateway.store.base import Receipt
from gateway.store.interfaces import Store
from gateway.xml.secure import read_root

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128  # + the signal's number, as a shell reports a command a signal ended

FLOWS: dict[str, Flow] = {
    "positions": positions_flow.plan,
    "persons": persons_flow.plan,
    "placements": placements_flow.plan,
    "checks": checks_flow.plan,
    "confirmations": confirmations_flow.plan,
}


def _config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="TOML settings (default: config/gateway.toml if present, else built-in defaults).",
    )(f)


def _as_of_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--as-of",
        "as_of",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="Processing date YYYY-MM-DD (default: today), to replay a day or fix time in tests.",
    )(f)


def _day(value: datetime | None) -> date:
    return value.date() if value else date.today()


def _settings(path: Path | None) -> config_module.Settings:
    try:
        settings = config_module.load(path)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    logs.configure(settings.log.format, settings.log.level)
    return settings


@contextmanager
def _pipeline(settings: config_module.Settings) -> Iterator[Pipeline]:
    _check_var_owner(settings.paths.var)
    try:
        store: Store = open_store(settings)
    except StoreMismatch as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except GatewayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REJECTED)
    with store:
        yield Pipeline(settings, store, FLOWS)


def _check_var_owner(var: Path) -> None:
    """Refuse (exit 2) to work on a ``var/`` that another user owns: what this process made
    there as itself (``sudo dit-gateway …``: the store's WAL, a day's archive folder, an
    acknowledgement) would be out of the gateway user's reach, and the daemon would stop on it.
    A ``var/`` not made yet is made now, by this user."""
    try:
        owner = var.stat().st_uid
    except OSError:
        return  # not there yet (or not reachable: opening the store says why)
    if owner == os.geteuid():
        return
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    click.echo(
        f"error: {var} belongs to {name} (uid {owner}), not to this user (uid {os.geteuid()}): "
        f"run dit-gateway as {name} (sudo -u {name} dit-gateway …), so that what it writes "
        "stays the gateway's", err=True)
    sys.exit(EXIT_USAGE)


# Python's cyclic collector runs every 700 new container objects by default, and each of its
# full passes walks every object alive. A national file builds millions of small records, a
# few dozen alive at a time and none in a cycle: with the default, the collector took 0.3-0.5 s
# of a 60,000-placement file (docs/performance.md, eighth round); every 20,000, 0.19 s; every
# 50,000, 0.05 s (a window's records die before they are walked; twelfth round), for ~5 MiB
# more at a position or person extract's peak (every 200,000: 0.01 s, 6 MiB).
GC_THRESHOLD = (50_000, 10, 10)


def tune_gc() -> None:
    """Move what the imports made out of the collector's way (``gc.freeze``: modules, classes
    and functions live as long as the process) and collect young objects every
    :data:`GC_THRESHOLD` new objects instead of every 700. Cycles are still collected."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


class _StdoutClosed(Exception):
    """Standard output's reader has gone (``dit-gateway status | head``)."""


def _out(text: str) -> None:
    """A line on standard output; :class:`_StdoutClosed` when nobody reads it any more (a
    broken pipe anywhere else, such as the look-ahead reader's, stays what it is)."""
    try:
        click.echo(text)
    except BrokenPipeError as exc:
        raise _StdoutClosed from exc


class _Commands(click.Group):
    """The commands, each ending in one line (and a scrubbed log entry with the traceback)
    rather than Python's raw traceback when something unforeseen goes wrong: a traceback's
    text could carry a record's values to the terminal or a job's mail. Ctrl-C is one line
    too, and a closed standard output (``| head``) ends the command quietly, as it does
    ``cat``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED + signal.SIGINT)
        except _StdoutClosed:
            # what is still buffered for standard output would fail again at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            sys.exit(EXIT_INTERRUPTED + signal.SIGPIPE)
        except Exception as exc:
            _internal_error(exc)


class _Stopping:
    """SIGINT (Ctrl-C) and SIGTERM while ``process`` or ``requeue`` take their files, as the
    daemon has them: the first lets the file in hand finish and no other be taken (the loop
    asks :attr:`signum`); a second stops at once, exit 128 + the signal, the file in hand left
    claimed for the next ``process`` or the daemon to recover, as after a crash. The handler
    takes no lock (it runs between any two bytecodes of the main thread): it writes its line
    with ``os.write``."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._before: dict[int, Any] = {}

    def __enter__(self) -> _Stopping:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._before[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            os.write(2, b"stopped at once: the file in hand stays in var/processing/ and is "
                        b"taken by the next process or the daemon\n")
            os._exit(EXIT_INTERRUPTED + signum)
        self.signum = signum
        os.write(2, b"stopping after the file in hand (a second signal stops at once)\n")


def _internal_error(exc: Exception, left: str = "") -> NoReturn:
    """Say in one line that ``exc`` went unforeseen (and what it ``left``), its traceback in
    the log (scrubbed as every log line); exit 1."""
    logs.get().error("command.failed", error=type(exc).__name__, exc_info=exc)
    click.echo(f"error: internal error ({type(exc).__name__}; its traceback is logged as "
               f"command.failed){left}", err=True)
    sys.exit(EXIT_REJECTED)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dit-gateway")
def main() -> None:
    """dit-gateway: the file-exchange gateway of the NHS Doctors in Training interface.

    Files from ESR, TIS and Trac arrive in inbox/esr, inbox/tis and inbox/trac; outputs
    (ESR loads, TIS extracts, acknowledgements, MSO notifications) appear in outbox/.
    State lives in var/ (SQLite by default). See docs/operations.md.
    """
    tune_gc()


@main.command()
@_config_option
def run(config_path: Path | None) -> None:
    """Run the daemon: watch the inboxes, poll SFTP partners, run scheduled jobs, and serve
    /metrics, /healthz, /readyz and the status page on [http] listen (default 127.0.0.1:9180),
    until SIGTERM or SIGINT.

    On a signal it finishes the file in hand and exits 0; a second signal forces.
    """
    from gateway.daemon import Daemon  # noqa: PLC0415
    from gateway.store.exchange import ExchangeLedger  # noqa: PLC0415
    from gateway.transport.exchange import PartnerExchange  # noqa: PLC0415
    from gateway.transport.local import LocalIntake  # noqa: PLC0415

    settings = _settings(config_path)
    _check_partner_keys(settings)
    intake = LocalIntake(
        settings.paths.inbox,
        settings.intake.settle_seconds,
        settings.intake.rescan_seconds,
        settings.intake.polling_observer,
    )
    with _pipeline(settings) as pipeline:
        exchanges = [
            PartnerExchange(
                partner,
                inbox=settings.paths.inbox,
                outbox=settings.paths.outbox,
                ledger=ExchangeLedger(pipeline.store),
                settle_seconds=settings.intake.settle_seconds,
                max_bytes=settings.intake.max_bytes,
            )
            for partner in settings.sftp
        ]
        try:
            code = Daemon(pipeline, intake, exchanges).run()
        except AlreadyRunning as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
    sys.exit(code)


def _check_partner_keys(settings: config_module.Settings) -> None:
    """Every SFTP partner's private key must load (with its passphrase) before the daemon
    starts: a bad key is a configuration error, not a partner that is down."""
    if not settings.sftp:
        return
    from gateway.transport.sftp import SftpEndpoint  # noqa: PLC0415

    for i, partner in enumerate(settings.sftp):
        try:
            SftpEndpoint(partner).check_key()
        except GatewayError as exc:
            click.echo(f"configuration error: sftp[{i}].private_key: {exc}", err=True)
            sys.exit(EXIT_USAGE)


def _channel_of(path: Path, settings: config_module.Settings, pipeline: Pipeline) -> str:
    channel = _inbox_channel(path, settings)
    if channel is not None:
        return channel
    try:
        root = read_root(path, settings.intake.max_bytes)
    except RejectedFile:
        return config_module.UNKNOWN_CHANNEL
    kind = BY_ROOT.get((root.namespace, root.name))
    return kind.channel.value if kind else config_module.UNKNOWN_CHANNEL


def _inbox_channel(path: Path, settings: config_module.Settings) -> str | None:
    """The channel of a file in an inbox folder (``inbox/<channel>/``); None if elsewhere."""
    parent = path.resolve().parent
    if parent.parent == settings.paths.inbox.resolve() and parent.name in config_module.CHANNELS:
        return parent.name
    return None


@main.command()
@_config_option
@_as_of_option
@click.argument(
    "files", nargs=-1, required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
)
def process(config_path: Path | None, as_of: datetime | None, files: tuple[Path, ...]) -> None:
    """Take FILES through exactly the daemon's pipeline, in the order given, then stop.

    Each file is copied into var/ (the named file is left where it is), acknowledged in
    outbox/reports/acks/, and archived or quarantined. Safe while a daemon runs on the same
    var/: claims are owned in the store and each file's rules run one at a time. Exit 0: all
    processed (record rejections included); 1: a file was rejected whole or could not be
    processed; 2: usage (a FILE that does not exist or is not a regular file: a FIFO, a
    device, a process substitution) or configuration. With a second core, the next FILE is
    parsed in a helper process while one is decided.

    Ctrl-C (or SIGTERM) lets the file in hand finish and takes no FILE after it, exit 130
    (143); a second one stops at once, and the file in hand is finished by the next process
    or the daemon, as after a crash.
    """
    # before anything is taken: opened to be read, a FIFO would wait for a writer (or be
    # drained by the look-ahead's hash), and the claim refuses it anyway
    odd = [str(f) for f in files if not f.is_file()]
    if odd:
        click.echo(f"error: not a regular file: {', '.join(odd)}", err=True)
        sys.exit(EXIT_USAGE)
    settings = _settings(config_path)

    def claim(pipeline: Pipeline, path: Path, after: Path | None) -> Receipt:
        if after is not None:
            ask_ahead(pipeline, after, settings)
        return pipeline.claim(path, _channel_of(path, settings, pipeline), copy=True)

    nexts = [*files[1:], None]
    sys.exit(_take_through(
        settings, _day(as_of),
        [(str(path), partial(claim, path=path, after=after))
         for path, after in zip(files, nexts, strict=True)],
        ahead=len(files) > 1,
    ))


def ask_ahead(pipeline: Pipeline, path: Path, settings: config_module.Settings) -> None:
    """Have the look-ahead reader parse ``path`` while the file before it is decided, as from
    the channel its claim will give it (:func:`_channel_of`: a file outside the inbox has its
    root element read by the reader, not here). Never fails: a file it cannot look at now
    (unreadable, gone) is the pipeline's to refuse when its turn comes, not a reason to fail
    the file in hand."""
    if pipeline.ahead is None:
        return
    try:
        channel = _inbox_channel(path, settings)
    except OSError:
        return
    pipeline.ask_ahead(path, channel)


def _take_through(
    settings: config_module.Settings, day: date,
    items: Sequence[tuple[str, Callable[[Pipeline], Receipt]]], *, ahead: bool = False,
) -> int:
    """Finish what a crash left, then claim and process each item in order (``process`` and
    ``requeue``), printing each one's fate; the exit status (0, or 1 if one was rejected whole
    or could not be processed). It stops at the first file that cannot be taken or processed
    (the order given may matter: positions before the placements on them), saying which and
    what was left. ``ahead``: the items' claims ask the pipeline's look-ahead reader to parse
    the next file while this one is decided (a second core needed)."""
    worst = EXIT_OK
    stage = " (no FILE was taken)"  # what an error leaves, said after it
    with _pipeline(settings) as pipeline, pipeline.holding(), (
        pipeline.looking_ahead() if ahead else nullcontext()
    ), _Stopping() as stopping:
        try:
            recovered = pipeline.recover()
            for n, receipt in enumerate(recovered):
                if stopping.signum is not None:
                    click.echo(f"interrupted ({len(recovered) - n} file(s) left in "
                               "var/processing/ for the next process or the daemon; no FILE "
                               "was taken)", err=True)
                    return EXIT_INTERRUPTED + stopping.signum
                pipeline.process(receipt, day)
            for label, claim in items:
                stage = f" ({label} was not taken, nor any FILE after it)"
                if stopping.signum is not None:
                    click.echo(f"interrupted{stage}", err=True)
                    return EXIT_INTERRUPTED + stopping.signum
                receipt = claim(pipeline)
                stage = (f" ({label} stays in var/processing/ and is retried; no FILE after it"
                         " was taken)")
                status = pipeline.process(receipt, day)
                stage = f" ({label} was {status}; no FILE after it was taken)"
                _out(f"{label}: {status} ({settings.paths.acks / receipt.ack_name})")
                if status == "rejected":
                    worst = EXIT_REJECTED
        except _StdoutClosed:
            click.echo(f"error: standard output was closed{stage}", err=True)
            raise
        except TransientError as exc:
            # stopped here: the FILEs after it are not taken either (their order may matter)
            click.echo(f"error: {exc}{stage}", err=True)
            worst = EXIT_REJECTED
        except OutputLost as exc:
            click.echo(f"error: {exc}", err=True)
            worst = EXIT_REJECTED
        except Exception as exc:  # a bug: counted against the file, quarantined in the end
            _internal_error(exc, stage)
    return worst


@main.command()
@_config_option
@_as_of_option
def tick(config_path: Path | None, as_of: datetime | None) -> None:
    """Run the scheduled jobs once, now: the weekly duplicate-position report, the
    release of deferred placements that are now due, LOAD_UNCONFIRMED for applicant loads
    ESR has not wholly confirmed after [rules] confirm_hours (hours counted to the run's time:
    now when --as-of is today, else that day at the current time of day), the Medical Rotation
    grid of every VPD whose grid changed, and retention ([retention] days before the day)."""
    from gateway.jobs import run_jobs  # noqa: PLC0415

    settings = _settings(config_path)
    with _pipeline(settings) as pipeline:
        try:
            ran = run_jobs(pipeline, _day(as_of), force=True)
        except TransientError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_REJECTED)
    _out(f"{ran} job(s) run")
    sys.exit(EXIT_OK)


@main.group()
def extract() -> None:
    """Write an extract on demand (outside the daily flow)."""


@extract.command("persons")
@_config_option
@_as_of_option
@click.option("--vpd", required=True, help="The VPD whose persons to send, e.g. RGT.")
@click.option("--full", is_flag=True, required=True,
              help="Send everyone in scope, not only what changed (required: the delta is sent "
                   "automatically with each ESR person extract).")
def extract_persons(config_path: Path | None, as_of: datetime | None, vpd: str,
                    full: bool) -> None:
    """Send TIS a full person update for one VPD: outbox/tis/<DEANERY>/persons-<VPD>-<date>.xml.

    Everyone in scope (U1) goes out, whatever was sent before; the fingerprints are updated so
    the next daily delta starts from here.
    """
    settings = _settings(config_path)
    day = _day(as_of)
    with _pipeline(settings) as pipeline:
        if vpd not in pipeline.store.vpds():
            click.echo(f"error: unknown VPD {vpd}: no ESR position extract has been loaded for it",
                       err=True)
            sys.exit(EXIT_USAGE)
        try:
            with pipeline.store.work_lock():  # plan and commit from state nobody else changes
                ctx = Context(settings, pipeline.store, day, pipeline.clock())
                plan, sent = persons_flow.full_plan(ctx, vpd)
                pipeline.commit(0, f"persons-full-{vpd}-{day}", plan, plan.outputs,
                                lambda: None)
        except TransientError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_REJECTED)
    for output in plan.outputs:
        _out(str(output.path))
    _out(f"{len(plan.outputs)} file(s), {sent} person(s) in scope sent")
    sys.exit(EXIT_OK)


@main.command()
@_config_option
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def validate(config_path: Path | None, files: tuple[Path, ...]) -> None:
    """Check FILES for well-formedness and against their schema only; change nothing.

    Prints file:line:column: message for every error. Exit 0: all valid; 1: any invalid.
    """
    settings = _settings(config_path)
    worst = EXIT_OK
    for path in files:
        try:
            parsed = parse(path, None, settings.intake.max_bytes)
        except RejectedFile as rejected:
            worst = EXIT_REJECTED
            for e in rejected.errors:
                _out(f"{path}:{e.line or 0}:{e.column or 0}: {e.code}: {e.message}")
        except OSError as exc:
            worst = EXIT_REJECTED
            _out(f"{path}:0:0: cannot read: {exc.strerror or exc}")
        else:
            _out(f"{path}: valid {parsed.kind.name} document")
    sys.exit(worst)


@main.command()
@_config_option
@_as_of_option
def status(config_path: Path | None, as_of: datetime | None) -> None:
    """Show what the ledger holds: files by channel and result, deferred placements, loads
    awaiting ESR's confirmation, failed applicants, what resend would send (the rules applied
    as of --as-of, nothing written), and the last extract per VPD."""
    settings = _settings(config_path)
    with _pipeline(settings) as pipeline:
        store = pipeline.store
        _out("files:")
        counts = store.file_counts()
        if not counts:
            _out("  (none)")
        for channel, result, n in counts:
            _out(f"  {channel:5} {result:10} {n}")
        _out("in processing:")
        open_receipts = store.open_receipts()
        _out(f"  {len(open_receipts)}")
        held = store.held_all()
        _out(f"held placements (A3): {len(held)}")
        for placement_id, due, source in held:
            _out(f"  {placement_id:20} due {due}  from {source}")
        for line in _confirmation_lines(store, settings, _day(as_of)):
            _out(line)
        for line in _status_sections(store):
            _out(line)
        _out("last extracts:")
        extracts = store.extracts()
        if not extracts:
            _out("  (none)")
        for kind, vpd, deanery, extract_date in extracts:
            _out(f"  {kind:9} {vpd:5} {deanery:8} {extract_date}")
    sys.exit(EXIT_OK)


def _status_sections(store: Store) -> list[str]:
    """Sections that later flows add to ``status``."""
    from gateway.store.exchange import ExchangeLedger  # noqa: PLC0415

    lines = ["sftp partners:"]
    partners = ExchangeLedger(store).partners()
    if not partners:
        lines.append("  (none)")
    for p in partners:
        lines.append(
            f"  {p.name:12} {p.state:9} last success {p.last_success or 'never'}"
            f"  taken {p.taken}  delivered {p.delivered}"
        )
        if p.last_error:
            lines.append(f"    last error: {p.last_error}")
    return lines


def _confirmation_lines(
    store: Store, settings: config_module.Settings, as_of: date
) -> list[str]:
    """Loads awaiting ESR's confirmation (R6), failed applicants (R3), and what ``resend``
    would send today (R7, the rules applied without committing anything): ids and codes only."""
    from gateway.flows.resend import preview  # noqa: PLC0415

    awaiting = store.loads_awaiting()
    raised = store.unconfirmed_raised()
    lines = [f"loads awaiting confirmation: {len(awaiting)}"]
    for load in awaiting:
        late = "  LOAD_UNCONFIRMED raised" if (load.vpd, load.name) in raised else ""
        lines.append(f"  {load.vpd:5} {load.name}  written {load.written_at}  "
                     f"{load.records} unconfirmed{late}")
    failed = store.failed_applicants()
    lines.append(f"failed applicants: {len(failed)}")
    for pid, vpd, action, load_file in failed:
        lines.append(f"  {pid:20} {vpd:5} {action:8} in {load_file}")
    kept = store.kept()
    lines.append(f"resend would send: {len(kept)}")
    for k, outcome in zip(kept, preview(store, settings, kept, as_of), strict=True):
        why = "failed by ESR" if k.cause == "failed" else f"rejected {k.reason}"
        now = outcome.result.value + (f" {outcome.reason}" if outcome.reason else "")
        lines.append(f"  {k.placement.placement_id:20} {k.vpd or '-':5} {why}; {as_of}: {now}")
    return lines


@main.command()
@_config_option
@_as_of_option
@click.option("--placement", "placement_id", default=None,
              help="The placement to re-send (one ESR failed or the rules rejected).")
@click.option("--all-failed", is_flag=True,
              help="Re-send every placement ESR failed or the rules rejected.")
@click.option("--vpd", default=None,
              help="Only placements of this VPD (the one that failed or rejected them, or one "
                   "where their DPN is on a position now).")
def resend(config_path: Path | None, as_of: datetime | None, placement_id: str | None,
           all_failed: bool, vpd: str | None) -> None:
    """Re-send placements that ESR failed or the rules rejected (R7), every rule applied
    afresh as of the day; TIS need not send them again.

    Writes the ESR loads, MSO notifications (RESENT for each one sent) and the acknowledgement
    outbox/reports/acks/resend-<date>-<n>.ack.xml, and prints each placement's outcome. Exit 0:
    sent or refused by a rule (the acknowledgement says which); 1: nothing to re-send (an
    unknown id, or one neither failed nor rejected); 2: usage.
    """
    from gateway.redo import resend as resend_kept  # noqa: PLC0415

    if (placement_id is None) == (not all_failed):
        click.echo("error: give either --placement ID or --all-failed", err=True)
        sys.exit(EXIT_USAGE)
    settings = _settings(config_path)
    day = _day(as_of)
    with _pipeline(settings) as pipeline, pipeline.holding():
        try:
            for receipt in pipeline.recover():
                pipeline.process(receipt, day)
            done = resend_kept(pipeline, day, placement_id, vpd)
        except (TransientError, OutputLost) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_REJECTED)
    if done is None:
        what = f"placement {placement_id}" if placement_id else "any placement"
        scope = f" in VPD {vpd}" if vpd else ""
        click.echo(f"nothing to re-send: {what}{scope} is not one ESR failed or the rules "
                   "rejected", err=True)
        sys.exit(EXIT_REJECTED)
    for o in done.plan.outcomes:
        reason = f" {o.reason}" if o.reason else ""
        _out(f"{o.record_id}: {o.result.value}{reason}: {o.text}")
    _out(f"acknowledgement: {done.ack.path}")
    sys.exit(EXIT_OK)


@main.command()
@_config_option
@_as_of_option
@click.option("--all", "everything", is_flag=True, help="Every file in var/quarantine/.")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
def requeue(config_path: Path | None, as_of: datetime | None, everything: bool,
            files: tuple[Path, ...]) -> None:
    """Take quarantined FILES (names or paths in var/quarantine/, corrected in place or not)
    through the pipeline again, in the order given; the ledger links each new receipt to the
    one that quarantined the file. Exit as ``process``: 0 all processed, 1 a file rejected
    whole again, 2 usage (a FILE not in var/quarantine/, or neither FILES nor --all).
    """
    from gateway.redo import quarantined_name  # noqa: PLC0415
    from gateway.redo import requeue as requeue_file  # noqa: PLC0415

    if bool(files) == everything:
        click.echo("error: give FILE… or --all", err=True)
        sys.exit(EXIT_USAGE)
    settings = _settings(config_path)
    quarantine = settings.paths.quarantine
    if everything:
        names = sorted(p.name for p in quarantine.glob("*")
                       if p.is_file() and not p.name.startswith(".")) if (
            quarantine.is_dir()) else []
    else:
        found = [quarantined_name(f, quarantine) for f in files]
        missing = [str(f) for f, name in zip(files, found, strict=True) if name is None]
        if missing:
            click.echo(f"error: not in {quarantine}: {', '.join(missing)}", err=True)
            sys.exit(EXIT_USAGE)
        names = [name for name in found if name is not None]
    def claim(pipeline: Pipeline, name: str) -> Receipt:
        return requeue_file(pipeline, name, _channel_of(quarantine / name, settings, pipeline))

    worst = _take_through(settings, _day(as_of),
                          [(name, partial(claim, name=name)) for name in names])
    _out(f"{len(names)} file(s) requeued")
    sys.exit(worst)
