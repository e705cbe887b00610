"""One doctor check's outcome, and the report of them all as text lines or JSON."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass


class Status(str, enum.Enum):
    """PASS: fine. WARN: runs, but look at it. FAIL: the line will not run (or not correctly) as it is."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report: which check, its status, and one line saying what was found."""

    name: str
    status: Status
    message: str

    def line(self) -> str:
        return f"{self.status.value:<4} {self.name}: {self.message}"


def exit_code(checks: Sequence[Check]) -> int:
    """0 when nothing FAILed (WARNs included), 1 otherwise."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def as_text(checks: Sequence[Check]) -> str:
    counts = {s: sum(c.status is s for c in checks) for s in Status}
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status)
    return "\n".join([*(c.line() for c in checks), f"doctor: {summary}"]) + "\n"


def as_json(checks: Sequence[Check]) -> str:
    document = {
        "ok": exit_code(checks) == 0,
        "checks": [{"name": c.name, "status": c.status.value, "message": c.message} for c in checks],
    }
    return json.dumps(document, indent=2) + "\n"
