"""The live line per part and the end-of-run summary printed by `lineside run`."""

from __future__ import annotations

from collections import Counter

import numpy as np

from edge.runtime.messages import LedgerEvent


class RunSummary:
    """Counts verdicts and latencies of finalised inspections."""

    def __init__(self) -> None:
        self.verdicts: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.late = 0

    def add(self, event: LedgerEvent) -> None:
        verdict = event.verdict.value if event.verdict is not None else "FAULT"
        self.verdicts[verdict] += 1
        self.late += int(event.late)
        if event.result is not None and not event.late:
            self.latencies_ms.append(event.latency_ms)

    @property
    def parts(self) -> int:
        return sum(self.verdicts.values())

    def line(self, event: LedgerEvent) -> str:
        verdict = event.verdict.value if event.verdict is not None else "FAULT"
        origin = event.result.origin.rsplit("/", 1)[-1] if event.result is not None else "-"
        reason = event.reasons[0] if event.reasons else ""
        return f"part {event.trigger.seq:>5}  {verdict:<6} {event.latency_ms:7.1f} ms  {origin:<16} {reason}"

    def render(self) -> str:
        lat = np.array(self.latencies_ms) if self.latencies_ms else None
        p50 = f"{np.percentile(lat, 50):.1f}" if lat is not None else "-"
        p99 = f"{np.percentile(lat, 99):.1f}" if lat is not None else "-"
        return (
            f"summary: parts {self.parts}, accepted {self.verdicts['ACCEPT']}, "
            f"rejected {self.verdicts['REJECT']}, faults {self.verdicts['FAULT']} (late {self.late}), "
            f"latency p50 {p50} ms, p99 {p99} ms"
        )
