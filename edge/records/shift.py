"""A stretch of the line's records (a shift) in sentences a supervisor reads: yield, the top reject causes
with their share and trend, faults and their causes. Built from the records alone, as language-neutral
messages (`edge.i18n`); `lineside records summary` prints them.

A trend compares the first and the last half of the parts (by count, so a pause does not tilt it): it is
rising or falling when the two rates differ by at least twice their standard error (a two-proportion z
test), else steady, so that a few parts' noise is never called a trend. The line alarms' sentences are
edge/records/shift_alarms.py's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from edge.errors import ErrorCode
from edge.i18n import Message
from edge.judge.inspection import Verdict
from edge.records.model import InspectionRecord

TOP_CAUSES = 3
TREND_Z = 2.0  # |z| at or above this: rising or falling


def summarise(
    records: Sequence[InspectionRecord], since: float | None = None, until: float | None = None
) -> list[Message]:
    """The sentences for `records` (oldest first), triggered in [since, until) when those are given."""
    if not records:
        start = _clock(since) if since is not None else Message("time.beginning")
        end = _clock(until) if until is not None else Message("time.now")
        return [Message("summary.none_in_window", {"start": start, "end": end})]
    first_at = since if since is not None else records[0].triggered_at
    last_at = until if until is not None else records[-1].triggered_at
    window: dict[str, object] = {
        "start": _clock(first_at),
        "end": _clock(last_at),
        "duration": _duration(last_at - first_at),
        "parts": len(records),
    }
    return [
        Message("summary.window", window),
        *_yield_sentences(records),
        *_cause_sentences(records),
        *_fault_sentences(records),
    ]


def reject_cause(record: InspectionRecord) -> str | None:
    """What rejected a part: the class of the detection that decided it, or the name of the classify or
    anomaly stage that did; None when the record does not say."""
    deciding = next((s for s in record.stages if s.get("verdict") == Verdict.REJECT.value), None)
    if deciding is not None and deciding.get("kind") != "detect":
        return str(deciding.get("stage") or deciding.get("kind"))
    classes = {d.class_name for d in record.detections}
    for reason in record.reasons:
        # The rules write the deciding (worst) detection first: "[stage: ]REJECT: <class> <confidence> ...".
        # Only a class the record's detections have is taken, so free text is never mistaken for one.
        _, found, rest = reason.partition("REJECT: ")
        word = rest.split(" ", 1)[0]
        if found and word in classes:
            return word
    top = max(record.detections, key=lambda d: d.confidence, default=None)
    return None if top is None else top.class_name


def fault_kind(record: InspectionRecord) -> ErrorCode:
    try:
        return ErrorCode(record.error_code)
    except ValueError:  # a code this version does not know (a newer appliance's record)
        return ErrorCode.INTERNAL


def trend(first: int, first_parts: int, second: int, second_parts: int) -> str:
    """`trend.rising`, `trend.falling` or `trend.steady`: the rate in the second half against the first."""
    if first_parts == 0 or second_parts == 0:
        return "trend.steady"
    p1, p2 = first / first_parts, second / second_parts
    pooled = (first + second) / (first_parts + second_parts)
    error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / first_parts + 1.0 / second_parts))
    if error == 0.0 or abs(p2 - p1) < TREND_Z * error:
        return "trend.steady"
    return "trend.rising" if p2 > p1 else "trend.falling"


def _split_counts(hits: Sequence[bool]) -> dict[str, object]:
    """How many parts (one flag each, oldest first) are hits in each half, the halves' sizes and rates, and
    the trend between them. An odd part goes to the last half."""
    middle = len(hits) // 2
    first, second = hits[:middle], hits[middle:]
    a, b = sum(first), sum(second)
    return {
        "trend": Message(trend(a, len(first), b, len(second))),
        "first": a,
        "first_parts": len(first),
        "first_pct": _pct(a, len(first)),
        "second": b,
        "second_parts": len(second),
        "second_pct": _pct(b, len(second)),
    }


def _yield_sentences(records: Sequence[InspectionRecord]) -> list[Message]:
    verdicts = Counter(r.verdict for r in records)
    counts = {
        "yield_pct": _pct(verdicts[Verdict.ACCEPT], len(records)),
        "accepted": verdicts[Verdict.ACCEPT],
        "rejected": verdicts[Verdict.REJECT],
        "faults": verdicts[Verdict.FAULT],
    }
    split = _split_counts([r.verdict is Verdict.ACCEPT for r in records])
    return [Message("summary.yield", counts), Message("summary.yield_trend", split)]


def _cause_sentences(records: Sequence[InspectionRecord]) -> list[Message]:
    # One entry per part: its reject cause, or False when it was not rejected (a cause may be None).
    per_part: list[str | bool | None] = [
        reject_cause(r) if r.verdict is Verdict.REJECT else False for r in records
    ]
    causes = Counter(c for c in per_part if c is not False)
    if not causes:
        return [Message("summary.no_rejects")]
    rejected = sum(causes.values())
    ranked = sorted(causes.items(), key=lambda item: (-item[1], str(item[0] or "")))
    lines = [Message("summary.causes_head", {"shown": min(TOP_CAUSES, len(ranked)), "causes": len(ranked)})]
    for cause, count in ranked[:TOP_CAUSES]:
        split = _split_counts([c is not False and c == cause for c in per_part])
        name: object = cause if cause is not None else Message("cause.unknown")
        params = {"cause": name, "count": count, "rejected": rejected, "share_pct": _pct(count, rejected)}
        lines.append(Message("summary.cause", {**params, **split}, indent=1))
    return lines


def _fault_sentences(records: Sequence[InspectionRecord]) -> list[Message]:
    kinds = Counter(fault_kind(r) for r in records if r.verdict is Verdict.FAULT)
    if not kinds:
        return [Message("summary.no_faults")]
    faults = sum(kinds.values())
    head = {"faults": faults, "parts": len(records), "faults_pct": _pct(faults, len(records))}
    lines = [Message("summary.faults_head", head)]
    for code, count in sorted(kinds.items(), key=lambda item: (-item[1], int(item[0]))):
        cause = Message(f"fault.{code.kind}")
        params = {"cause": cause, "count": count, "code": int(code), "kind": code.kind}
        lines.append(Message("summary.fault", params, indent=1))
    return lines


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _clock(epoch_s: float) -> str:
    """Local time, as the line's clocks show it."""
    return datetime.fromtimestamp(epoch_s).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> Message:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return Message("time.hours", {"hours": hours, "minutes": minutes})
    if minutes:
        return Message("time.minutes", {"minutes": minutes, "seconds": secs})
    return Message("time.seconds", {"seconds": secs})
