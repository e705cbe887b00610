"""The inference worker: judges each frame with the recipe's detector and rules.

Every frame gets exactly one Result: a verdict from the rules, or a FAULT naming what failed. A frame
whose part is already past its budget is not inspected (its part has failed; a verdict now would be
for the wrong part), and is counted.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ErrorCode, LinesideError
from edge.judge.evidence import fault_evidence
from edge.judge.heatmaps import encode_heatmaps
from edge.judge.inspector import Inspection, Inspector, Model, load_model
from edge.modelstore.hotswap import ModelWatcher, current_model_dir
from edge.runtime.framering import RingReader
from edge.runtime.messages import FrameHeader, FrameMeasures, ImageNote, ModelRef, Result
from edge.runtime.placement import pin_thread
from edge.runtime.transport import Receiver, Sender
from edge.runtime.workers.base import Worker
from edge.sources.base import FrameError
from edge.spc.drift import IMAGE_MEASURES, frame_measures

log = logging.getLogger(__name__)

FRAME_POLL_MS = 50


class InferenceWorker(Worker):
    name = "inference"

    def setup(self) -> None:
        ep = self.endpoints
        self.frames: Receiver[FrameHeader] = Receiver(self.zmq, ep.frames, FrameHeader, hwm=2)
        self.results: Sender[Result] = Sender(self.zmq, ep.results, Result, hwm=1000)
        self.images: Sender[ImageNote] = Sender(self.zmq, ep.images, ImageNote, hwm=50)
        # Image drift (the alarms worker): each frame's measures, taken after its result left (PUB: a
        # missing alarms worker costs nothing; the measures cost about 1 ms a frame, docs/spc.md).
        spc = self.config.spc
        wanted = spc.enabled and any(getattr(spc, m).enabled for m in IMAGE_MEASURES)
        self.measures: Sender[FrameMeasures] | None = (
            Sender(self.zmq, ep.measures, FrameMeasures, pub=True, hwm=1000) if wanted else None
        )
        self.ring = RingReader(Path(ep.frame_dir))
        placement = self.ctx.placement
        if placement is not None:
            pin_thread(placement.inference)  # this thread runs the model: on the CPUs kept for it
        self.counts = {"inspected": 0, "faults": 0, "stale_frames": 0}
        self.recipes: dict[int, Inspector] = {}
        self.load_error = ""
        try:
            self.recipes = self._load_recipes()
        except LinesideError as exc:
            # Stay up and answer every frame with a FAULT naming the problem; never READY.
            self.load_error = str(exc)
            self.state = "degraded"
            log.error("model refused: %s", exc)
        # Registry recipes follow their promoted version, swapped in between parts (modelstore/hotswap.py).
        self.watcher = ModelWatcher(self.config.recipes, self.config.detector, self.recipes, placement)
        self.swap_fault = ""
        self.detail = {"load_error": self.load_error, **self.counts, **self.watcher.detail}

    def _load_recipes(self) -> dict[int, Inspector]:
        models: dict[Path, Model] = {}
        loaded: dict[int, Inspector] = {}
        for recipe in self.config.recipes:
            model_dir = current_model_dir(recipe)
            for folder in (model_dir, *(s.model for s in recipe.stages)):
                if folder not in models:
                    self.beat(force=True)
                    models[folder] = model = load_model(folder, self.config.detector)
                    model.warmup()
                    card = model.card
                    log.info("recipe %d (%s): %s model %s %s warmed up", recipe.number, recipe.name,
                             card.task, card.name, card.version)  # fmt: skip
            # A rule naming a class the model does not know, a calibration for another model or lens:
            # refused now, for the whole recipe, not discovered part by part.
            loaded[recipe.number] = Inspector.load(recipe, models[model_dir], models)
        return loaded

    def step(self) -> None:
        outcome = self.watcher.poll()  # between parts, so a part is judged wholly by one model
        self.recipes.update(outcome.swapped)
        self.swap_fault = outcome.refused or self.swap_fault
        self.detail.update(self.watcher.detail)
        got = self.frames.recv(FRAME_POLL_MS)
        if got is None:
            return
        header, image = got
        received = time.monotonic()
        if header.trigger.age_ms(received) > header.trigger.budget_ms:
            self.counts["stale_frames"] += 1
            return
        try:
            self._inspect(header, image, received)
        finally:
            self.ring.release()  # capture may write the slot again

    def _inspect(self, header: FrameHeader, image: np.ndarray | None, received: float) -> None:
        try:
            if header.slot is not None:
                image = self.ring.view(header.slot)  # in place, in the shared frame ring, locked
            result, inspection = self._result(header, image)
            if header.slot is not None and not self.ring.still_there(header.slot):
                raise FrameError(f"frame ring slot {header.slot.slot}: overwritten while inspected")
        except FrameError as exc:  # never a verdict on pixels that may be another part's
            result = Result.fault(header.trigger, ErrorCode.FRAME, str(exc), origin=header.origin)
            image, inspection = None, None
        # Milliseconds from the trigger to the frame's arrival here and to its result leaving: the
        # process hops around them are the rest of the part's time (lineside bench splits them out).
        since = header.trigger.t_trigger
        timings = {**result.timings_ms, "frame_in": (received - since) * 1000.0}
        timings["result_out"] = (time.monotonic() - since) * 1000.0
        self.results.send(result.model_copy(update={"timings_ms": timings}))
        if image is not None and self.measures is not None:
            self._send_measures(header, image)
        if image is not None:
            heatmaps = self._heatmaps(header, inspection)
            evidence = self._evidence(header, result, inspection, image.shape)
            self._keep_image(header, image, heatmaps, evidence)
        self.counts["faults" if result.error_code else "inspected"] += 1
        self.detail = {"load_error": self.load_error, **self.counts, **self.watcher.detail}

    def _send_measures(self, header: FrameHeader, image: np.ndarray) -> None:
        """The frame's brightness, contrast and sharpness to the alarms worker (image drift), only when its
        ring slot proved unchanged; a failure costs the chart one point, never the part anything."""
        assert self.measures is not None
        try:
            measures = frame_measures(image)
        except Exception:  # a picture of the process, never a reason to stop
            self.counts["measure_errors"] = self.counts.get("measure_errors", 0) + 1
            log.exception("part %d: image measures not taken", header.trigger.seq)
            return
        if header.slot is not None and not self.ring.still_there(header.slot):
            return
        trigger = header.trigger
        self.measures.send(FrameMeasures(boot_id=trigger.boot_id, seq=trigger.seq, **measures))

    def _heatmaps(self, header: FrameHeader, inspection: Inspection | None) -> dict[str, str]:
        """The stages' heat maps as PNG for the record, encoded only now that the verdict has left (0.3-0.5
        ms a map: it was on every part's critical path). A failure costs the record its maps, nothing else."""
        if inspection is None:
            return {}
        try:
            return encode_heatmaps(inspection.stages)
        except cv2.error:
            self.counts["heatmap_errors"] = self.counts.get("heatmap_errors", 0) + 1
            log.exception("part %d: heat maps not encoded", header.trigger.seq)
            return {}

    def _evidence(
        self, header: FrameHeader, result: Result, inspection: Inspection | None, shape: tuple[int, ...]
    ) -> dict[str, object] | None:
        """Why the part got its verdict, built only now that the verdict has left: it can never delay or
        change one. A failure here costs the record its evidence, counted and logged, nothing else."""
        try:
            loaded = self.recipes.get(header.trigger.recipe)
            if inspection is None or loaded is None:
                return fault_evidence(int(result.error_code), result.reasons[0])
            return loaded.evidence(inspection, shape)
        except Exception:  # evidence is a picture of the verdict, never a reason to stop
            self.counts["evidence_errors"] = self.counts.get("evidence_errors", 0) + 1
            log.exception("part %d: evidence not built", header.trigger.seq)
            return None

    def _keep_image(
        self,
        header: FrameHeader,
        image: np.ndarray,
        heatmaps: dict[str, str],
        evidence: dict[str, object] | None = None,
    ) -> None:
        """The part's image to the recorder, after its result: a copy, once its slot proved unchanged."""
        if header.slot is not None:
            image = image.copy()  # the slot is capture's again once this part is done
            if not self.ring.still_there(header.slot):
                log.warning("part %d: frame overwritten before the recorder got it", header.trigger.seq)
                return
        trigger = header.trigger
        note = ImageNote(
            boot_id=trigger.boot_id, seq=trigger.seq, shape=header.shape, heatmaps=heatmaps, evidence=evidence
        )
        self.images.send(note, image)

    def _result(self, header: FrameHeader, image: np.ndarray | None) -> tuple[Result, Inspection | None]:
        trigger = header.trigger
        extra: dict[str, object] = {"origin": header.origin}
        if image is None:
            return Result.fault(trigger, ErrorCode.FRAME, "frame message carried no pixels", **extra), None
        if self.load_error:
            return Result.fault(trigger, ErrorCode.MODEL, self.load_error, **extra), None
        loaded = self.recipes.get(trigger.recipe)
        if loaded is None:
            why = f"recipe {trigger.recipe} is not configured"
            return Result.fault(trigger, ErrorCode.RECIPE, why, **extra), None
        card = loaded.primary.card
        extra.update(
            model=ModelRef(name=card.name, version=card.version, sha256=card.sha256),
            recipe_name=loaded.recipe.name,
        )
        if self.swap_fault:  # a refused model swap: shown once, as this part's FAULT (a reject)
            reason, self.swap_fault = self.swap_fault, ""
            return Result.fault(trigger, ErrorCode.MODEL, reason, **extra), None
        inspection = loaded.inspect(image)
        decision = inspection.decision
        result = Result(
            trigger=trigger,
            verdict=decision.verdict,
            reasons=decision.reasons,
            error_code=decision.error,
            top_class_id=decision.top_class_id,
            top_confidence=decision.top_confidence,
            robot_position=decision.robot_position,
            detections=tuple(d.to_json() for d in inspection.detections),
            timings_ms={"capture": header.capture_ms, **inspection.timings_ms},
            near_threshold=inspection.near_threshold,
            stages=tuple(s.to_json() for s in inspection.stages),
            **extra,
        )
        return result, inspection

    def teardown(self) -> None:
        if getattr(self, "watcher", None) is not None:
            self.watcher.close()
        for name in ("frames", "results", "images", "measures", "ring"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close()
