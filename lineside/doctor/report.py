"""One doctor check's outcome, and the report of them all as text lines (in the reader's language,
edge.i18n: the status words, each finding said from its message id, the closing line) or JSON (codes and
the English finding, always)."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.i18n import Message, render, say


class Status(str, enum.Enum):
    """PASS: fine. WARN: runs, but look at it. FAIL: the line will not run (or not correctly) as it is."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report: which check, its status, and one line saying what was found (`message`, in
    English; `said`, the same finding as a catalog message, when it has one: an error's own text has none)."""

    name: str
    status: Status
    message: str
    said: Message | None = field(default=None, compare=False)

    @classmethod
    def of(cls, name: str, status: Status, message_id: str, **params: Any) -> Check:
        """A check whose finding is the catalog's `message_id` with `params`."""
        return cls(name, status, say(message_id, "en", **params), Message(message_id, params))

    def line(self, lang: str | None = "en") -> str:
        finding = self.message if self.said is None else render(self.said, lang)
        return f"{say(f'check.{self.status.value}', lang):<4} {self.name}: {finding}"


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
