"""The line alarms of a stretch of records (a shift) in sentences: how many, on which charts and by which
rules, the first and the last, whether each chart is still in alarm (latched) or was acknowledged, and
the acknowledgements, as language-neutral messages for `lineside records summary`.

Whether a chart is still latched is not stored: it is found by replaying the window's records of the last
start of the appliance through the p-charts and score drift with the station's spc section, releasing the
charts where the recorded acknowledgements did (the live line's charts are these same objects, fed the
same parts; a window that starts mid-run replays less than the line saw). Image drift needs every frame,
which the records do not keep, so for those charts the summary says that it cannot tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from edge.i18n import Message
from edge.records.alarms import RecordedAlarm
from edge.records.model import InspectionRecord
from edge.spc.ack import Acknowledgement, chart_word, who_word
from edge.spc.alarm import Alarm
from edge.spc.config import SpcConfig
from edge.spc.replay import replay

IMAGE_CHARTS = ("brightness", "contrast", "sharpness")


def alarm_sentences(
    alarms: Sequence[RecordedAlarm],
    records: Sequence[InspectionRecord],
    config: SpcConfig,
    acks: Sequence[Acknowledgement] = (),
) -> list[Message]:
    """The sentences for `alarms` and their acknowledgements `acks` (oldest first), raised while `records`
    (oldest first) were inspected."""
    if not alarms:
        return [Message("summary.no_alarms"), *_ack_lines(acks)]
    by_chart: dict[str, list[RecordedAlarm]] = {}
    for alarm in alarms:
        by_chart.setdefault(str(alarm.alarm["chart"]), []).append(alarm)
    # The live charts start afresh with each start of the appliance: only the last one's can still be latched.
    boot = records[-1].boot_id if records else None
    last_start = [r for r in records if r.boot_id == boot]
    since = last_start[0].triggered_at if last_start else 0.0
    own = [a for a in acks if a.acked_at >= since and (a.after_part is None or a.after_part[0] == boot)]
    charts, _ = replay(last_start, config, acks=own)
    active = {c for c in charts.active() if any(a.boot_id == boot for a in by_chart.get(c, []))}
    head = {
        "alarms": len(alarms),
        "charts": len(by_chart),
        "first": _clock(alarms[0].raised_at),
        "last": _clock(alarms[-1].raised_at),
    }
    lines = [Message("summary.alarms_head", head)]
    for chart, raised in by_chart.items():
        acked = [a for a in acks if chart in a.charts and a.acked_at >= raised[-1].raised_at]
        if acked:
            state = Message(
                "summary.alarm_acknowledged",
                {"time": _clock(acked[0].acked_at), "who": who_word(acked[0].source, acked[0].user)},
            )
        elif chart in IMAGE_CHARTS:
            state = Message("summary.alarm_unknown")
        else:
            state = Message("summary.alarm_active" if chart in active else "summary.alarm_returned")
        rules: list[Message] = []
        for alarm in raised:
            rule = Alarm.from_json(alarm.alarm).message().params["rule"]
            if isinstance(rule, Message) and rule not in rules:
                rules.append(rule)
        params = {
            "chart": chart_word(chart),
            "count": len(raised),
            "rules": tuple(rules),
            "first": _clock(raised[0].raised_at),
            "last": _clock(raised[-1].raised_at),
            "state": state,
        }
        lines.append(Message("summary.alarm", params, indent=1))
    return lines + _ack_lines(acks)


def _ack_lines(acks: Sequence[Acknowledgement]) -> list[Message]:
    if not acks:
        return []
    lines = [Message("summary.acks_head", {"count": len(acks)})]
    for ack in acks:
        params = {
            "time": _clock(ack.acked_at),
            "charts": tuple(chart_word(c) for c in ack.charts),
            "who": who_word(ack.source, ack.user),
        }
        lines.append(Message("summary.ack", params, indent=1))
    return lines


def _clock(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).strftime("%Y-%m-%d %H:%M:%S")
