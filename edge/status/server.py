"""The status HTTP server: the page, its JSON, the annotated last frame and Prometheus `/metrics`.

A stdlib ThreadingHTTPServer in a thread of the status worker; it reads the worker's state, and its one
write is acknowledging the line alarms (edge/status/acks.py). With a guard (`status.users_file` /
`token_file`) every route first asks for a login or the bearer token.
"""

from __future__ import annotations

import html
import json
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST

from edge.i18n import say
from edge.locale import environment_language, language_from
from edge.locale.names import Glossary
from edge.station.httpserver import CLIENT_TIMEOUT_S, BackgroundHttpServer
from edge.status import acks
from edge.status.auth import StatusGuard, clear_cookie, set_cookie
from edge.status.evidence import PREFIXES as EVIDENCE_ROUTES
from edge.status.evidence import evidence_response
from edge.status.frame import LastFrame
from edge.status.metrics import LineMetrics
from edge.status.state import StationState
from edge.status.strings import page_strings

log = logging.getLogger(__name__)

MAX_LOGIN_BYTES = 4096  # a login form is a name and a password; anything longer is not one


def page_html() -> bytes:
    """The status page (package data beside this module)."""
    return resources.files("edge.status").joinpath("page.html").read_bytes()


def login_html(message_id: str | None = None, language: str | None = None) -> bytes:
    """The login form in `language` (None: the locale's), with one of the catalog's `login.*` messages
    (never anything a client sent): its `{{id}}` markers are the catalog's words."""
    page = resources.files("edge.status").joinpath("login.html").read_text(encoding="utf-8")
    lang = environment_language() if language is None else language_from(language)
    message = "" if message_id is None else html.escape(say(message_id, lang))
    page = page.replace("{{lang}}", lang)
    words = re.sub(r"\{\{([a-z_.]+)\}\}", lambda m: html.escape(say(m[1], lang)), page)
    return words.replace("<!--message-->", message).encode("utf-8")


class StatusServer(BackgroundHttpServer):
    """Serves the station's state on `bind:port` until `close`."""

    def __init__(
        self,
        bind: str,
        port: int,
        state: StationState,
        metrics: LineMetrics,
        frame: LastFrame,
        *,
        guard: StatusGuard | None = None,
        language: str | None = None,
        outbox: acks.AckOutbox | None = None,
        names: Glossary | None = None,
    ) -> None:
        page = page_html()
        strings = json.dumps(page_strings(language, names), ensure_ascii=False).encode("utf-8")
        attributes = {
            "app": (state, metrics, frame, page),
            "guard": guard,
            "strings": strings,
            "language": language,
            "outbox": outbox,
            "glossary": names,
        }
        handler = type("Handler", (_Handler,), attributes)
        super().__init__("status", bind, port, handler)


class _Handler(BaseHTTPRequestHandler):
    app: tuple[StationState, LineMetrics, LastFrame, bytes]
    guard: StatusGuard | None = None
    strings: bytes = b"{}"
    language: str | None = None
    glossary: Glossary | None = None  # the plant's words for class and stage names (station.names)
    outbox: acks.AckOutbox | None = None  # None: acknowledging is not offered (a server without the worker)
    timeout = CLIENT_TIMEOUT_S
    server_version = "lineside-status"

    def do_GET(self) -> None:
        if not self._admitted():  # first, so that it covers every route, present and future
            return
        state, metrics, frame, page = self.app
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", page)
        elif path == "/api/status":  # with the line alarms' panel (edge/status/alarms.py)
            self._send_json({**state.snapshot(), "alarms": metrics.alarms.panel()})
        elif path == "/api/strings":  # the page's words in the station's language (edge/status/strings.py)
            self._send(HTTPStatus.OK, "application/json; charset=utf-8", self.strings)
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
        elif path.startswith(EVIDENCE_ROUTES):  # a part's evidence, read only (edge/status/evidence.py)
            self._send(*evidence_response(frame.records_dir, path, self.language, self.glossary))
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/login" and self.guard is not None:
            self._login(self.guard)
        elif path == "/logout" and self.guard is not None:
            self.guard.logout(self.headers.get("Cookie", ""))
            self._redirect_home(clear_cookie())
        elif not self._admitted():
            return
        elif path == acks.ROUTE and self.outbox is not None:
            self._acknowledge(self.outbox)
        else:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"read only\n", {"Allow": "GET"})

    def _acknowledge(self, outbox: acks.AckOutbox) -> None:
        """POST /api/alarms/ack: release the latched line alarms (edge/status/acks.py); admitted already."""
        headers = {name: self.headers.get(name) for name in acks.CHECKED_HEADERS}
        refusal = acks.cross_site_refusal(headers, open_page=self.guard is None)
        if refusal is not None:
            log.warning("status: alarm acknowledgement refused from %s: %s", self.address_string(), refusal)
            self._send_json({"error": refusal}, HTTPStatus.FORBIDDEN)
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        try:
            if not 0 <= length <= acks.MAX_BODY_BYTES:
                raise ValueError(f"a body of at most {acks.MAX_BODY_BYTES} bytes")
            source, charts, stated = acks.parse_request(self.rfile.read(length))
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._send_json({"error": f"bad acknowledgement: {exc}"}, HTTPStatus.BAD_REQUEST)
            return
        user = stated
        if self.guard is not None:  # who logged in (or the token) is recorded, not who the client says
            who = self.guard.identify(self.headers.get("Authorization", ""), self.headers.get("Cookie", ""))
            user = f"{stated} (token)" if who == "token" and stated else who
        _, metrics, _, _ = self.app
        status, body = acks.acknowledge(metrics.alarms, outbox, source, charts, user)
        self._send_json(body, status)

    def _admitted(self) -> bool:
        """True when the page is open or the request carries a live login or the token; else the 401 (the
        login form, for a browser) has been sent."""
        guard, headers = self.guard, self.headers
        if guard is None or guard.allows(headers.get("Authorization", ""), headers.get("Cookie", "")):
            return True
        self._unauthorised(None)
        return False

    def _unauthorised(self, message_id: str | None) -> None:
        challenge = {"WWW-Authenticate": 'Bearer realm="lineside-status"'}
        if "text/html" in self.headers.get("Accept", ""):
            form = login_html(message_id, self.language)
            self._send(HTTPStatus.UNAUTHORIZED, "text/html; charset=utf-8", form, challenge)
        else:
            body = b"log in on the page, or send Authorization: Bearer <token>\n"
            self._send(HTTPStatus.UNAUTHORIZED, "text/plain", body, challenge)

    def _login(self, guard: StatusGuard) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_LOGIN_BYTES:
            self._send(HTTPStatus.BAD_REQUEST, "text/plain", b"expected a login form\n")
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        name = form.get("user", [""])[0]
        cookie = guard.login(name, form.get("password", [""])[0]) if guard.has_users else None
        if cookie is None:
            # The name is logged (who tried), never the password.
            log.warning("status: login refused for %r from %s", name[:64], self.address_string())
            self._unauthorised("login.wrong" if guard.has_users else "login.token_only")
            return
        log.info("status: %s logged in from %s", name, self.address_string())
        self._redirect_home(set_cookie(cookie))

    def _redirect_home(self, cookie: str) -> None:
        self._send(HTTPStatus.SEE_OTHER, "text/plain", b"", {"Location": "/", "Set-Cookie": cookie})

    def _send_json(self, body: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, "application/json", json.dumps(body).encode("utf-8"))

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
