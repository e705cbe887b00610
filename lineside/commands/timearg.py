"""Times on the command line (--since, --until): ISO, 'now', or relative to now (-30m, -8h)."""

from __future__ import annotations

import re
from datetime import datetime

from edge.errors import LinesideError

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
TIME_HELP = "ISO time (2024-05-01T08:00, local unless it has an offset), 'now', or relative (-30m, -1h, -2d)"


def parse_time(text: str, now: float, option: str) -> float:
    """Epoch seconds from an ISO time (naive = local time), 'now', or '-<n><s|m|h|d|w>' before `now`."""
    value = text.strip()
    if value == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        # Python 3.10's fromisoformat does not take a trailing Z.
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise LinesideError(f"{option}: {text!r} is not a time; expected {TIME_HELP}") from None
    return moment.timestamp()


def parse_window(since: str | None, until: str | None, now: float) -> tuple[float | None, float | None]:
    """--since and --until as epoch seconds (None: open on that side); a window that ends before it begins
    is refused in one line naming both."""
    since_s = None if since is None else parse_time(since, now, "--since")
    until_s = None if until is None else parse_time(until, now, "--until")
    if since_s is not None and until_s is not None and since_s >= until_s:
        raise LinesideError(f"--since {since} is not before --until {until}")
    return since_s, until_s
