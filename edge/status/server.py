"""The status HTTP server: the page, its JSON, the annotated last frame and Prometheus `/metrics`.

A stdlib ThreadingHTTPServer in a thread of the status worker; it only reads the worker's state.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from edge.errors import LinesideError
from edge.status.frame import LastFrame
from edge.status.metrics import LineMetrics
from edge.status.state import StationState

log = logging.getLogger(__name__)

CLIENT_TIMEOUT_S = 10.0  # a client that stops reading cannot hold a server thread for longer


def page_html() -> bytes:
    """The status page (package data beside this module)."""
    return resources.files("edge.status").joinpath("page.html").read_bytes()


class StatusServer:
    """Serves the station's state on `bind:port` until `close`."""

    def __init__(
        self, bind: str, port: int, state: StationState, metrics: LineMetrics, frame: LastFrame
    ) -> None:
        page = page_html()
        handler = type("Handler", (_Handler,), {"app": (state, metrics, frame, page)})
        try:
            self.httpd = ThreadingHTTPServer((bind, port), handler)
        except OSError as exc:
            raise LinesideError(f"status: cannot listen on {bind}:{port} ({exc.strerror})") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.2,), name="status-http")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(timeout_s)
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    app: tuple[StationState, LineMetrics, LastFrame, bytes]
    timeout = CLIENT_TIMEOUT_S
    server_version = "lineside-status"

    def do_GET(self) -> None:
        state, metrics, frame, page = self.app
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", page)
        elif path == "/api/status":
            self._send_json(state.snapshot())
        elif path == "/api/frame.jpg":
            rendered = frame.render(state.recent())
            if rendered is None:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"no kept image among the recent parts\n")
            else:
                event, jpeg = rendered
                seq = f"{event.trigger.boot_id}-{event.trigger.seq}"
                self._send(HTTPStatus.OK, "image/jpeg", jpeg, {"X-Part": seq})
        elif path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, metrics.exposition())
        elif path == "/healthz":
            self._send(HTTPStatus.OK, "text/plain", b"ok\n")
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def _send_json(self, body: dict[str, Any]) -> None:
        self._send(HTTPStatus.OK, "application/json", json.dumps(body).encode("utf-8"))

    def _send(
        self, status: HTTPStatus, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
