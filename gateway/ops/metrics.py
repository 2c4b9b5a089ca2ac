"""``/metrics`` (spec 10): Prometheus families named ``dit_gateway_*``, labels without personal
data (channels, statuses, flows, results, reason codes, VPD codes, partner names).

What must survive a restart and agree with the acknowledgements — files by status, records by
result and reason, what is held or awaited — is counted from the store at scrape time by
:class:`StoreCollector`; the processing-time histogram is this process's own. A private
:class:`~prometheus_client.CollectorRegistry` per daemon (never the global one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import logs
from gateway.config import CHANNELS, Settings
from gateway.errors import GatewayError
from gateway.ops.expect import ExpectWatch
from gateway.store.exchange import ExchangeLedger
from gateway.store.interfaces import Store
from gateway.store.operations import OperationsLedger
from gateway.transport.files import is_temporary

log = logs.get("gateway.metrics")

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def inbox_waiting(inbox: Path) -> dict[str, int]:
    """Files in each inbox folder not yet claimed (temporary names not counted)."""
    waiting = {}
    for channel in CHANNELS:
        try:
            waiting[channel] = sum(
                1 for p in (inbox / channel).iterdir() if not is_temporary(p.name) and p.is_file()
            )
        except OSError:
            waiting[channel] = 0
    return waiting


class StoreCollector(Collector):
    """The store's counts at scrape time; ``dit_gateway_store_up`` 0 when it cannot be read."""

    def __init__(
        self, settings: Settings, store: Store, watch: ExpectWatch,
        paused: Callable[[], str | None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.ledger = OperationsLedger(store)
        self.watch = watch
        self.paused = paused

    def collect(self) -> Iterator[Metric]:
        """Every family of section 10 that the store knows."""
        up = GaugeMetricFamily("dit_gateway_store_up", "1 when the store answered this scrape")
        try:
            families = list(self._from_store())
        except GatewayError as exc:
            log.warning("metrics.store_unavailable", error=str(exc))
            up.add_metric([], 0)
            families = []
        else:
            up.add_metric([], 1)
        yield up
        yield from families
        paused = GaugeMetricFamily(
            "dit_gateway_intake_paused", "1 while intake is paused (full disk, store out of reach)"
        )
        paused.add_metric([], 1 if self.paused() else 0)
        yield paused
        overdue = GaugeMetricFamily(
            "dit_gateway_expected_file_overdue",
            "1 while an [[expect]] file has not come for longer than every_hours",
            labels=["expected"],
        )
        late = {o.key for o in self.watch.overdue}
        for expect in self.watch.expects:
            overdue.add_metric([expect.key], 1 if expect.key in late else 0)
        yield overdue
        checked = CounterMetricFamily(
            "dit_gateway_expect_checks", "Times the [[expect]] entries were checked"
        )
        checked.add_metric([], self.watch.checks)
        yield checked

    def _from_store(self) -> Iterator[Metric]:
        files = CounterMetricFamily(
            "dit_gateway_files", "Inbound files by channel and status (the ledger)",
            labels=["channel", "status"],
        )
        for channel, status, n in self.ledger.files_by_status():
            files.add_metric([channel, status], n)
        yield files
        records = CounterMetricFamily(
            "dit_gateway_records", "Records by flow, result, reason code and VPD",
            labels=["flow", "result", "reason", "vpd"],
        )
        for flow, result, reason, vpd, n in self.ledger.records():
            records.add_metric([flow, result, reason, vpd], n)
        yield records
        waiting = GaugeMetricFamily(
            "dit_gateway_files_waiting", "Files waiting, by channel and where (inbox, processing)",
            labels=["channel", "where"],
        )
        for channel, n in inbox_waiting(self.settings.paths.inbox).items():
            waiting.add_metric([channel, "inbox"], n)
        in_hand = self.ledger.open_by_channel()
        for channel in sorted({*CHANNELS, *in_hand}):
            waiting.add_metric([channel, "processing"], in_hand.get(channel, 0))
        yield waiting
        yield _gauge("dit_gateway_held_placements", "Placements held until their window opens (A3)",
                     len(self.store.held_all()))
        yield _gauge("dit_gateway_loads_awaiting_confirmation",
                     "Applicant load files with records ESR has not confirmed",
                     len(self.store.loads_awaiting()))
        yield _gauge("dit_gateway_failed_loads", "Applicants ESR failed (can be re-sent)",
                     len(self.store.failed_applicants()))
        errors = GaugeMetricFamily(
            "dit_gateway_sftp_error", "1 while an SFTP partner's last attempt failed",
            labels=["partner", "state"],
        )
        success = GaugeMetricFamily(
            "dit_gateway_sftp_last_success_timestamp_seconds",
            "When each SFTP partner last answered (Unix time)", labels=["partner"],
        )
        states = {p.name: p for p in ExchangeLedger(self.store).partners()}
        for partner in self.settings.sftp:
            state = states.get(partner.name)
            errors.add_metric([partner.name, state.state if state else "never"],
                              0 if state and state.state == "connected" else 1)
            if state and state.last_success:
                success.add_metric([partner.name], _unix(state.last_success))
        yield errors
        yield success


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text)
    family.add_metric([], value)
    return family


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Metrics:
    """This daemon's registry: the store's counts and the processing-time histogram."""

    def __init__(
        self, settings: Settings, store: Store, watch: ExpectWatch,
        paused: Callable[[], str | None],
    ) -> None:
        self.registry = CollectorRegistry()
        self.processing = Histogram(
            "dit_gateway_processing_seconds", "Time from claim to acknowledgement, by channel",
            ["channel"], buckets=BUCKETS, registry=self.registry,
        )
        self.registry.register(StoreCollector(settings, store, watch, paused))

    def observe(self, channel: str, seconds: float) -> None:
        """One file taken to its end in ``seconds``."""
        self.processing.labels(channel).observe(seconds)
