"""Operating the gateway (spec 10): metrics, health, the status page, ``[[expect]]``.

:class:`Operations` is what ``run`` adds to the daemon: the HTTP server on ``[http] listen``, the
expectations checked every few seconds, and the processing-time histogram fed from the pipeline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.ops import server
from gateway.ops.expect import ExpectWatch
from gateway.ops.health import folders_check, paused_check, store_check
from gateway.ops.metrics import Metrics
from gateway.store.interfaces import Store
from gateway.store.operations import OperationsLedger


class Operations:
    """The daemon's operator side."""

    def __init__(
        self, settings: Settings, store: Store, paused: Callable[[], str | None]
    ) -> None:
        self.settings = settings
        self.watch = ExpectWatch(settings.expect, OperationsLedger(store), datetime.now(UTC))
        self.metrics = Metrics(settings, store, self.watch, paused)
        self.status = server.Status(
            settings, store, self.metrics, self.watch,
            [store_check(store), folders_check(settings), paused_check(paused)],
        )
        self.http: server.HttpServer | None = None
        self._next_check = 0.0

    def start(self) -> None:
        """Start the HTTP server (if ``[http] listen`` is set and free)."""
        self.http = server.start(self.settings, lambda: self.status)

    def tick(self, timings: list[tuple[str, float]]) -> None:
        """From the daemon's loop: feed the histogram (emptying ``timings``), check the
        expectations when due."""
        for channel, seconds in timings:
            self.metrics.observe(channel, seconds)
        timings.clear()
        now = time.monotonic()
        if self.watch.expects and now >= self._next_check:
            self._next_check = now + self.watch.interval
            # The store out of reach: the daemon pauses and says so; checked again later.
            with contextlib.suppress(GatewayError):
                self.watch.check()

    def stop(self) -> None:
        """Stop the HTTP server."""
        if self.http is not None:
            self.http.stop()
