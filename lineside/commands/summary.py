"""The live line per part and the end-of-run summary printed by `lineside run`.

Given the parts' truth (the embedded demo knows it: `lineside/demo/parts/truth.csv`), the summary also
scores the line: escapes (defective parts accepted) and overkill (good parts rejected, FAULTs included:
both reject the part), and names each such part. Every line is said in the line's language
(`station.language`, else the locale; docs/i18n.md); in English it is the sentence it always was.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.i18n import Message, say
from edge.locale.names import Glossary
from edge.runtime.messages import LedgerEvent
from lineside.commands.run_reason import part_reason

NAMED_IN_LINE = 10  # parts named in the summary line itself; the lines after it name every one


@dataclass(frozen=True)
class Miss:
    """A part the line got wrong against the truth."""

    seq: int
    image: str
    kind: str  # "escape" or "overkill"
    verdict: str
    reason: str


class RunSummary:
    """Counts verdicts and latencies of finalised inspections; with `truth` (image name or path ->
    defective), escapes and overkill too. Says its lines in `lang` (None: the locale's), class and stage
    names in the plant's words from `glossary` (`station.names`)."""

    def __init__(
        self, truth: dict[str, bool] | None = None, lang: str | None = "en", glossary: Glossary | None = None
    ) -> None:
        self.lang = lang
        self.glossary = glossary
        self.verdicts: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.late = 0
        self.truth = truth
        self.misses: list[Miss] = []
        self.scored = 0  # parts whose truth was known
        self.unknown = 0  # parts the truth could not place (no frame, or an image it does not list)

    def add(self, event: LedgerEvent) -> None:
        verdict = event.verdict.value if event.verdict is not None else "FAULT"
        self.verdicts[verdict] += 1
        self.late += int(event.late)
        if event.result is not None and not event.late:
            self.latencies_ms.append(event.latency_ms)
        if self.truth is not None:
            self._score(event, verdict)

    def _score(self, event: LedgerEvent, verdict: str) -> None:
        origin = event.result.origin if event.result is not None else ""
        truth = self.truth or {}
        defective = truth.get(str(Path(origin).resolve()), truth.get(Path(origin).name)) if origin else None
        if defective is None:
            self.unknown += 1
            return
        self.scored += 1
        if defective and verdict == "ACCEPT":
            kind = "escape"
        elif not defective and verdict != "ACCEPT":
            kind = "overkill"
        else:
            return
        reason = part_reason(event, self.lang, self.glossary)
        self.misses.append(Miss(event.trigger.seq, Path(origin).name, kind, verdict, reason))

    @property
    def parts(self) -> int:
        return sum(self.verdicts.values())

    def line(self, event: LedgerEvent) -> str:
        verdict = event.verdict.value if event.verdict is not None else "FAULT"
        origin = event.result.origin.rsplit("/", 1)[-1] if event.result is not None else "-"
        params = {"seq": event.trigger.seq, "latency_ms": event.latency_ms, "origin": origin}
        word = say(f"verdict.{verdict}", self.lang)
        reason = part_reason(event, self.lang, self.glossary)
        return say("run.part", self.lang, verdict=word, reason=reason, **params)

    def render(self) -> str:
        lat = np.array(self.latencies_ms) if self.latencies_ms else None
        p50 = f"{np.percentile(lat, 50):.1f}" if lat is not None else "-"
        p99 = f"{np.percentile(lat, 99):.1f}" if lat is not None else "-"
        counts = {
            "parts": self.parts,
            "accepted": self.verdicts["ACCEPT"],
            "rejected": self.verdicts["REJECT"],
            "faults": self.verdicts["FAULT"],
            "late": self.late,
        }
        line = say("run.summary", self.lang, p50=p50, p99=p99, **counts)
        return line if self.truth is None else line + self._score_text()

    def _score_text(self) -> str:
        escapes = [m for m in self.misses if m.kind == "escape"]
        overkill = [m for m in self.misses if m.kind == "overkill"]
        named = ", ".join(
            say("run.named", self.lang, seq=m.seq, kind=Message(f"run.{m.kind}"))
            for m in self.misses[:NAMED_IN_LINE]
        )
        if len(self.misses) > NAMED_IN_LINE:
            named += say("run.more", self.lang, more=len(self.misses) - NAMED_IN_LINE)
        numbers = {"scored": self.scored, "escapes": len(escapes), "overkill": len(overkill)}
        text = say("run.truth", self.lang, **numbers)
        if self.unknown:
            text += say("run.not_in_truth", self.lang, unknown=self.unknown)
        return text + (f" ({named})" if named else "")

    def miss_lines(self) -> list[str]:
        """One sentence per part the line got wrong, for a newcomer reading the demo's output."""
        # Indented: not a part line (those start with "part"), a note under the summary.
        return [
            "  " + say(f"run.miss.{m.kind}", self.lang, seq=m.seq, image=m.image, reason=m.reason)
            for m in self.misses
        ]
