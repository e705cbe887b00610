"""A stdlib threaded HTTP server on a background thread: what the status page and the AAS API each serve
their own handler with. Bounded: a client that stops reading holds a thread for the handler's timeout only,
and closing waits for the serving thread a bounded time."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge.errors import LinesideError

CLIENT_TIMEOUT_S = 10.0  # a client that stops reading cannot hold a server thread for longer


class BackgroundHttpServer:
    """Serves `handler` on `bind:port` from `start` until `close`; `section` names the config section in the
    one-line error when the port cannot be had."""

    def __init__(self, section: str, bind: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        try:
            self.httpd = ThreadingHTTPServer((bind, port), handler)
        except OSError as exc:
            raise LinesideError(f"{section}: cannot listen on {bind}:{port} ({exc.strerror})") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.2,), name=f"{section}-http")

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
