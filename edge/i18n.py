"""Every sentence a person reads, built from a message id and its parameters in one place.

`ENGLISH` is the source of every message (id -> English template); the gettext catalogs under
`edge/locale/` (Babel, `en` and `ko`) translate each id. `say` and `render` take the language (`en` or `ko`,
default: the process's locale); a missing or broken translation falls back to English, never an exception.
Callers pass ids and parameters and never build a sentence themselves (docs/i18n.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.locale import FALLBACK, catalog, environment_language, language_from
from edge.locale.calibration import CALIBRATION
from edge.locale.help import HELP
from edge.locale.line import LINE

ENGLISH: dict[str, str] = {
    # verdicts and the verdict reason, re-rendered from a record's evidence codes (edge/records/explain.py)
    "verdict.ACCEPT": "ACCEPT",
    "verdict.REJECT": "REJECT",
    "verdict.FAULT": "FAULT",
    "reason.accept": "ACCEPT: no defect >= threshold in ROI",
    "reason.accept_notes": "ACCEPT: no defect >= threshold in ROI ({notes})",
    "reason.note.below_threshold": "{n} below threshold",
    "reason.note.too_small": "{n} too small",
    "reason.note.outside_ROI": "{n} outside ROI",
    "reason.note.ignored": "{n} ignored",
    "reason.detect.reject": "REJECT: {cls} {score:.2f} at {where}, >= {threshold:.2f}",
    "reason.where_px": "({x:.0f},{y:.0f}) px, {w:.0f}x{h:.0f} px",
    "reason.where_mm": "({x:.1f},{y:.1f}) mm, {w:.1f}x{h:.1f} mm",
    "reason.classify.reject": "REJECT: defect score {score:.2f} >= {threshold:.2f} ({stage})",
    "reason.anomaly.reject": "REJECT: anomaly score {score:.2f} >= {threshold:.2f} ({stage})",
    "reason.fault": "FAULT: {what} (error {code})",
    # `lineside records show`: one record's evidence (edge/records/evidence.py)
    "show.head": "record {key}  part {part}  recipe {recipe}  {verdict}",
    "show.near_flag": "  (near threshold)",
    "show.error_flag": "  error {code}",
    "show.model": "model {name} {version}",
    "show.reason": "reason: {reason}",
    "show.no_evidence": "no evidence kept (a record from before evidence was kept, or it could not be built)",
    "show.deciding": "deciding stage: {stage} ({kind})",
    "show.rule": "rule: {finding}",
    "show.fired": "also fired: {finding}",
    "show.near": "near threshold: kept for review; the closest finding is the first below",
    "show.below": "below threshold: {finding}",
    "show.stage": "stage {stage} ({kind}): {verdict} score {score} / {threshold}",
    "show.stage_margin": " margin {margin}",
    "show.calibrated": "calibrated: {mm_per_px} mm per px",
    "show.picture": "evidence picture: {path}",
    "finding.error": "error {code} ({kind}): {detail}",
    "finding.score": "score {score} {compare} {threshold} (margin {margin})",
    "finding.size": "size {value} {units} {compare} {limit} {units} (margin {margin} {units})",
    "finding.area": "area {value} {units} {compare} {limit} {units} (margin {margin} {units})",
    "finding.box": "box ({x1:.0f},{y1:.0f})-({x2:.0f},{y2:.0f}) px",
    "finding.centre_mm": "centre ({x:.1f}, {y:.1f}) mm",
    "finding.hottest": "hottest at ({x:.0f},{y:.0f}) px",
    # finding codes (edge/judge/evidence.py): English shows the code itself, as the records keep it
    "code.detect.reject": "detect.reject",
    "code.detect.below_confidence": "detect.below_confidence",
    "code.detect.too_small": "detect.too_small",
    "code.detect.outside_roi": "detect.outside_roi",
    "code.classify.reject": "classify.reject",
    "code.classify.below_threshold": "classify.below_threshold",
    "code.anomaly.reject": "anomaly.reject",
    "code.anomaly.below_threshold": "anomaly.below_threshold",
    "code.anomaly.area_too_small": "anomaly.area_too_small",
    # the status page's words (edge/status/page.html, served as /api/strings)
    "page.title": "lineside status",
    "page.line": "line",
    "page.robot_link": "robot link",
    "page.recipe": "recipe",
    "page.model": "model",
    "page.connecting": "connecting",
    "page.unknown": "unknown",
    "page.waiting": "waiting for the first update",
    "page.this_shift": "This shift",
    "page.parts": "parts",
    "page.accept": "accept",
    "page.reject": "reject",
    "page.fault": "fault",
    "page.yield": "yield",
    "page.late": "late",
    "page.rejects_by_class": "Rejects by class",
    "page.faults_by_kind": "Faults by kind",
    "page.last_frame": "Last kept frame",
    "page.no_image": "no kept image yet",
    "page.verdicts": "Verdicts",
    "page.col_part": "part",
    "page.col_verdict": "verdict",
    "page.col_reason": "reason",
    "page.workers": "Workers",
    "page.col_worker": "worker",
    "page.col_state": "state",
    "page.col_restarts": "restarts",
    "page.col_heartbeat": "heartbeat",
    "page.since": "since {time}",
    "page.updated": "updated {time}",
    "page.part": "part {part}",
    "page.ready": "READY",
    "page.not_ready": "not ready",
    "page.link_up": "up",
    "page.link_interlock": "up, interlock raised",
    "page.near_threshold": " (near threshold)",
    "page.late_flag": " (late)",
    "page.optional": " (optional)",
    "page.no_status": "no status ({code})",
    "page.unreachable": "appliance unreachable",
    "page.evidence": "evidence",
    # the line alarms panel's words (the page's `t("page.alarms...")`; docs/spc.md)
    "page.alarms": "Line alarms",
    "page.alarms_unknown": "not running",
    "page.alarms_learning": "learning, {n} parts to go",
    "page.alarms_none": "none",
    "page.ack": "Acknowledge",
    "page.ack_done": "acknowledged: {charts}",
    "page.ack_nothing": "nothing was in alarm",
    "page.ack_pending": "sent, not confirmed yet",
    "page.ack_failed": "not acknowledged ({code})",
    "page.ack_last": "acknowledged at {time} by {who}: {charts}",
    # who acknowledged line alarms (the page's `t("ack.source." + source)`, records, `lineside alarms ack`)
    "ack.source.robot": "the robot",
    "ack.source.page": "the status page",
    "ack.source.cli": "the command line",
    "ack.who": "{source} ({user})",
    # `lineside alarms ack` (lineside/commands/alarms.py)
    "alarms.ack_done": "Acknowledged: {charts}.",
    "alarms.ack_nothing": "Nothing to acknowledge: no line alarm was in force.",
    "alarms.ack_nothing_named": "Nothing to acknowledge: {charts} not in alarm.",
    "alarms.ack_pending": (
        "Sent to the line, not confirmed within {seconds:g} s: see lineside records alarms."
    ),
    "alarms.still_active": "Still in alarm: {charts}.",
    "alarms.every_class": "every class's rate",
    "page.col_time": "time",
    "page.col_chart": "chart",
    "page.col_rule": "rule",
    "page.col_value": "value",
    "page.col_limits": "limits",
    "page.col_parts": "parts",
    # `lineside run`: the line per part and the end-of-run summary (lineside/commands/summary.py)
    "run.part": "part {seq:>5}  {verdict:<6} {latency_ms:7.1f} ms  {origin:<16} {reason}",
    "run.summary": (
        "summary: parts {parts}, accepted {accepted}, rejected {rejected}, faults {faults} (late {late}), "
        "latency p50 {p50} ms, p99 {p99} ms"
    ),
    "run.truth": "; against the truth of {scored} part(s): escapes {escapes}, overkill {overkill}",
    "run.not_in_truth": " ({unknown} part(s) not in the truth)",
    "run.named": "part {seq} {kind}",
    "run.more": ", {more} more",
    "run.escape": "escape",
    "run.overkill": "overkill",
    "run.miss.escape": "part {seq} ({image}) was an escape: a defective part accepted: {reason}",
    "run.miss.overkill": "part {seq} ({image}) was an overkill: a good part rejected: {reason}",
    # the status page's last frame: its banner (edge/status/frame.py)
    "frame.banner": "{verdict}  part {part}",
    # the status page's login form (edge/status/login.html, its `{{id}}` markers)
    "login.title": "lineside status: log in",
    "login.user": "user name",
    "login.password": "password",
    "login.submit": "log in",
    "login.wrong": "wrong user name or password",
    "login.token_only": "this page takes a token only",
    # `lineside doctor`: the findings (lineside/doctor/system.py) and the closing line (report.py)
    "doctor.demo_config": "embedded demo config",
    "doctor.config_valid": "{origin}: valid (station '{station}', source {source}, recipes {recipes})",
    "doctor.model_ok": "{task} {model} {version}: {path} sha256 matches its card ({sha})",
    "doctor.calib_for": "{path}: for {width}x{height} frames",
    "doctor.calib_scale": "{mm_per_px:.4f} mm/px",
    "doctor.calib_thresholds": "thresholds for {model}",
    "doctor.calib_age": "made {days:.0f} days ago",
    "doctor.calib": "{parts}",
    "doctor.calib_no_age": "{parts}; no valid creation time, age unknown",
    "doctor.calib_old": "{parts}; older than {days:g} days: re-check with lineside calibrate check",
    "doctor.camera": "{source}: a {width}x{height} frame in {ms:.0f} ms",
    "doctor.camera_held": "{error} (a running lineside may be holding the camera)",
    "doctor.modbus_any_port": "{where}: the OS picks a free port at start",
    "doctor.modbus_free": "{where} is free (bindable)",
    "doctor.modbus_lineside": "{where} is served by a running lineside (pid {pid}, {command})",
    "doctor.modbus_taken": "{where} is in use by another program: pid {pid} ({command})",
    "doctor.modbus_taken_unseen": "{where} is in use by another program: a process this user cannot see",
    "doctor.modbus_low_port": (
        "{where}: this user may not bind a port below 1024; the systemd unit needs its port502.conf drop-in "
        "(CAP_NET_BIND_SERVICE), see docs/deployment.md"
    ),
    "doctor.modbus_no_bind": "{where}: cannot bind ({error})",
    "doctor.robot_reachable": "role client: the robot's Modbus server {where} accepts connections",
    "doctor.robot_unreachable": "role client: the robot's Modbus server {where} is unreachable now ({error})",
    "doctor.disk": "{where}: {free:.1f} GiB free of {total:.1f} GiB (image quota {quota:.1f} GiB)",
    "doctor.disk_under": (
        "{where}: {free:.1f} GiB free of {total:.1f} GiB (image quota {quota:.1f} GiB); under {limit:g} GiB"
    ),
    "doctor.disk_quota": (
        "{where}: {free:.1f} GiB free of {total:.1f} GiB (image quota {quota:.1f} GiB); the image quota does "
        "not fit in the free space"
    ),
    "doctor.clock_insane": "the system clock says {now}: set the date",
    "doctor.clock_unread": "{now}; cannot read the newest record: {error}",
    "doctor.clock_no_records": "{now} (no records yet)",
    "doctor.clock_behind": (
        "{now} is {seconds:.0f} s behind the newest record ({newest}): fix the clock before recording"
    ),
    "doctor.clock": "{now}, not behind the newest record ({newest})",
    "doctor.ntp_synced": "clock synchronised (timedatectl NTPSynchronized=yes)",
    "doctor.ntp_not_synced": "clock not synchronised (timedatectl NTPSynchronized=no)",
    "doctor.ntp_unknown": "cannot tell whether the clock is synchronised (no timedatectl)",
    "doctor.ntp_kernel_not_synced": (
        "clock not synchronised (kernel adjtimex says TIME_ERROR; timedatectl unavailable)"
    ),
    "doctor.ntp_kernel_synced": "clock synchronised (kernel adjtimex; timedatectl unavailable)",
    "doctor.runtime_no_onnx": "{python}; onnxruntime cannot be imported ({error})",
    "doctor.runtime_missing": "{head}; configured {missing} missing, will use {usable}",
    "doctor.runtime": "{head}; configured {wanted} available",
    "doctor.summary": "doctor: {passed} PASS, {warned} WARN, {failed} FAIL",
    # a check's outcome (doctor, `lineside calibrate check`)
    "check.PASS": "PASS",
    "check.WARN": "WARN",
    "check.FAIL": "FAIL",
    # `lineside calibrate`: what was saved, what was refused and why (lineside/commands/calibrate*.py)
    "calib.saved_intrinsics": (
        "saved section 'intrinsics' in {where}; the runtime undistorts every frame with it"
    ),
    "calib.saved_scale": "saved section 'scale' in {where}; decision rules now work in mm",
    "calib.saved_robot": "saved section 'robot' in {where}; pixels are taken as in {frames}",
    "calib.frames_undistorted": "undistorted frames",
    "calib.frames_raw": "raw frames",
    "calib.refused_intrinsics": (
        "lineside calibrate intrinsics: RMS {rms:.3f} px > --max-rms {limit:g}: not saved (retake the views "
        "with the largest errors, or --force)"
    ),
    "calib.refused_robot": (
        "lineside calibrate robot: RMS {rms:.3f} mm > --max-rms {limit:g}: not saved (check the pairs with "
        "the largest residuals, or --force)"
    ),
    "calib.result": "result: {status}",
    # `lineside calibrate check`: the station check, item by item (edge/station/check.py)
    "calib.check_head": "station check of {calibration} against {image} (taken {taken}), {frames} frame(s):",
    "calib.taken_unknown": "unknown",
    "check.item.focus": "focus",
    "check.item.exposure_mean": "exposure mean",
    "check.item.highlights_clipped": "highlights clipped",
    "check.item.shadows_clipped": "shadows clipped",
    "check.item.pose": "pose",
    "check.item.pose_shift": "pose shift",
    "check.item.pose_rotation": "pose rotation",
    "check.item.pose_scale": "pose scale",
    "check.item.frame_size": "frame size",
    "check.m.focus": "{focus:.1f} = {ratio:.2f} x reference {reference:.1f}",
    "check.l.focus": "WARN < {warn:.2f} x, FAIL < {fail:.2f} x",
    "check.m.exposure": "{mean:.1f} grey, reference {ref:.1f} ({diff:+.1f})",
    "check.l.exposure": "WARN +/-{warn:g}, FAIL +/-{fail:g}",
    "check.m.clipped": "{pct:.2f} % of pixels, reference {ref:.2f} %",
    "check.l.clipped": "WARN +{warn:g} %, FAIL +{fail:g} %",
    "check.m.pose_lost": "only {matches} features match the reference",
    "check.l.pose_lost": "FAIL < {min}: view moved far, blocked or changed",
    "check.m.shift": "{shift:.1f} px (dx {dx:+.1f}, dy {dy:+.1f}; {matches} matches)",
    "check.l.shift": "WARN {warn:g} px, FAIL {fail:g} px",
    "check.m.rotation": "{deg:+.2f} deg",
    "check.l.rotation": "WARN {warn:g} deg, FAIL {fail:g} deg",
    "check.m.scale": "x {scale:.4f} ({pct:+.2f} %)",
    "check.l.scale": "WARN {warn:g} %, FAIL {fail:g} %",
    "check.m.size": "{width}x{height}, calibrated {cw}x{ch}",
    "check.l.size": "must be equal",
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
    "summary.no_alarms": "No line alarm was raised.",
    "summary.alarms_head": (
        "Line alarms: {alarms} raised on {charts} chart(s), the first at {first}, the last at {last}:"
    ),
    "summary.alarm": (
        "{chart}: {count} alarm(s) ({rules}), the first at {first}, the last at {last}; {state}."
    ),
    "summary.alarm_active": "still active (latched until the process returns or it is acknowledged)",
    "summary.alarm_returned": "no longer active (the process returned)",
    "summary.alarm_unknown": "whether it is still active cannot be told from the records",
    "summary.alarm_acknowledged": "acknowledged at {time} by {who}",
    "summary.acks_head": "Acknowledgements of line alarms: {count}:",
    "summary.ack": "{time}: {charts}, by {who}.",
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
    "spc.acks": "{count} acknowledgement(s):",
    "spc.ack": "acknowledged at {time} by {who}: {charts}.",
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
    **CALIBRATION,
    **HELP,  # the command line's --help texts and argparse's own words (edge/locale/help.py)
    **LINE,
}


@dataclass(frozen=True)
class Message:
    """A sentence before it has a language: its id and parameters (what a record or report keeps)."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)
    indent: int = 0  # nesting under the sentence before it (a list's items), in levels


def say(message_id: str, lang: str | None = None, **params: Any) -> str:
    """The sentence for `message_id` with `params` in `lang` (None: the locale's); an id that is not in
    `ENGLISH` is a KeyError naming it (a bug, and the catalog test catches it), never a silent fallback."""
    try:
        english = ENGLISH[message_id]
    except KeyError:
        raise KeyError(f"no message {message_id!r} in the catalog") from None
    language = environment_language() if lang is None else language_from(lang)
    # A parameter that is itself a message (a trend, a fault's cause) is said in the same language; a tuple
    # of messages (an alarm's rules) is said as a list.
    words = {key: _said(value, language) for key, value in params.items()}
    translated = catalog(language).get(message_id) if language != FALLBACK else None
    if translated:
        try:
            return translated.format(**words)
        except (KeyError, IndexError, ValueError):
            pass  # a translation naming a parameter the code does not pass: English rather than nothing
    return english.format(**words)


def render(message: Message, lang: str | None = None) -> str:
    """One message as a line of text in `lang` (None: the locale's), indented by its level."""
    return "  " * message.indent + say(message.id, lang, **message.params)


def _said(value: Any, language: str) -> Any:
    """A parameter as it goes into a sentence: a message (or a tuple of them) said in `language`."""
    if isinstance(value, Message):
        return render(value, language)
    if isinstance(value, tuple) and value and all(isinstance(v, Message) for v in value):
        return ", ".join(render(v, language) for v in value)
    return value
