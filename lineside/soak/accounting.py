"""Join what the robot saw, the appliance's stream of finals and its records database into the
campaign's figures: wrong accepts, lost records, recovery time, visibility, windows of latency."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.records.model import InspectionRecord
from edge.records.query import query
from edge.robotlink.registers import StatusBit, VerdictCode
from edge.runtime.messages import LedgerEvent
from lineside.soak.campaign import CampaignResult, Injection, PartSeen
from lineside.soak.report import FaultRow

VISIBLE_WINDOW_S = 6.0  # after an injection (or its undo), where its traces are looked for
_LOG_LEVELS = (" WARNING ", " ERROR ", " CRITICAL ")


@dataclass(frozen=True)
class Figures:
    """The accounting of one campaign."""

    parts: int
    wrong_accepts: list[tuple[float, str]]  # (monotonic time, why) per wrongly accepted part
    lost_records: list[tuple[float, str]]  # (monotonic time, what) per part without its one record
    unjoined: int  # robot parts with a result but no event in the stream (not judged by truth)
    recovery_s: dict[int, float | None]  # per injection index: to the next complete verdict
    visible: dict[int, tuple[str, ...]]
    records: int
    verdicts: dict[str, int]


def account(result: CampaignResult) -> Figures:
    """Every robot part against the stream and the records (read after the line stopped)."""
    db = result.station.records_dir / "records.db"
    records = query(db) if db.exists() else []
    by_key = {(r.boot_id, r.seq): r for r in records}
    events = _events_by_wire(result.stream)
    wrong: list[tuple[float, str]] = []
    acked: Counter[int] = Counter()
    last_seen: dict[int, float] = {}
    unjoined = 0
    for seen in result.parts:
        o = seen.outcome
        event = _pop(events, (o.boot_id, o.seq))
        if o.verdict is not None or f"TRIGGER_ACK_SEQ {o.seq}," in o.reason:
            acked[o.boot_id] += 1
            last_seen[o.boot_id] = seen.t_start
        if event is None and o.verdict is not None:
            unjoined += 1
        if o.decision == "ACCEPT":
            why = _accept_problem(event, by_key, result.station.truth)
            if why:
                wrong.append((seen.t_start, f"boot {o.boot_id} seq {o.seq}: {why}"))
    lost = _lost(result.stream, by_key, records, acked, last_seen)
    return Figures(
        parts=len(result.parts),
        wrong_accepts=wrong,
        lost_records=lost,
        unjoined=unjoined,
        recovery_s={i: recovery_s(inj, result.parts) for i, inj in enumerate(result.injections)},
        visible={i: visibility(inj, result, records) for i, inj in enumerate(result.injections)},
        records=len(records),
        verdicts=dict(Counter(r.verdict.value for r in records)),
    )


def _events_by_wire(stream: list[Any]) -> dict[tuple[int, int], deque[LedgerEvent]]:
    found: dict[tuple[int, int], deque[LedgerEvent]] = defaultdict(deque)
    for event in stream:
        found[(event.trigger.boot_id, event.trigger.trigger_seq)].append(event)
    return found


def _pop(events: dict[tuple[int, int], deque[LedgerEvent]], key: tuple[int, int]) -> LedgerEvent | None:
    queue = events.get(key)
    return queue.popleft() if queue else None


def _accept_problem(
    event: LedgerEvent | None, by_key: dict[tuple[int, int], InspectionRecord], truth: dict[str, bool]
) -> str | None:
    """Why an ACCEPT the robot acted on was wrong, or None when it was a complete, in-time, good part."""
    if event is None:
        return "accepted, but the appliance published no final verdict for it"
    if event.verdict is None or event.verdict.value != "ACCEPT" or event.late:
        return f"accepted, but the appliance's final verdict was {event.verdict} (late={event.late})"
    origin = event.result.origin if event.result else ""
    defective = truth.get(Path(origin).name)
    if defective is None:
        return f"accepted, but no truth for its image {origin!r}"
    if defective:
        return f"accepted a defective part ({Path(origin).name})"
    record = by_key.get((event.trigger.boot_id, event.trigger.seq))
    if record is not None and record.verdict.value != "ACCEPT":
        return f"accepted, but its record says {record.verdict.value}"
    return None


def _lost(
    stream: list[Any],
    by_key: dict[tuple[int, int], InspectionRecord],
    records: list[InspectionRecord],
    acked: Counter[int],
    last_seen: dict[int, float],
) -> list[tuple[float, str]]:
    """Finals with no record or another verdict, and boots with fewer records than acknowledged parts."""
    lost: list[tuple[float, str]] = []
    for event in stream:
        key, t = (event.trigger.boot_id, event.trigger.seq), event.trigger.t_trigger
        record = by_key.get(key)
        if record is None:
            lost.append((t, f"boot {key[0]} seq {key[1]}: final {event.verdict} has no record"))
        elif event.verdict is not None and record.verdict != event.verdict:
            lost.append((t, f"boot {key[0]} seq {key[1]}: final {event.verdict}, record {record.verdict}"))
    per_boot = Counter(r.boot_id for r in records)
    for boot, count in acked.items():
        if boot and count > per_boot[boot]:
            text = f"boot {boot}: {count} parts acknowledged, {per_boot[boot]} records"
            lost.append((last_seen.get(boot, 0.0), text))
    return lost


def recovery_s(injection: Injection, parts: list[PartSeen]) -> float | None:
    """From the fault (or its undo, for faults that last until undone) to the end of the first part
    that started after it and got a complete verdict (ACCEPT or REJECT) again."""
    since = injection.at if injection.self_healing else (injection.undone_at or injection.at)
    after = [p for p in parts if p.t_start >= since]
    complete = [p.outcome.verdict in (VerdictCode.ACCEPT, VerdictCode.REJECT) for p in after]
    # A part already in the pipeline may still complete just after a kill: recovery is the first
    # complete verdict after the fault showed (when it showed at all within the window).
    first_bad = next(
        (i for i, p in enumerate(after) if not complete[i] and p.t_start <= since + VISIBLE_WINDOW_S), None
    )
    start = 0 if first_bad is None else first_bad
    for seen, ok in zip(after[start:], complete[start:], strict=True):
        if ok:
            return round(seen.t_end - injection.at, 2)
    return None


def visibility(
    injection: Injection, result: CampaignResult, records: list[InspectionRecord]
) -> tuple[str, ...]:
    """Where the fault showed: ERROR_CODE or a STATUS warning bit to the robot, a FAULT record, a log line."""
    end = (injection.undone_at or injection.at) + VISIBLE_WINDOW_S
    window = [p.outcome for p in result.parts if injection.at <= p.t_end and p.t_start <= end]
    shown: list[str] = []
    if any(o.verdict in (VerdictCode.ERROR, VerdictCode.LATE) and o.error_code for o in window):
        shown.append("error_code")
    if any(o.kind == "comm" for o in window):
        shown.append("link")
    if any(o.status & StatusBit.RECORDS_WARNING for o in window):
        shown.append("status")
    wall_end = injection.wall + (end - injection.at)
    if any(r.verdict.value == "FAULT" and injection.wall - 1 <= r.decided_at <= wall_end for r in records):
        shown.append("records")
    if result.log is not None and result.log.exists():
        with result.log.open("rb") as fh:
            fh.seek(injection.log_offset)
            text = fh.read(4 << 20).decode("utf-8", errors="replace")
        if any(level in text for level in _LOG_LEVELS):
            shown.append("logs")
    return tuple(shown)


def fault_rows(result: CampaignResult, figures: Figures, note: str = "") -> list[FaultRow]:
    """One row per fault kind injected (a campaign without injections: one row `none`); wrong accepts
    and lost records count against the injection they followed."""
    order = list(dict.fromkeys(i.fault for i in result.injections)) or ["none"]
    starts = sorted(i.at for i in result.injections)

    def owner(t: float) -> str:
        before = [i for i in result.injections if i.at <= t]
        return max(before, key=lambda i: i.at).fault if before else order[0]

    def nearest(t: float) -> str:
        # A record is lost by the fault that hit it in flight or in a backlog (just after its trigger)
        # or by one still in force (just before): the injection nearest in time.
        if not result.injections:
            return order[0]
        return min(result.injections, key=lambda i: abs(i.at - t)).fault

    rows = []
    for name in order:
        picked = [k for k, i in enumerate(result.injections) if i.fault == name]
        what = Counter(result.injections[k].what for k in picked)
        recoveries = [figures.recovery_s[k] for k in picked]
        sets = [set(figures.visible[k]) for k in picked]
        extra = [note] if note else []
        if any(r is None for r in recoveries):
            extra.append(f"{sum(r is None for r in recoveries)} injection(s) with no complete verdict after")
        skipped = [s for s in result.skipped if s.startswith(f"{name}:")]
        extra += skipped
        done = [r for r in recoveries if r is not None]
        rows.append(
            FaultRow(
                case=name,
                injected="; ".join(f"{w} x{n}" if n > 1 else w for w, n in what.items()) or "nothing",
                parts=sum(1 for p in result.parts if owner(p.t_start) == name) if starts else figures.parts,
                wrong_accepts=sum(1 for t, _ in figures.wrong_accepts if owner(t) == name),
                lost_records=sum(1 for t, _ in figures.lost_records if nearest(t) == name),
                recovery_s=max(done) if done else None,
                visible=tuple(sorted(set.intersection(*sets))) if sets else (),
                note="; ".join(extra),
            )
        )
    return rows


def windows(result: CampaignResult, window_s: float) -> list[dict[str, Any]]:
    """Parts, robot decisions and latency percentiles per window of `window_s` seconds."""
    buckets: dict[int, list[PartSeen]] = defaultdict(list)
    for seen in result.parts:
        buckets[int((seen.t_start - result.started) // window_s)].append(seen)
    return [window_figures(k, window_s, buckets[k]) for k in sorted(buckets)]


def window_figures(index: int, window_s: float, parts: list[PartSeen]) -> dict[str, Any]:
    latencies = sorted(p.outcome.latency_ms for p in parts if p.outcome.latency_ms is not None)
    kinds = Counter(p.outcome.kind for p in parts)
    return {
        "window": index,
        "from_s": round(index * window_s),
        "parts": len(parts),
        "accepted": kinds["accepted"],
        "rejected": kinds["verdict"],
        "faulted": kinds["fault"],
        "no_answer": kinds["comm"],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted values; None when there are none."""
    if not values:
        return None
    rank = max(1, -(-len(values) * pct // 100))
    return round(values[int(rank) - 1], 2)
