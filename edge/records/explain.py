"""A record's evidence as lines a person reads, in English or Korean, from its language-neutral codes and
numbers (edge/judge/evidence.py); the verdict's reason is re-rendered from them too, so a record made
under one language reads in the other. Used by `lineside records show`, the status page and the evidence
picture (English there: OpenCV's stroke font has no Hangul). Class and stage names are said in the plant's
words where the station's glossary has them (edge/locale/names.py); the records keep the codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.i18n import ENGLISH, Message, say
from edge.locale.names import Glossary, name_of, named
from edge.records.model import InspectionRecord


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else format(float(value), spec)


def _compare(margin: Any) -> str:
    return ">=" if margin is not None and float(margin) >= 0 else "<"


def _code(code: str, lang: str | None) -> str:
    """A finding's code in words where the catalog has it (English keeps the code as stored)."""
    return say(f"code.{code}", lang) if f"code.{code}" in ENGLISH else code


def reason_message(evidence: Mapping[str, Any] | None) -> Message | None:
    """The verdict's reason, from the evidence's rule; None when the evidence cannot say it."""
    if not evidence:
        return None
    verdict, rule = evidence.get("verdict"), evidence.get("rule") or {}
    if verdict == "ACCEPT":
        return Message("reason.accept")
    code = str(rule.get("code", ""))
    if verdict == "FAULT" and code.startswith("fault."):
        what: Message | str = Message(code) if code in ENGLISH else code  # fault.<kind>: what happened
        return Message("reason.fault", {"what": what, "code": rule.get("error_code", "-")})
    if verdict != "REJECT" or rule.get("score") is None or rule.get("threshold") is None:
        return None
    numbers = {"score": float(rule["score"]), "threshold": float(rule["threshold"])}
    if code in ("classify.reject", "anomaly.reject"):
        return Message(f"reason.{code}", {**numbers, "stage": rule.get("stage") or "-"})
    if code != "detect.reject" or rule.get("box") is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in rule["box"])
    mm_per_px = evidence.get("mm_per_px")
    if rule.get("centre_mm") is not None and mm_per_px:
        cx, cy = (float(v) for v in rule["centre_mm"])
        scale = float(mm_per_px)
        where = Message("reason.where_mm", {"x": cx, "y": cy, "w": (x2 - x1) * scale, "h": (y2 - y1) * scale})
    else:
        where = Message(
            "reason.where_px", {"x": (x1 + x2) / 2, "y": (y1 + y2) / 2, "w": x2 - x1, "h": y2 - y1}
        )
    return Message("reason.detect.reject", {**numbers, "cls": rule.get("class") or "-", "where": where})


def finding_text(
    finding: Mapping[str, Any], lang: str | None = "en", glossary: Glossary | None = None
) -> str:
    """One finding (a rule that fired, a runner-up, a fault) as one line: who and what, then its numbers."""
    head = [
        f"{name_of(str(finding['stage']), lang, glossary)}:" if finding.get("stage") else "",
        _code(str(finding.get("code", "?")), lang),
    ]
    if finding.get("class"):
        head.append(name_of(str(finding["class"]), lang, glossary))
    clauses = []
    if "error_code" in finding:
        clauses.append(
            say(
                "finding.error",
                lang,
                code=finding["error_code"],
                kind=finding.get("kind"),
                detail=finding.get("detail", ""),
            )
        )
    margin = finding.get("margin")
    if finding.get("score") is not None and finding.get("threshold") is not None:
        clauses.append(
            say(
                "finding.score",
                lang,
                score=_num(finding["score"], ".3f"),
                compare=_compare(margin),
                threshold=_num(finding["threshold"], ".3f"),
                margin=_num(margin, "+.3f"),
            )
        )
    for key in ("size", "area"):
        if finding.get(key) is not None:
            value_margin = finding.get(f"{key}_margin")
            clauses.append(
                say(
                    f"finding.{key}",
                    lang,
                    value=_num(finding[key], ".2f"),
                    units=finding.get("units", ""),
                    compare=_compare(value_margin),
                    limit=_num(finding.get(f"{key}_limit"), ".2f"),
                    margin=_num(value_margin, "+.2f"),
                )
            )
    if finding.get("box") is not None:
        x1, y1, x2, y2 = finding["box"]
        clauses.append(say("finding.box", lang, x1=x1, y1=y1, x2=x2, y2=y2))
    if finding.get("centre_mm") is not None:
        clauses.append(say("finding.centre_mm", lang, x=finding["centre_mm"][0], y=finding["centre_mm"][1]))
    if finding.get("hottest") is not None:
        clauses.append(say("finding.hottest", lang, x=finding["hottest"][0], y=finding["hottest"][1]))
    return " ".join(w for w in head if w) + (" " + ", ".join(clauses) if clauses else "")


def evidence_lines(
    record: InspectionRecord, lang: str | None = "en", glossary: Glossary | None = None
) -> list[str]:
    """The record, its reason and why it got its verdict, line by line, in `lang` (None: the locale's), the
    class and stage names in the plant's words where `glossary` has them."""
    evidence = record.evidence
    verdict = record.verdict.value
    near = verdict == "ACCEPT" and record.near_threshold
    head = say(
        "show.head",
        lang,
        key=f"{record.boot_id}:{record.seq}",
        part=record.part_id or "-",
        recipe=record.recipe,
        verdict=Message(f"verdict.{verdict}"),
    )
    head += say("show.near_flag", lang) if near else ""
    if record.error_code:
        head += say("show.error_flag", lang, code=record.error_code)
    model = say("show.model", lang, name=record.model_name or "-", version=record.model_version or "")
    lines = [head, model.rstrip()]
    if not evidence:
        return [*lines, say("show.no_evidence", lang)]
    reason = reason_message(evidence)
    if reason is not None:
        lines.append(say("show.reason", lang, reason=named(reason, lang, glossary)))
    if evidence.get("deciding_stage"):
        deciding = name_of(str(evidence["deciding_stage"]), lang, glossary)
        lines.append(say("show.deciding", lang, stage=deciding, kind=evidence.get("deciding_kind")))
    if evidence.get("rule"):
        lines.append(say("show.rule", lang, finding=finding_text(evidence["rule"], lang, glossary)))
    fired = evidence.get("fired", [])
    lines += [say("show.fired", lang, finding=finding_text(f, lang, glossary)) for f in fired]
    if near:
        lines.append(say("show.near", lang))
    below = evidence.get("runner_ups", [])
    lines += [say("show.below", lang, finding=finding_text(f, lang, glossary)) for f in below]
    for stage in evidence.get("stages", []):
        margin = stage.get("margin")
        line = say(
            "show.stage",
            lang,
            stage=name_of(str(stage["stage"]), lang, glossary),
            kind=stage["kind"],
            verdict=Message(f"verdict.{stage['verdict']}"),
            score=_num(stage.get("score"), ".3f"),
            threshold=_num(stage.get("threshold"), ".3f"),
        )
        lines.append(
            line + (say("show.stage_margin", lang, margin=_num(margin, "+.3f")) if margin is not None else "")
        )
    if evidence.get("calibrated"):
        lines.append(say("show.calibrated", lang, mm_per_px=evidence.get("mm_per_px")))
    return lines
