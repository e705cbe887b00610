"""Model hot swap: the inference worker follows a registry recipe's promoted version between parts.

A new version is verified (card, sha256, onnxruntime session, input/output shapes, class list, the recipe's
rules and calibration, a warm-up run) in a background thread and handed over only when all of that passed;
until then, and after any refusal, the running model keeps judging. A part is always judged by one model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.inspector import Inspector, Model, load_model
from edge.modelstore.card import ModelCard, load_verified, read_card
from edge.modelstore.registry import pointer_path, read_pointer, version_dir
from edge.runtime.placement import Placement, pin_thread, pinned
from edge.station.config import RecipeConfig

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 5.0
Signature = tuple[object, ...]


@dataclass(frozen=True)
class SwapOutcome:
    """What one poll found: inspectors to install now (recipe number -> inspector), or a refusal to report."""

    swapped: dict[int, Inspector] = field(default_factory=dict)
    refused: str = ""


def current_model_dir(recipe: RecipeConfig) -> Path:
    """The folder the recipe's model is loaded from now: the promoted version, or the plain model folder."""
    ref = recipe.model_registry
    if ref is None:
        return recipe.model.resolve()
    return version_dir(ref.dir, ref.name, read_pointer(ref.dir, ref.name).current).resolve()


def load_inspectors(
    recipes: Sequence[RecipeConfig],
    model_dir: Path,
    detector_cfg: DetectorConfig,
    placement: Placement | None = None,
    stage_models: Mapping[Path, Model] | None = None,
) -> dict[int, Inspector]:
    """A verified, warm model from `model_dir` and an inspector per recipe; LinesideError if not.

    The recipes' other stages keep their loaded models (`stage_models`, by folder): only `model` swaps.

    With a placement, the session's thread pool starts on the inference CPUs, and the rest of the work
    (verification, warm-up) runs on the service CPUs, beside the model that is judging parts.
    """
    if placement is not None:
        pin_thread(placement.service)
    with pinned(placement.inference if placement is not None else None):
        model = load_model(model_dir, detector_cfg)
    model.warmup()
    return {
        r.number: Inspector.load(r.model_copy(update={"model": model_dir}), model, stage_models)
        for r in recipes
    }


def check_classes(running: ModelCard, candidate: ModelCard, allow_change: bool) -> None:
    """Refuse a version whose class list differs from the running model's, unless the recipe allows it."""
    if candidate.classes != running.classes and not allow_change:
        raise LinesideError(
            f"class list ({', '.join(candidate.classes)}) differs from the running model's "
            f"({', '.join(running.classes)}); set model_registry.allow_class_change to accept it"
        )


class _Job:
    """A load in a background thread: `result` is inspectors to install, None (verified, nothing to swap)."""

    def __init__(self, version: str, work: Callable[[], dict[int, Inspector] | None]) -> None:
        self.version = version
        self.result: dict[int, Inspector] | None = None
        self.error = ""
        self._work = work
        self.thread = threading.Thread(target=self._run, name=f"model-load-{version}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._work()
        except LinesideError as exc:
            self.error = str(exc)
        except Exception as exc:  # any failure to load means "refuse the version", never "swap anyway"
            self.error = f"{type(exc).__name__}: {exc}"


@dataclass
class _Watch:
    """One registry model followed for the recipes that use it."""

    registry: Path
    name: str
    poll_s: float
    allow_class_change: bool
    recipes: list[RecipeConfig]
    running: dict[int, Inspector]
    previous: dict[int, Inspector] = field(default_factory=dict)
    signature: Signature | None = None
    next_poll: float = 0.0
    job: _Job | None = None
    state: str = ""

    @property
    def card(self) -> ModelCard:
        return next(iter(self.running.values())).primary.card

    @property
    def model_dir(self) -> Path:
        return next(iter(self.running.values())).primary.model_dir.resolve()


class ModelWatcher:
    """Follows the pointers of the registry recipes; `poll()` between parts, `close()` at teardown."""

    def __init__(
        self,
        recipes: Sequence[RecipeConfig],
        detector_cfg: DetectorConfig,
        loaded: Mapping[int, Inspector],
        placement: Placement | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = detector_cfg
        self._placement = placement
        self._clock = clock
        self._watches: dict[tuple[Path, str], _Watch] = {}
        for recipe in recipes:
            ref = recipe.model_registry
            if ref is None or recipe.number not in loaded:
                continue
            key = (ref.dir.resolve(), ref.name)
            watch = self._watches.get(key)
            if watch is None:
                watch = _Watch(key[0], ref.name, ref.poll_s, ref.allow_class_change, [], {})
                self._watches[key] = watch
            watch.recipes.append(recipe)
            watch.running[recipe.number] = loaded[recipe.number]
            watch.poll_s = min(watch.poll_s, ref.poll_s)
            watch.allow_class_change = watch.allow_class_change and ref.allow_class_change
        for watch in self._watches.values():
            watch.state = f"running {watch.card.version}"

    @property
    def detail(self) -> dict[str, object]:
        """For the heartbeat: per registry model, what runs, what is loading, or why a version was refused."""
        return {"model_swap": {w.name: w.state for w in self._watches.values()}} if self._watches else {}

    @property
    def loading(self) -> bool:
        """A new version is being verified and loaded in the background."""
        return any(w.job is not None for w in self._watches.values())

    def poll(self) -> SwapOutcome:
        """Cheap unless something changed: reads each pointer at most every poll_s; never blocks on a load."""
        now = self._clock()
        swapped: dict[int, Inspector] = {}
        refused: list[str] = []
        for watch in self._watches.values():
            done = self._poll_one(watch, now)
            swapped.update(done.swapped)
            if done.refused:
                refused.append(done.refused)
        if not swapped and not refused:
            return _NOTHING
        return SwapOutcome(swapped, "; ".join(refused))

    def close(self) -> None:
        for watch in self._watches.values():
            if watch.job is not None:
                watch.job.thread.join(JOIN_TIMEOUT_S)

    # -- one registry model ----------------------------------------------------------------------
    def _poll_one(self, watch: _Watch, now: float) -> SwapOutcome:
        if watch.job is not None:
            return _NOTHING if watch.job.thread.is_alive() else self._finish(watch, watch.job)
        if now < watch.next_poll:
            return _NOTHING
        watch.next_poll = now + watch.poll_s
        try:
            signature, version = _look(watch.registry, watch.name)
        except LinesideError as exc:
            signature, version = ("unreadable", str(exc)), ""
        if signature == watch.signature:
            return _NOTHING
        watch.signature = signature
        if not version:
            return self._refuse(watch, "?", str(signature[1]))
        watch.state = f"loading {version} (running {watch.card.version})"
        watch.job = _Job(version, lambda: self._load(watch, version))
        return _NOTHING

    def _load(self, watch: _Watch, version: str) -> dict[int, Inspector] | None:
        """In the background thread: the inspectors to install, or None when the running model stays."""
        folder = version_dir(watch.registry, watch.name, version).resolve()
        card = read_card(folder)
        check_classes(watch.card, card, watch.allow_class_change)
        if folder == watch.model_dir and card == watch.card:
            load_verified(folder)  # the file on disk must still be the model that runs
            return None
        kept = next(iter(watch.previous.values()), None)
        if kept is not None and folder == kept.primary.model_dir.resolve() and card == kept.primary.card:
            load_verified(folder)  # rollback: the previous version is still loaded, and still on disk
            return dict(watch.previous)
        stage_models = {p: m for i in watch.running.values() for p, m in i.stage_models().items()}
        return load_inspectors(watch.recipes, folder, self._cfg, self._placement, stage_models)

    def _finish(self, watch: _Watch, job: _Job) -> SwapOutcome:
        watch.job = None
        if job.error:
            return self._refuse(watch, job.version, job.error)
        if job.result is None:
            watch.state = f"running {watch.card.version}"
            return _NOTHING
        old = watch.card
        watch.previous, watch.running = watch.running, job.result
        new = watch.card
        watch.state = f"running {new.version}"
        log.info(
            "model %s: swapped %s -> %s (sha256 %s...) for recipes %s, between parts",
            watch.name,
            old.version,
            new.version,
            new.sha256[:12],
            ", ".join(str(r.number) for r in watch.recipes),
        )
        return SwapOutcome(swapped=dict(job.result))

    def _refuse(self, watch: _Watch, version: str, reason: str) -> SwapOutcome:
        running = watch.card.version
        message = f"model {watch.name} {version} refused, still judging with {running}: {reason}"
        watch.state = f"refused {version}: {reason}"
        log.error("%s", message)
        return SwapOutcome(refused=message)


_NOTHING = SwapOutcome()


def _look(registry: Path, name: str) -> tuple[Signature, str]:
    """The version the pointer names; a signature that changes with the pointer or that version's files."""
    pointer_file = pointer_path(registry, name)
    pointer = read_pointer(registry, name)
    folder = version_dir(registry, name, pointer.current)
    try:
        pointer_stat = pointer_file.stat()
        stats = [(f.name, f.stat()) for f in sorted(folder.iterdir()) if f.is_file()]
    except OSError as exc:
        raise LinesideError(f"{folder}: cannot read promoted version {pointer.current} ({exc})") from None
    files = tuple((n, st.st_mtime_ns, st.st_size, st.st_ino) for n, st in stats)
    stamp = (pointer_stat.st_mtime_ns, pointer_stat.st_size, pointer_stat.st_ino)
    return (stamp, pointer.current, files), pointer.current
