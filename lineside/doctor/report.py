"""One doctor check's outcome, and the report of them all as text lines (the status words and the closing
line in the reader's language, edge.i18n) or JSON (codes, always English)."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

from edge.i18n import say


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

    def line(self, lang: str | None = "en") -> str:
        # The check's own finding stays English for now (docs/i18n.md); its status word is translated.
        return f"{say(f'check.{self.status.value}', lang):<4} {self.name}: {self.message}"


def exit_code(checks: Sequence[Check]) -> int:
    """0 when nothing FAILed (WARNs included), 1 otherwise."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def as_text(checks: Sequence[Check], lang: str | None = "en") -> str:
    """One line per check, then the counts; in `lang` (None: the locale's)."""
    counts = {s: sum(c.status is s for c in checks) for s in Status}
    summary = say(
        "doctor.summary",
        lang,
        passed=counts[Status.PASS],
        warned=counts[Status.WARN],
        failed=counts[Status.FAIL],
    )
    return "\n".join([*(c.line(lang) for c in checks), summary]) + "\n"


def as_json(checks: Sequence[Check]) -> str:
    document = {
        "ok": exit_code(checks) == 0,
        "checks": [{"name": c.name, "status": c.status.value, "message": c.message} for c in checks],
    }
    return json.dumps(document, indent=2) + "\n"
