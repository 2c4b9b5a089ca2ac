"""The operator's HTTP server inside ``run`` (spec 10): ``/metrics``, ``/healthz``, ``/readyz``,
``/`` (the status page) and ``/acks/<id>`` (a file's acknowledgement, linked from the page).

The standard library's :class:`~http.server.HTTPServer` in one daemon thread: no new runtime, one
request at a time (a scrape, a probe or a page is small), and it never holds anything the
pipeline waits for — it reads the store through its own connection (SQLite: WAL readers do not
block the writer) and never takes the work lock. Off when ``[http] listen`` is empty.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import logs
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.ops.expect import ExpectWatch
from gateway.ops.health import Check, not_ready
from gateway.ops.metrics import Metrics
from gateway.store.exchange import ExchangeLedger
from gateway.store.interfaces import Store
from gateway.store.operations import OperationsLedger, RecentFile

log = logs.get("gateway.http")

REFRESH_SECONDS = 15
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined,
)


@dataclass
class Status:
    """Everything the HTTP server answers from."""

    settings: Settings
    store: Store
    metrics: Metrics
    watch: ExpectWatch
    checks: Sequence[Check]

    def page(self) -> str:
        """The status page: ids and codes only (file names scrubbed as in the logs)."""
        ops = OperationsLedger(self.store)
        context: dict[str, Any] = {
            "refresh": REFRESH_SECONDS, "node": self.settings.store.node or "this host",
            "now": datetime.now(UTC).isoformat(timespec="seconds"),
            "not_ready": not_ready(self.checks), "overdue": self.watch.overdue,
            "expects": self.watch.expects, "recent": [], "record_rejections": [],
            "file_rejections": [], "held": [], "awaiting": [], "failed": [], "partners": [],
        }
        try:
            context["recent"] = [_shown(f) for f in ops.recent()]
            context["record_rejections"] = [
                {"flow": flow, "reason": reason, "vpd": vpd, "count": n}
                for flow, result, reason, vpd, n in sorted(ops.records())
                if result == "rejected"
            ]
            context["file_rejections"] = [
                {"channel": c, "code": code, "count": n} for c, code, n in ops.file_rejections()
            ]
            context["held"] = [{"placement_id": p, "due": due}
                               for p, due, _source in self.store.held_all()]
            context["awaiting"] = [
                {"vpd": a.vpd, "shown": logs.scrub(a.name), "written_at": a.written_at,
                 "records": a.records} for a in self.store.loads_awaiting()
            ]
            context["failed"] = [{"placement_id": p, "vpd": v, "action": a}
                                 for p, v, a, _load in self.store.failed_applicants()]
            context["partners"] = ExchangeLedger(self.store).partners()
        except GatewayError as exc:
            context["not_ready"] = [*context["not_ready"], f"store unreadable: {exc}"]
        return _TEMPLATES.get_template("status.html").render(context)

    def ack(self, rid: int) -> bytes | None:
        """The acknowledgement of receipt ``rid``, or None."""
        name = OperationsLedger(self.store).ack_name(rid)
        if name is None:
            return None
        try:
            return (self.settings.paths.acks / name).read_bytes()
        except OSError:
            return None


def _shown(file: RecentFile) -> dict[str, Any]:
    """A ledger row as the page shows it: the partner's file name scrubbed, never raw."""
    row = dataclasses.asdict(file)
    row["shown"] = logs.scrub(row.pop("name"))
    row.pop("ack_name")
    return row


def _handler(status: Status) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dit-gateway"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            try:
                self._route(path)
            except Exception as exc:  # a page must never take the daemon down
                log.exception("http.failed", path=path, error=type(exc).__name__)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")

        def _route(self, path: str) -> None:
            if path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(status.metrics.registry),
                           CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(HTTPStatus.OK, b"ok\n", "text/plain")
            elif path == "/readyz":
                reasons = not_ready(status.checks)
                body = ("\n".join(reasons) if reasons else "ready") + "\n"
                code = HTTPStatus.SERVICE_UNAVAILABLE if reasons else HTTPStatus.OK
                self._send(code, body.encode(), "text/plain; charset=utf-8")
            elif path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, status.page().encode(), "text/html; charset=utf-8")
            elif path.startswith("/acks/") and path[6:].isdigit():
                ack = status.ack(int(path[6:]))
                if ack is None:
                    self._send(HTTPStatus.NOT_FOUND, b"no such acknowledgement\n", "text/plain")
                else:
                    self._send(HTTPStatus.OK, ack, "application/xml")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

        def _send(self, code: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Requests are not logged (a scrape every few seconds would drown the log)."""

    return Handler


class HttpServer:
    """The server in its thread; ``address`` once started (port 0 picks a free one)."""

    def __init__(self, address: tuple[str, int], status: Status) -> None:
        self._server = HTTPServer(address, _handler(status))
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) it listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="http",
                                        daemon=True)
        self._thread.start()
        host, port = self.address
        log.info("http.listening", host=host, port=port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def start(settings: Settings, status_of: Callable[[], Status]) -> HttpServer | None:
    """Start the server on ``[http] listen``; None when it is off or cannot listen. A port in
    use is logged (``http.unavailable``) and the daemon goes on: files matter more than pages."""
    address = settings.http.address
    if address is None:
        return None
    try:
        server = HttpServer(address, status_of())
    except OSError as exc:
        log.error("http.unavailable", host=address[0], port=address[1],
                  error=exc.strerror or str(exc))
        return None
    server.start()
    return server
