"""Every sentence a person reads, built from a message id and its parameters in one place.

English now: `ENGLISH` is the source catalog (message id -> template). A later change routes `say` through
gettext/Babel catalogs (the English template as the msgid, so extraction finds them all here) for Korean;
callers keep passing ids and parameters and never build a sentence themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENGLISH: dict[str, str] = {
    # `lineside records summary`: the shift in sentences (edge/records/shift.py)
    "summary.empty": "No inspection records in {where}.",
    "summary.none_in_window": "No parts were inspected between {start} and {end}.",
    "summary.window": "From {start} to {end} ({duration}), {parts} parts were inspected.",
    "summary.yield": "Yield was {yield_pct:.1f}%: {accepted} accepted, {rejected} rejected, {faults} faults.",
    "summary.yield_trend": (
        "Yield is {trend}: {first_pct:.1f}% of the first {first_parts} parts were accepted, "
        "{second_pct:.1f}% of the last {second_parts}."
    ),
    "summary.no_rejects": "No part was rejected.",
    "summary.causes_head": "Top reject causes ({shown} of {causes}):",
    "summary.cause": (
        "{cause}: {count} of {rejected} rejects ({share_pct:.1f}%), {trend}: {first} of the first "
        "{first_parts} parts ({first_pct:.1f}%), {second} of the last {second_parts} ({second_pct:.1f}%)."
    ),
    "summary.no_faults": "No faults.",
    "summary.faults_head": (
        "Faults: {faults} of {parts} parts ({faults_pct:.1f}%), each rejected to the robot:"
    ),
    "summary.fault": "{cause}: {count} (error {code} {kind}).",
    "trend.rising": "rising",
    "trend.falling": "falling",
    "trend.steady": "steady",
    "cause.unknown": "no recorded cause",
    "time.beginning": "the first record",
    "time.now": "now",
    "time.hours": "{hours} h {minutes:02d} min",
    "time.minutes": "{minutes} min {seconds:02d} s",
    "time.seconds": "{seconds} s",
    # fault kinds (edge.errors.ErrorCode.kind): what happened, in a supervisor's words
    "fault.camera": "No frame from the camera",
    "fault.frame": "Corrupt or unreadable frame",
    "fault.model": "Model failure",
    "fault.timeout": "No result in time",
    "fault.disabled": "Inspection not enabled by the robot",
    "fault.overload": "Inspection busy (overload)",
    "fault.shutdown": "Appliance stopping",
    "fault.worker": "Worker process restarted",
    "fault.recipe": "Unknown or unusable recipe",
    "fault.link": "Robot link problem",
    "fault.calibration": "Station check failed",
    "fault.not_ready": "Triggered before the appliance was ready",
    "fault.internal": "Internal error (see the log)",
    # line alarms (edge/spc/alarm.py; `lineside records alarms`)
    "spc.alarm": (
        "{chart}: {rule} at {unit} {index} (value {value:.4g}, centre {centre:.4g}, limits {lower:.4g} to "
        "{upper:.4g}); {parts} parts, {first} to {last}."
    ),
    "spc.none": "No line alarm in {parts} parts ({judged} judged, {images} with a kept image).",
    "spc.count": "{alarms} line alarm(s) in {parts} parts ({judged} judged, {images} with a kept image):",
    "spc.no_images": (
        "Image drift: no kept image to measure (records keep rejects, near-threshold parts and the sampled "
        "accepts; set records.accept_sample_rate to chart every part's frame)."
    ),
    "spc.few_images": (
        "Image drift: {images} kept images, fewer than the {baseline} its baseline needs: not charted."
    ),
    "spc.chart.reject_rate": "reject rate",
    "spc.chart.class_rate": "rate of {name}",
    "spc.chart.brightness": "brightness (mean grey)",
    "spc.chart.contrast": "contrast (grey standard deviation)",
    "spc.chart.sharpness": "sharpness (variance of the Laplacian)",
    "spc.chart.score": "top score / threshold on accepted parts",
    "spc.unit.subgroup": "subgroup",
    "spc.unit.part": "point",
    "spc.rule.beyond_3sigma": "a point beyond 3 sigma ({side})",
    "spc.rule.2of3_beyond_2sigma": "2 of 3 points beyond 2 sigma ({side})",
    "spc.rule.4of5_beyond_1sigma": "4 of 5 points beyond 1 sigma ({side})",
    "spc.rule.run_one_side": "{n} points in a row {side} the centre line",
    "spc.rule.trend": "{n} points in a row {direction}",
    "spc.rule.ewma_high": "EWMA above its upper limit",
    "spc.rule.ewma_low": "EWMA below its lower limit",
    "spc.side.above": "above",
    "spc.side.below": "below",
    "spc.direction.rising": "rising",
    "spc.direction.falling": "falling",
}


@dataclass(frozen=True)
class Message:
    """A sentence before it has a language: its id and parameters (what a record or report keeps)."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)
    indent: int = 0  # nesting under the sentence before it (a list's items), in levels


def say(message_id: str, **params: Any) -> str:
    """The sentence for `message_id` with `params`; an unknown id is a KeyError naming it (a bug, and the
    catalog test catches it), never a silent fallback."""
    try:
        template = ENGLISH[message_id]
    except KeyError:
        raise KeyError(f"no message {message_id!r} in the catalog") from None
    # A parameter that is itself a message (a trend, a fault's cause) is said in the same language.
    words = {key: render(value) if isinstance(value, Message) else value for key, value in params.items()}
    return template.format(**words)


def render(message: Message) -> str:
    """One message as a line of text, indented by its level."""
    return "  " * message.indent + say(message.id, **message.params)
