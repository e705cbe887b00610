"""The model registry's write side: add a version, verify it, promote it through the gate, roll back.

A registry is a folder of `<name>/<version>/` (model.onnx, card.json, eval/report.json, parity.json) and, per
name, `promoted.json` (edge/modelstore/registry.py reads it and the appliance follows it).
Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.atomic import atomic_write_text, fsync_dir
from edge.errors import LinesideError
from edge.modelstore.card import CARD_FILE, ModelCard, read_card
from edge.modelstore.registry import (
    POINTER_FILE,
    Pointer,
    PointerEvent,
    model_name_dir,
    pointer_path,
    read_pointer,
    version_dir,
)

GATE_FILE = "gate.yaml"
EVAL_REPORT = Path("eval") / "report.json"  # training.evaluate.evaluate(..., out_dir=<version>/eval)
PARITY_FILE = "parity.json"
LOCK_FILE = ".lock"
THRESHOLD_TOLERANCE = 1e-4  # the report and the card both round thresholds to 4 places


class GateConfig(BaseModel):
    """`<registry>/gate.yaml`: what a version must show before it may become current."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_escape_rate: float = Field(
        0.03, ge=0.0, le=1.0, description="Most defective parts passed (part level, eval split) allowed."
    )
    require_parity: bool = Field(
        True, description="Require parity.json with passed: true (the exported model agrees with training)."
    )


@dataclass(frozen=True)
class VersionStatus:
    """One version folder as `list` shows it."""

    version: str
    card: ModelCard | None
    problem: str = ""
    escape_rate: float | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One model name: its pointer (if any) and its versions."""

    name: str
    pointer: Pointer | None
    pointer_problem: str
    versions: tuple[VersionStatus, ...]


def read_gate(registry: Path) -> GateConfig:
    path = Path(registry) / GATE_FILE
    if not path.is_file():
        return GateConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return GateConfig.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise LinesideError(f"{path}: unreadable gate ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise LinesideError(f"{path}: field '{'.'.join(map(str, first['loc']))}': {first['msg']}") from None


def list_registry(registry: Path) -> list[ModelEntry]:
    """Every model name in the registry, with its pointer and versions (problems shown, not raised)."""
    registry = Path(registry)
    if not registry.is_dir():
        raise LinesideError(f"{registry}: model registry folder does not exist")
    entries = []
    for name_dir in sorted(p for p in registry.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        versions = tuple(
            _version_status(v)
            for v in sorted(name_dir.iterdir())
            if v.is_dir() and not v.name.startswith(".")
        )
        if not versions:
            continue
        pointer, problem = None, ""
        if (name_dir / POINTER_FILE).exists():
            try:
                pointer = read_pointer(registry, name_dir.name)
            except LinesideError as exc:
                problem = str(exc)
        entries.append(ModelEntry(name_dir.name, pointer, problem, versions))
    return entries


def _version_status(folder: Path) -> VersionStatus:
    try:
        card = read_card(folder)
    except LinesideError as exc:
        return VersionStatus(folder.name, None, str(exc))
    escape = None
    with contextlib.suppress(LinesideError, KeyError, TypeError):
        escape = _operating_point(folder, card)[0]
    return VersionStatus(folder.name, card, "", escape)


def verify_version(registry: Path, name: str, version: str) -> ModelCard:
    """Card fields, sha256, an onnxruntime session whose input/output shapes match the card and its class
    count, and one warm-up inference; LinesideError (one line) on the first failure."""
    from edge.judge.inspector import load_model  # onnxruntime only when a model is really checked

    folder = version_dir(registry, name, version)
    if not folder.is_dir():
        raise LinesideError(f"{folder}: no such model version")
    card = read_card(folder)
    if (card.name, card.version) != (name, version):
        raise LinesideError(
            f"{folder / CARD_FILE}: card says {card.name} {card.version}, the folder is {name}/{version}"
        )
    model = load_model(folder)  # a detector, or a classify/anomaly model checked against its file's metadata
    try:
        model.warmup()
    except LinesideError as exc:
        raise LinesideError(f"{folder}: warm-up inference failed: {exc}") from None
    return card


def check_gate(folder: Path, card: ModelCard, gate: GateConfig) -> str:
    """The gate's figures as a note, or LinesideError saying which condition failed."""
    escape, overkill = _operating_point(folder, card)
    if escape > gate.max_escape_rate:
        raise LinesideError(
            f"{folder / EVAL_REPORT}: escape rate {escape:.4f} is above the gate's {gate.max_escape_rate}"
        )
    note = f"escape {escape:.4f} <= {gate.max_escape_rate}, overkill {overkill:.4f}"
    if gate.require_parity:
        # `lineside eval --parity --out <version>` or `--out <version>/eval` (training/parity.py's to_json).
        path = next((p for p in _parity_places(folder) if p.is_file()), folder / PARITY_FILE)
        _check_parity_report(path, _read_json(path, "parity report"), card)
        note += ", parity passed"
    return note


def _check_parity_report(path: Path, parity: Mapping[str, Any], card: ModelCard) -> None:
    """A passed parity check of this very model file, with the line's pre-processing."""
    if parity.get("passed") is not True:
        raise LinesideError(f"{path}: parity check did not pass")
    if parity.get("mismatch", "none") != "none":
        raise LinesideError(
            f"{path}: a deliberately mismatched parity run ({parity['mismatch']}) proves nothing"
        )
    checked = parity.get("candidate_sha256")
    if not checked:
        raise LinesideError(f"{path}: names no model sha256; re-run lineside eval --parity on this version")
    if checked != card.sha256:
        raise LinesideError(
            f"{path}: parity was checked on another model file (sha256 {str(checked)[:12]}, the card's"
            f" {card.sha256[:12]}); re-run lineside eval --parity"
        )


def _parity_places(folder: Path) -> tuple[Path, Path]:
    return folder / PARITY_FILE, folder / EVAL_REPORT.parent / PARITY_FILE


def export_parity(candidate_sha256: str, max_diff: float, images: int, tolerance: float) -> dict[str, Any]:
    """The parity verdict of an export that was checked against its torch module (classify, anomaly)."""
    return {
        "passed": True,  # the exporters refuse the model otherwise
        "candidate": "model.onnx",
        "candidate_sha256": candidate_sha256,
        "reference": "the torch module it was exported from",
        "mismatch": "none",
        "images": images,
        "max_diff": max_diff,
        "tolerance": tolerance,
    }


def save_parity(folder: Path, parity: Mapping[str, Any]) -> Path:
    """Keep a parity verdict (training.parity.ParityReport.to_json()) beside the model for the gate."""
    if not isinstance(parity.get("passed"), bool):
        raise LinesideError(f"{folder}: a parity report needs a true/false 'passed'")
    return atomic_write_text(Path(folder) / PARITY_FILE, json.dumps(dict(parity), indent=2) + "\n")


def _operating_point(folder: Path, card: ModelCard) -> tuple[float, float]:
    """(escape, overkill) the eval report measured at the thresholds this card gives the line."""
    path = folder / EVAL_REPORT
    report = _read_json(path, "evaluation report")
    if card.task != "detect":
        return _judge_operating_point(path, report, card)
    try:
        if report["model"]["sha256"] != card.sha256:
            raise LinesideError(f"{path}: report is for another model file (sha256 differs); re-evaluate")
        points = [report["part_level"]["card"], report["part_level"]["chosen"]]
        line = {c: card.thresholds.per_class.get(c, 0.5) for c in card.classes}
        for point in points:
            measured = point["thresholds"]
            if set(measured) == set(line) and all(
                abs(float(measured[c]) - line[c]) <= THRESHOLD_TOLERANCE for c in line
            ):
                return float(point["escape_rate"]), float(point["overkill_rate"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LinesideError(f"{path}: not an evaluation report ({type(exc).__name__}: {exc})") from None
    raise LinesideError(f"{path}: report measured other thresholds than the card's; re-evaluate")


def _judge_operating_point(path: Path, report: Mapping[str, Any], card: ModelCard) -> tuple[float, float]:
    """A classify or anomaly model's (escape, overkill) at its card's score threshold (judge_report.py)."""
    try:
        (stage,) = report["stages"]
        if stage["model"]["sha256"] != card.sha256:
            raise LinesideError(f"{path}: report is for another model file (sha256 differs); re-evaluate")
        for key in ("at_threshold_in_use", "chosen_for_target"):
            point = stage[key]
            threshold = float(card.thresholds.score or 0.0)
            if point is not None and abs(float(point["threshold"]) - threshold) <= 1e-6:
                return float(point["escape_rate"]), float(point["overkill_rate"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LinesideError(f"{path}: not an evaluation report ({type(exc).__name__}: {exc})") from None
    raise LinesideError(f"{path}: report measured another threshold than the card's; re-evaluate")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LinesideError(f"{path}: {what} missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LinesideError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise LinesideError(f"{path}: {what} is not a JSON object")
    return data


def evaluate_version(folder: Path, data_dir: Path, gate: GateConfig, split: str = "val") -> Path:
    """Evaluate the version on `data_dir` through edge (training.evaluate) and write its report."""
    from training.evaluate import evaluate

    if read_card(folder).task != "detect":
        from training.judges.judge_eval import evaluate_judges
        from training.judges.judge_scores import recipe_for

        recipe = recipe_for(folder, None, None)
        out = folder / EVAL_REPORT.parent
        evaluate_judges(recipe, [data_dir], split, gate.max_escape_rate, out, plots=False)
        return folder / EVAL_REPORT
    evaluate(folder, data_dir, split, gate.max_escape_rate, folder / EVAL_REPORT.parent, plots=False)
    return folder / EVAL_REPORT


def promote(
    registry: Path,
    name: str,
    version: str,
    *,
    gate: GateConfig | None = None,
    eval_data: Path | None = None,
    note: str = "",
) -> Pointer:
    """Make `version` current once card, checksum, session, gate and parity pass; the old one is previous."""
    gate = gate or read_gate(registry)
    with _locked(registry, name):
        card = verify_version(registry, name, version)
        folder = version_dir(registry, name, version)
        if eval_data is not None and not (folder / EVAL_REPORT).is_file():
            evaluate_version(folder, eval_data, gate)
        figures = check_gate(folder, card, gate)
        old = _pointer_or_none(registry, name)
        if old is not None and old.current == version:
            raise LinesideError(f"{name} {version} is already current")
        event = _event("promote", version, old, "; ".join(x for x in (figures, note) if x))
        pointer = Pointer(
            name=name,
            current=version,
            previous=old.current if old else None,
            history=(*(old.history if old else ()), event),
        )
        return _write_pointer(registry, pointer)


def rollback(registry: Path, name: str, note: str = "") -> Pointer:
    """Make the previous version current again (one step: afterwards there is no previous)."""
    with _locked(registry, name):
        old = read_pointer(registry, name)
        if old.previous is None:
            raise LinesideError(f"{name}: no previous version to roll back to (rollback goes one step)")
        verify_version(registry, name, old.previous)
        event = _event("rollback", old.previous, old, note)
        pointer = Pointer(name=name, current=old.previous, previous=None, history=(*old.history, event))
        return _write_pointer(registry, pointer)


def add_version(registry: Path, model_dir: Path, *, exist_ok: bool = False) -> Path:
    """Copy an exported model folder (card, model, reports) in as `<name>/<version>/`; never overwrite.

    With `exist_ok`, a version already there with the very same card (so the same sha256) is accepted.
    """
    card = read_card(Path(model_dir))
    target = version_dir(registry, card.name, card.version)
    if target.exists():
        if exist_ok and read_card(target) == card:
            return target
        raise LinesideError(f"{target}: version {card.version} of {card.name} is already in the registry")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{card.version}.", dir=target.parent))
    try:
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        os.rename(staging, target)  # a version appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(target.parent)
    return target


def _pointer_or_none(registry: Path, name: str) -> Pointer | None:
    return read_pointer(registry, name) if pointer_path(registry, name).exists() else None


def _event(action: str, version: str, old: Pointer | None, note: str) -> PointerEvent:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return PointerEvent.model_validate(
        {
            "action": action,
            "version": version,
            "replaced": old.current if old else None,
            "at": now,
            "note": note,
        }
    )


def _write_pointer(registry: Path, pointer: Pointer) -> Pointer:
    text = json.dumps(pointer.model_dump(mode="json", by_alias=True), indent=2) + "\n"
    atomic_write_text(pointer_path(registry, pointer.name), text)
    return pointer


@contextlib.contextmanager
def _locked(registry: Path, name: str) -> Iterator[None]:
    """One promotion or rollback per model name at a time (a second one is refused, not queued)."""
    folder = model_name_dir(registry, name)
    if not folder.is_dir():
        raise LinesideError(f"{folder}: no such model in the registry")
    with (folder / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LinesideError(f"{folder}: another promotion or rollback is in progress") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
