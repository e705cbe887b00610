"""Acknowledging the line alarms through the status server: `POST /api/alarms/ack` (the page's button and
`lineside alarms ack`). The only route that changes anything, and only a warning's latch: never a verdict.

A request must carry the page's credentials when it has a guard (edge/status/auth.py: the SameSite=Strict
session cookie or the bearer token), and must be one no other site can make a browser send: a JSON body
(`Content-Type: application/json` is not a "simple" request, so a cross-site one needs a CORS preflight,
which this server never grants), from no other origin, and on an open page (127.0.0.1) addressed to a
loopback name (so a rebound DNS name cannot reach it).
"""

from __future__ import annotations

import json
import queue
import secrets
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from edge.runtime.messages import AlarmAck
from edge.spc.ack import check_chart_name
from edge.status.alarms import AlarmBoard

ROUTE = "/api/alarms/ack"
MAX_BODY_BYTES = 4096
WAIT_S = 3.0  # the alarms worker handles an acknowledgement within its 50 ms poll; 3 s is a stalled one
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CHECKED_HEADERS = ("Content-Type", "Host", "Origin")
Reply = tuple[HTTPStatus, dict[str, Any]]


class AckOutbox:
    """Acknowledgements asked in the HTTP threads, sent by the status worker's loop (a ZeroMQ socket belongs
    to one thread). Bounded: a burst of clicks cannot grow it."""

    def __init__(self, size: int = 16) -> None:
        self._queue: queue.Queue[AlarmAck] = queue.Queue(size)

    def put(self, ack: AlarmAck) -> bool:
        try:
            self._queue.put_nowait(ack)
        except queue.Full:
            return False
        return True

    def take(self) -> list[AlarmAck]:
        taken = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                return taken


def cross_site_refusal(headers: Mapping[str, str | None], open_page: bool) -> str | None:
    """Why this request may come from another site (the 403's text), or None when it cannot; `headers`
    holds CHECKED_HEADERS (None: absent)."""
    content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        return "send the acknowledgement as JSON (Content-Type: application/json)"
    host = headers.get("Host") or ""
    origin = headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return "a request from another origin"
    if open_page and urlsplit(f"//{host}").hostname not in LOOPBACK_HOSTS:
        return "the open page (127.0.0.1) is acknowledged through 127.0.0.1 or localhost only"
    return None


def parse_request(body: bytes) -> tuple[str, tuple[str, ...], str | None]:
    """(source, charts, the user the client names) of a request body; ValueError saying what is wrong."""
    data = json.loads(body.decode("utf-8")) if body.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    source = data.get("source", "page")
    if source not in ("page", "cli"):
        raise ValueError("source: 'page' or 'cli'")
    charts = data.get("charts") or []
    if not isinstance(charts, list) or not all(isinstance(c, str) for c in charts) or len(charts) > 64:
        raise ValueError("charts: a list of chart names")
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise ValueError("user: a name")
    # A name the client gives is only a name: recorded as given, cut short (it never authenticates).
    return source, tuple(check_chart_name(c) for c in charts), user[:32] if user else None


def acknowledge(
    board: AlarmBoard, outbox: AckOutbox, source: str, charts: tuple[str, ...], user: str | None
) -> Reply:
    """Send the acknowledgement to the alarms worker and wait (bounded) to see it handled: 200 with the
    charts it released (none: nothing was in alarm), 202 when not seen in time, 503 when the alarms worker
    is not running."""
    _, current = board.get()
    if not current:
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the alarms worker is not running"}
    ack = AlarmAck(
        id=secrets.token_hex(8),
        source="cli" if source == "cli" else "page",
        user=user,
        charts=charts,
        t=time.time(),
    )
    if not outbox.put(ack):
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too many acknowledgements at once; try again"}
    done = board.wait_for_ack(ack.id, WAIT_S)
    if done is None:
        return HTTPStatus.ACCEPTED, {"id": ack.id, "pending": True}
    if done.get("undelivered"):
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the alarms worker is not running"}
    state, _ = board.get()
    active = list(state.active) if state is not None else []
    return HTTPStatus.OK, {"id": ack.id, "charts": done.get("charts", []), "active": active}
