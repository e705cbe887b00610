"""systemd's notify protocol (sd_notify): READY=1, WATCHDOG=1, STOPPING=1 over $NOTIFY_SOCKET.

A datagram to a Unix socket is all it takes, so it is written here rather than depending on an
unmaintained package. Outside systemd (no NOTIFY_SOCKET) it does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


def notifier(environ: dict[str, str] | None = None) -> Callable[[str], None]:
    """A function sending one notify message; a no-op when not run by systemd with Type=notify."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return lambda _message: None
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    last: dict[str, str] = {}

    def send(message: str) -> None:
        # READY and STOPPING are sent once; WATCHDOG as often as the supervisor is healthy.
        if message != "WATCHDOG=1" and last.get("msg") == message:
            return
        last["msg"] = message
        try:
            sock.sendto(message.encode("ascii"), address)
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", message, exc)

    return send
