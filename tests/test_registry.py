"""The model registry: verify, the promotion gate, rollback, the recipe's `model_registry`, and the hot swap
watcher the inference worker runs between parts (real onnxruntime sessions on tiny models)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.modelstore.card import read_card
from edge.modelstore.hotswap import ModelWatcher, SwapOutcome, current_model_dir, load_inspectors
from edge.modelstore.registry import read_pointer, version_dir
from edge.station.config import RecipeConfig, RegistryModelConfig, parse_config
from tests.line import lineside
from tests.models import ModelBox, make_yolo_model
from training.registry import (
    EVAL_REPORT,
    PARITY_FILE,
    GateConfig,
    add_version,
    list_registry,
    promote,
    rollback,
    verify_version,
)

CLASSES = ("scratch", "pit")
THRESHOLDS = {"confidence": 0.05, "iou": 0.45, "per_class": {"scratch": 0.5, "pit": 0.5}}


def write_reports(folder: Path, escape: float = 0.0, parity: bool = True) -> None:
    """The fields the gate reads from training.evaluate's report.json, and a parity verdict."""
    card = read_card(folder)
    point = {
        "thresholds": {c: card.thresholds.per_class.get(c, 0.5) for c in card.classes},
        "escape_rate": escape,
        "overkill_rate": 0.01,
    }
    report = {"model": {"sha256": card.sha256}, "part_level": {"card": point, "chosen": point}}
    (folder / EVAL_REPORT).parent.mkdir(parents=True, exist_ok=True)
    (folder / EVAL_REPORT).write_text(json.dumps(report), encoding="utf-8")
    verdict = {"passed": parity, "mismatch": "none", "candidate_sha256": card.sha256}
    (folder / PARITY_FILE).write_text(json.dumps(verdict), encoding="utf-8")


def _edit_parity(folder: Path, **changes: Any) -> None:
    verdict = json.loads((folder / PARITY_FILE).read_text(encoding="utf-8"))
    verdict.update(changes)
    (folder / PARITY_FILE).write_text(json.dumps(verdict), encoding="utf-8")


def make_version(
    registry: Path,
    version: str,
    *,
    name: str = "part",
    classes: tuple[str, ...] = CLASSES,
    escape: float = 0.0,
    parity: bool = True,
    anchors: int = 1,
    **model: Any,
) -> Path:
    """A gate-passing version of the tests/line.py brightness model (bright part = scratch = REJECT)."""
    thresholds = {**THRESHOLDS, "per_class": {c: 0.5 for c in classes}}
    folder = make_yolo_model(
        registry / name / version,
        list(classes),
        [ModelBox(32, 32, 10, 10, 0, 1.0)],
        imgsz=model.pop("imgsz", (64, 64)),
        anchors=anchors,
        gain="input_mean",
        thresholds=thresholds,
        name=name,
        version=version,
        **model,
    )
    write_reports(folder, escape, parity)
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    make_version(root, "1.0.0")
    make_version(root, "1.1.0", anchors=2)
    return root


def test_promote_makes_version_current_and_rollback_goes_back_one_step(registry: Path) -> None:
    promote(registry, "part", "1.0.0")
    pointer = promote(registry, "part", "1.1.0", note="new lighting")
    assert (pointer.current, pointer.previous) == ("1.1.0", "1.0.0")
    assert read_pointer(registry, "part") == pointer
    assert "escape 0.0000" in pointer.history[-1].note and "new lighting" in pointer.history[-1].note
    back = rollback(registry, "part")
    assert (back.current, back.previous) == ("1.0.0", None)
    assert [e.action for e in back.history] == ["promote", "promote", "rollback"]
    with pytest.raises(LinesideError, match="no previous version"):
        rollback(registry, "part")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda f: write_reports(f, escape=0.2), "escape rate 0.2000 is above the gate's 0.03"),
        (lambda f: write_reports(f, parity=False), "parity check did not pass"),
        (lambda f: (f / PARITY_FILE).unlink(), "parity report missing"),
        (lambda f: _edit_parity(f, candidate_sha256="ab" * 32), "parity was checked on another model file"),
        (lambda f: _edit_parity(f, candidate_sha256=None), "names no model sha256"),
        (lambda f: _edit_parity(f, mismatch="swap_rb"), "deliberately mismatched parity run"),
        (lambda f: (f / EVAL_REPORT).unlink(), "evaluation report missing"),
        (lambda f: (f / "model.onnx").write_bytes(b"garbage"), "does not match card"),
        (
            lambda f: _edit_card(f, thresholds={**THRESHOLDS, "per_class": {"scratch": 0.9}}),
            "other thresholds",
        ),
        (lambda f: _edit_card(f, version="9.9.9"), "card says part 9.9.9"),
    ],
    ids=[
        "escape",
        "parity-failed",
        "parity-missing",
        "parity-other-file",
        "parity-no-sha",
        "parity-mismatched",
        "no-report",
        "checksum",
        "thresholds",
        "card-version",
    ],
)
def test_promote_refuses_a_version_that_fails_a_check(registry: Path, spoil: Any, message: str) -> None:
    promote(registry, "part", "1.0.0")
    spoil(version_dir(registry, "part", "1.1.0"))
    with pytest.raises(LinesideError, match=message):
        promote(registry, "part", "1.1.0")
    assert read_pointer(registry, "part").current == "1.0.0"


def _edit_card(folder: Path, **fields: Any) -> None:
    card = json.loads((folder / "card.json").read_text())
    card.update(fields)
    (folder / "card.json").write_text(json.dumps(card))


def test_verify_refuses_wrong_input_size_and_class_count(tmp_path: Path) -> None:
    make_version(tmp_path, "2.0.0", onnx_imgsz=(32, 32))
    with pytest.raises(LinesideError, match="input shape"):
        verify_version(tmp_path, "part", "2.0.0")
    make_version(tmp_path, "3.0.0", card_classes=("scratch", "pit", "chip"))
    with pytest.raises(LinesideError, match="classes"):
        verify_version(tmp_path, "part", "3.0.0")


def test_gate_maximum_comes_from_the_caller(registry: Path) -> None:
    write_reports(version_dir(registry, "part", "1.0.0"), escape=0.05)
    with pytest.raises(LinesideError, match="above the gate"):
        promote(registry, "part", "1.0.0")
    assert promote(registry, "part", "1.0.0", gate=GateConfig(max_escape_rate=0.06)).current == "1.0.0"


def test_add_copies_a_version_in_and_never_overwrites(registry: Path, tmp_path: Path) -> None:
    exported = make_version(tmp_path / "export", "2.0.0")
    target = add_version(registry, exported)
    assert target == version_dir(registry, "part", "2.0.0") and read_card(target).version == "2.0.0"
    with pytest.raises(LinesideError, match="already in the registry"):
        add_version(registry, exported)
    entry = next(e for e in list_registry(registry) if e.name == "part")
    assert [v.version for v in entry.versions] == ["1.0.0", "1.1.0", "2.0.0"]


def test_cli_promote_refuses_with_one_line_and_list_marks_current(registry: Path) -> None:
    write_reports(version_dir(registry, "part", "1.1.0"), escape=0.5)
    ok = lineside("models", "--registry", str(registry), "promote", "part", "1.0.0")
    assert ok.returncode == 0, ok.stderr
    refused = lineside("models", "--registry", str(registry), "promote", "part", "1.1.0")
    assert refused.returncode == 1
    ours = [line for line in refused.stderr.splitlines() if "onnxruntime" not in line]  # ORT's own warnings
    assert (
        ours == [ours[0]]
        and ours[0].startswith("lineside models promote: ")
        and "escape rate 0.5000" in ours[0]
    )
    listing = lineside("models", "--registry", str(registry), "list")
    assert any(line.startswith("* part") and "1.0.0" in line for line in listing.stdout.splitlines())


# -- the recipe side -----------------------------------------------------------------------------------
def _config(registry: Path, **ref: Any) -> dict[str, Any]:
    return {
        "source": {"kind": "folder", "path": "."},
        "recipes": [
            {"number": 1, "name": "p", "model_registry": {"dir": str(registry), "name": "part", **ref}}
        ],
        "default_recipe": 1,
        "records": {"dir": "records"},
    }


def test_recipe_model_registry_resolves_to_the_promoted_version(registry: Path, tmp_path: Path) -> None:
    promote(registry, "part", "1.1.0")
    config = parse_config(_config(registry), "line.yaml", tmp_path)
    assert config.recipes[0].model == version_dir(registry, "part", "1.1.0")
    both = _config(registry)
    both["recipes"][0]["model"] = "somewhere"
    with pytest.raises(LinesideError, match="not both"):
        parse_config(both, "line.yaml", tmp_path)
    with pytest.raises(LinesideError, match="promotion pointer missing"):
        parse_config(_config(tmp_path / "empty"), "line.yaml", tmp_path)


# -- the hot swap watcher ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0  # every poll is past poll_s
        return self.now


def _watcher(registry: Path, **ref: Any) -> tuple[ModelWatcher, dict[int, Any]]:
    recipe = RecipeConfig(
        number=1, name="p", model_registry=RegistryModelConfig(dir=registry, name="part", poll_s=0.5, **ref)
    )
    loaded = load_inspectors([recipe], current_model_dir(recipe), DetectorConfig(warmup_runs=1))
    return ModelWatcher([recipe], DetectorConfig(warmup_runs=1), loaded, clock=FakeClock()), loaded


def _settle(watcher: ModelWatcher) -> SwapOutcome:
    """Poll until a background load finished and its outcome came back (bounded)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        outcome = watcher.poll()
        if outcome.swapped or outcome.refused:
            return outcome
        if not watcher.loading:
            return outcome
        time.sleep(0.01)
    raise AssertionError("model load did not finish in 20 s")


def test_watcher_swaps_in_a_promoted_version_and_reuses_the_previous_on_rollback(registry: Path) -> None:
    promote(registry, "part", "1.0.0")
    watcher, loaded = _watcher(registry)
    first = loaded[1].primary
    assert _settle(watcher) == SwapOutcome()  # the running model is the promoted one: nothing to do
    promote(registry, "part", "1.1.0")
    swapped = _settle(watcher).swapped
    assert swapped[1].primary.card.version == "1.1.0"
    rollback(registry, "part")
    back = _settle(watcher).swapped
    assert back[1].primary is first  # still loaded: no new session for a one-step rollback
    assert watcher.detail == {"model_swap": {"part": "running 1.0.0"}}
    watcher.close()


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda r: (make_version(r, "2.0.0") / "model.onnx").write_bytes(b"\x08garbage"), "sha256"),
        (lambda r: make_version(r, "2.0.0", classes=("scratch", "dent")), "class list"),
        (lambda r: make_version(r, "2.0.0", onnx_imgsz=(32, 32)), "input shape"),
        (lambda r: _edit_card(make_version(r, "2.0.0"), sha256="0" * 64), "sha256"),
    ],
    ids=["garbage", "other-classes", "wrong-input-size", "wrong-sha"],
)
def test_watcher_refuses_a_bad_version_and_keeps_the_running_model(
    registry: Path, make_bad: Any, message: str
) -> None:
    promote(registry, "part", "1.0.0")
    watcher, _ = _watcher(registry)
    _settle(watcher)
    make_bad(registry)
    # A pointer written by hand (or a file replaced after promotion): the gate was bypassed.
    pointer = read_pointer(registry, "part").model_copy(update={"current": "2.0.0", "previous": "1.0.0"})
    (registry / "part" / "promoted.json").write_text(pointer.model_dump_json(by_alias=True))
    outcome = _settle(watcher)
    assert not outcome.swapped
    assert message in outcome.refused and "still judging with 1.0.0" in outcome.refused
    assert watcher.detail["model_swap"]["part"].startswith("refused 2.0.0: ")  # type: ignore[index]
    assert watcher.poll() == SwapOutcome()  # reported once, not on every poll
    watcher.close()


def test_watcher_refuses_garbage_written_over_the_running_version(registry: Path) -> None:
    promote(registry, "part", "1.0.0")
    watcher, loaded = _watcher(registry)
    _settle(watcher)
    (version_dir(registry, "part", "1.0.0") / "model.onnx").write_bytes(b"not a model any more")
    outcome = _settle(watcher)
    assert "sha256" in outcome.refused and not outcome.swapped
    frame = __import__("numpy").full((64, 64, 3), 220, "uint8")
    assert loaded[1].inspect(frame).decision.verdict.value == "REJECT"  # the old session still judges
    watcher.close()


def test_an_in_place_overwrite_seen_half_done_is_refused_at_each_state(registry: Path) -> None:
    """A copy that writes over the running file is two states on disk, truncated and then the bad bytes;
    a poll between them sees both, and each is refused once (the fault test suite counts refusals)."""
    promote(registry, "part", "1.0.0")
    watcher, loaded = _watcher(registry)
    _settle(watcher)
    model = version_dir(registry, "part", "1.0.0") / "model.onnx"
    model.write_bytes(b"")  # the copy has truncated the file, not written it yet
    assert "sha256" in _settle(watcher).refused
    model.write_bytes(b"not a model any more")
    second = _settle(watcher)
    assert "sha256" in second.refused and "still judging with 1.0.0" in second.refused
    assert watcher.poll() == SwapOutcome()  # nothing changed since: nothing more to refuse
    frame = __import__("numpy").full((64, 64, 3), 220, "uint8")
    assert loaded[1].inspect(frame).decision.verdict.value == "REJECT"  # the old session still judges
    watcher.close()


def test_class_change_is_accepted_only_when_the_recipe_allows_it(registry: Path) -> None:
    promote(registry, "part", "1.0.0")
    watcher, _ = _watcher(registry, allow_class_change=True)
    _settle(watcher)
    make_version(registry, "2.0.0", classes=("scratch", "pit", "dent"))
    promote(registry, "part", "2.0.0")
    swapped = _settle(watcher).swapped
    assert swapped[1].primary.card.classes == ("scratch", "pit", "dent")
    watcher.close()


def test_promote_with_eval_data_evaluates_through_edge_when_no_report_exists(tmp_path: Path) -> None:
    from tests.test_notebook import CLASSES as SYNTH_CLASSES
    from tests.test_notebook import tiny_dataset

    data = tiny_dataset(tmp_path / "data", n_train=1, n_val=4)
    registry = tmp_path / "models"
    folder = make_version(registry, "1.0.0", classes=SYNTH_CLASSES)
    (folder / EVAL_REPORT).unlink()
    with pytest.raises(LinesideError, match="evaluation report missing"):
        promote(registry, "part", "1.0.0")
    gate = GateConfig(max_escape_rate=1.0)
    pointer = promote(registry, "part", "1.0.0", gate=gate, eval_data=data)
    report = json.loads((folder / EVAL_REPORT).read_text())
    assert report["model"]["sha256"] == read_card(folder).sha256 and report["data"]["images"] == 4
    assert pointer.current == "1.0.0" and "escape" in pointer.history[-1].note
