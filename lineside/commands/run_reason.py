"""A part's verdict reason on `lineside run`'s per-part line, in the line's language.

The line's sentence is English (the judges write it; the records keep codes). Here it is re-said from the
result's numbers as a catalog message, and that message is used only when its English rendering is the
very sentence the line wrote: a translation that might say something else is never printed, the English
sentence is. A FAULT is said from its error code (what happened and the code), as `records show` does.
Class and stage names are said in the plant's words where the station's glossary has them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from edge.errors import ErrorCode
from edge.i18n import Message, render
from edge.judge.inspection import Verdict
from edge.locale import FALLBACK, environment_language, language_from
from edge.locale.names import Glossary, names_in, say_named
from edge.runtime.messages import LedgerEvent

_NOTE = re.compile(r"(\d+) (below threshold|too small|outside ROI|ignored)")


def part_reason(event: LedgerEvent, lang: str | None, glossary: Glossary | None = None) -> str:
    """The event's first reason in `lang` (None: the locale's), with the plant's names from `glossary`;
    the English sentence where the catalog cannot say the same thing."""
    english = event.reasons[0] if event.reasons else ""
    language = environment_language() if lang is None else language_from(lang)
    if language == FALLBACK and not names_in(glossary, language):
        return english  # the very sentence the line wrote, whatever the catalog would say
    if event.verdict is None or event.verdict is Verdict.FAULT:  # what happened, from its code
        try:
            kind = ErrorCode(event.error_code).kind
        except ValueError:  # a code this version does not know
            kind = ErrorCode.INTERNAL.kind
        what = Message(f"fault.{kind}")
        return render(Message("reason.fault", {"what": what, "code": int(event.error_code)}), language)
    try:
        for candidate in _candidates(event):
            if render(candidate, "en") == english:
                return say_named(candidate, language, glossary)
    except (KeyError, TypeError, ValueError):  # a result shaped otherwise than expected: its own sentence
        pass
    return english


def _candidates(event: LedgerEvent) -> Iterator[Message]:
    if event.verdict is Verdict.ACCEPT:
        yield Message("reason.accept")
        # The rules' notes, "(1 below threshold, 2 outside ROI)": read back, kept only if said identically.
        _, _, notes = event.reasons[0].partition(" in ROI (") if event.reasons else ("", "", "")
        said = [_NOTE.fullmatch(note) for note in notes.rstrip(")").split(", ")]
        if notes and all(said):
            items = [Message(f"reason.note.{m[2].replace(' ', '_')}", {"n": int(m[1])}) for m in said if m]
            yield Message("reason.accept_notes", {"notes": tuple(items)})
    result = event.result
    if result is None:
        return
    for stage in result.stages:
        if stage.get("verdict") != "REJECT" or stage.get("score") is None or stage.get("threshold") is None:
            continue
        kind, threshold = str(stage.get("kind")), float(str(stage["threshold"]))
        numbers = {"score": float(str(stage["score"])), "threshold": threshold}
        if kind in ("classify", "anomaly"):
            yield Message(f"reason.{kind}.reject", {**numbers, "stage": stage.get("stage") or "-"})
        elif kind == "detect":
            for det in result.detections:
                box = det.get("box")
                if not isinstance(box, list | tuple) or len(box) != 4:
                    continue
                x1, y1, x2, y2 = (float(v) for v in box)
                where = Message(
                    "reason.where_px", {"x": (x1 + x2) / 2, "y": (y1 + y2) / 2, "w": x2 - x1, "h": y2 - y1}
                )
                score = float(str(det["confidence"]))
                params = {"cls": det.get("class"), "score": score, "threshold": threshold, "where": where}
                yield Message("reason.detect.reject", params)
