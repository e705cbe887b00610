"""The AAS API on HTTP: a stdlib ThreadingHTTPServer in a thread of the AAS worker, GET only.

With a token file every request must carry `Authorization: Bearer <token>` (401 otherwise); the config
refuses any address but 127.0.0.1 without one. Nothing here can reach the line: it only reads.
"""

from __future__ import annotations

import hmac
import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from edge.aas.api import JSON_TYPE, error_body, handle
from edge.aas.live import LiveShell
from edge.errors import LinesideError
from edge.station import tokenfile
from edge.station.httpserver import CLIENT_TIMEOUT_S, BackgroundHttpServer

log = logging.getLogger(__name__)


def read_token(path: Path) -> str:
    """The AAS API's bearer token (`aas.token_file`)."""
    return tokenfile.read_token(path, "aas.token_file")


class AasServer(BackgroundHttpServer):
    """Serves `shell` on `bind:port` until `close`."""

    def __init__(self, bind: str, port: int, shell: LiveShell, token: str | None) -> None:
        handler = type("Handler", (_Handler,), {"shell": shell, "token": token})
        super().__init__("aas", bind, port, handler)


class _Handler(BaseHTTPRequestHandler):
    shell: LiveShell
    token: str | None
    timeout = CLIENT_TIMEOUT_S
    server_version = "lineside-aas"

    def do_GET(self) -> None:
        if not self._authorised():
            body = error_body(HTTPStatus.UNAUTHORIZED, "a bearer token is required")
            self._send(HTTPStatus.UNAUTHORIZED, body, {"WWW-Authenticate": 'Bearer realm="lineside-aas"'})
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            reply = handle(unquote(url.path), query, self.shell.repository(), self.shell.records)
        except LinesideError as exc:  # the records database could not be read: say so, never guess
            log.warning("aas: %s", exc)
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, error_body(503, str(exc)))
            return
        except Exception:  # a bug: the client gets a 500 and the log the traceback, the server goes on
            log.exception("aas: %s failed", self.path)
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR, error_body(500, "internal error, see the appliance log")
            )
            return
        self._send(HTTPStatus(reply.status), reply.body)

    def _refuse(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED, error_body(405, "this AAS API is read only"), {"Allow": "GET"}
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # noqa: N815 (http.server's naming)

    def _authorised(self) -> bool:
        if self.token is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        # Compared in constant time, so the reply's timing does not leak how much of a guess was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def _send(self, status: HTTPStatus, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
