"""The operator's HTTP server inside ``run`` (spec 10): ``/metrics``, ``/healthz``, ``/readyz``,
``/`` (the status page) and ``/acks/<id>`` (a file's acknowledgement, linked from the page).

The standard library's :class:`~http.server.ThreadingHTTPServer`: no new runtime, a thread per
connection (at most :data:`MAX_CONNECTIONS`, each dropped after :data:`IDLE_SECONDS` without a
byte), so that a client that connects and says nothing (or slowly) cannot keep ``/healthz`` from
answering. What reads the store runs in one thread of its own, one request at a time (a scrape,
a probe or a page is small), through that thread's own connection (SQLite: WAL readers do not
block the writer); it never takes the work lock, and never holds anything the pipeline waits
for. Off when ``[http] listen`` is empty.
"""

from __future__ import annotations

import dataclasses
import queue
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as NoAnswer
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import logs
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.ops.expect import ExpectWatch
from gateway.ops.health import STORE_UNREACHABLE, Check, not_ready
from gateway.ops.metrics import Metrics
from gateway.store.exchange import ExchangeLedger
from gateway.store.interfaces import Store
from gateway.store.operations import OperationsLedger, RecentFile

log = logs.get("gateway.http")

REFRESH_SECONDS = 15
IDLE_SECONDS = 10  # a connection that sends (or takes) nothing for this long is closed
MAX_CONNECTIONS = 32  # open at once; more are closed at once, so threads stay bounded
STORE_WAIT_SECONDS = 60  # a request whose store work has not finished by then is answered 503
CONNECT_WAIT_SECONDS = 2.0  # the pages' wait for a store connection: a store that is down is
# said (dit_gateway_store_up 0, "store unreachable") within a scrape's timeout, not after 10 s
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
        if any(reason.startswith(STORE_UNREACHABLE) for reason in context["not_ready"]):
            return _TEMPLATES.get_template("status.html").render(context)  # asked once is enough
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


Answer = tuple[HTTPStatus, bytes, str]  # status, body, content type
_RECEIPT_ID = re.compile(r"[0-9]{1,18}")


def _answer(status: Status, path: str) -> Answer:
    """What ``path`` answers; run in the store's thread (every route but ``/healthz`` may read
    the store)."""
    if path == "/metrics":
        return HTTPStatus.OK, generate_latest(status.metrics.registry), CONTENT_TYPE_LATEST
    if path == "/readyz":
        reasons = not_ready(status.checks)
        body = ("\n".join(reasons) if reasons else "ready") + "\n"
        code = HTTPStatus.SERVICE_UNAVAILABLE if reasons else HTTPStatus.OK
        return code, body.encode(), "text/plain; charset=utf-8"
    if path in ("/", "/index.html"):
        return HTTPStatus.OK, status.page().encode(), "text/html; charset=utf-8"
    if path.startswith("/acks/"):
        # a receipt's id: ASCII digits that fit the store's integers ("²".isdigit() is true,
        # and 10**30 is too large for SQLite): anything else is no acknowledgement, not a 500
        ack = status.ack(int(path[6:])) if _RECEIPT_ID.fullmatch(path[6:]) else None
        if ack is None:
            return HTTPStatus.NOT_FOUND, b"no such acknowledgement\n", "text/plain"
        return HTTPStatus.OK, ack, "application/xml"
    return HTTPStatus.NOT_FOUND, b"not found\n", "text/plain"


class _StoreThread:
    """One daemon thread doing the requests' store work, one at a time, through its own
    connection (the store's are per thread). A daemon thread: one stuck in a store that hangs
    must not keep the process from exiting."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Answer], Future[Answer]] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._run, name="http-store", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], Answer]) -> Future[Answer]:
        """``work``'s answer, to come."""
        future: Future[Answer] = Future()
        self._jobs.put((work, future))
        return future

    def stop(self) -> None:
        """End the thread once the work before this is done."""
        self._jobs.put(None)

    def _run(self) -> None:
        self._store.wait_at_most(CONNECT_WAIT_SECONDS)
        while (job := self._jobs.get()) is not None:
            work, future = job
            if not future.set_running_or_notify_cancel():
                continue  # its request gave up waiting
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to the request's thread
                future.set_exception(exc)


def _handler(status: Status, store_thread: _StoreThread) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dit-gateway"
        timeout = IDLE_SECONDS

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/healthz":  # the process answers: nothing to wait for
                self._send(HTTPStatus.OK, b"ok\n", "text/plain")
                return
            work = store_thread.submit(partial(_answer, status, path))
            try:
                answer = work.result(timeout=STORE_WAIT_SECONDS)
            except NoAnswer:  # the store hangs: say so, and do not queue work behind it
                work.cancel()
                answer = (HTTPStatus.SERVICE_UNAVAILABLE,
                          f"the store did not answer in {STORE_WAIT_SECONDS} s\n".encode(),
                          "text/plain; charset=utf-8")
            except Exception as exc:  # a page must never take the daemon down
                log.exception("http.failed", path=path, error=type(exc).__name__)
                answer = HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain"
            self._send(*answer)

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


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most :data:`MAX_CONNECTIONS` at once: one more is closed
    unanswered (a client that opens hundreds cannot make as many threads)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HttpServer:
    """The server in its thread; ``address`` once started (port 0 picks a free one)."""

    def __init__(self, address: tuple[str, int], status: Status) -> None:
        self._store_thread = _StoreThread(status.store)
        self._server = _Server(address, _handler(status, self._store_thread))
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
        self._store_thread.stop()


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
