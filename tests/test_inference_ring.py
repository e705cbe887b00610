"""The inference worker reads frames from the shared-memory ring: judged in place, a reused slot FAULTs."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from edge.errors import ErrorCode
from edge.judge.inspection import Verdict
from edge.runtime.endpoints import Endpoints
from edge.runtime.framering import SLOTS, FrameRing
from edge.runtime.messages import FrameHeader, ImageNote, Result, SlotRef, Trigger
from edge.runtime.transport import Receiver, Sender
from edge.runtime.workers.base import WorkerContext
from edge.runtime.workers.inference import InferenceWorker
from edge.station.config import load_config
from tests.line import make_station


@contextmanager
def inference_worker(root: Path) -> Iterator[tuple[InferenceWorker, Endpoints]]:
    """A real InferenceWorker, set up in this process on a tiny station's model, its sockets bound."""
    config_path, _ = make_station(root, "gd")
    runtime = root / "run"
    runtime.mkdir()
    endpoints = Endpoints.in_runtime_dir(runtime)
    ctx = WorkerContext(load_config(config_path), endpoints, mp.get_context("spawn").Event(), os.getppid())
    worker = InferenceWorker(ctx)
    worker.setup()
    try:
        yield worker, endpoints
    finally:
        worker.teardown()
        worker.zmq.destroy(linger=0)  # and the heartbeat socket its setup opened


@dataclass
class Harness:
    worker: InferenceWorker
    results: Receiver[Result]
    images: Receiver[ImageNote]
    frames: Sender[FrameHeader]
    ring: FrameRing


@contextmanager
def harness(root: Path) -> Iterator[Harness]:
    """A real InferenceWorker with the line's sockets around it and the frame ring capture would write."""
    zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    with inference_worker(root) as (worker, endpoints):
        results = Receiver(zctx, endpoints.results, Result, hwm=100)
        images = Receiver(zctx, endpoints.images, ImageNote, hwm=100)
        frames = Sender(zctx, endpoints.frames, FrameHeader, hwm=10)
        ring = FrameRing(Path(endpoints.frame_dir))
        try:
            yield Harness(worker, results, images, frames, ring)
        finally:
            ring.close()
            for sock in (results, images, frames):
                sock.close()
    zctx.term()


def _trigger(seq: int) -> Trigger:
    return Trigger(
        boot_id=1, seq=seq, trigger_seq=seq, recipe=1, t_trigger=time.monotonic(), wall_trigger=time.time(),
        budget_ms=10_000.0,
    )  # fmt: skip


def _judge(
    worker: InferenceWorker, frames: Sender[FrameHeader], results: Receiver[Result], slot: SlotRef, seq: int
) -> Result:
    header = FrameHeader(
        trigger=_trigger(seq), t_capture=time.monotonic(), origin=f"part {seq}", shape=slot.shape,
        capture_ms=0.0, slot=slot,
    )  # fmt: skip
    assert frames.send(header, wait_ms=2000)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        worker.step()
        got = results.recv(0)
        if got is not None:
            return got[0]
    raise AssertionError(f"no result for part {seq}")


@pytest.mark.slow
def test_ring_frames_are_judged_in_place_and_a_reused_slot_is_a_frame_fault(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        worker, results, images, frames, ring = h.worker, h.results, h.images, h.frames, h.ring
        good = np.asarray(cv2.imread(str(tmp_path / "parts" / "part_000.png")), dtype=np.uint8)
        defective = np.asarray(cv2.imread(str(tmp_path / "parts" / "part_001.png")), dtype=np.uint8)
        assert good.shape == defective.shape == (120, 160, 3)
        first = _judge(worker, frames, results, ring.put(defective), 1)
        assert first.verdict is Verdict.REJECT and first.trigger.seq == 1
        note = images.recv(2000)
        assert note is not None and note[0].seq == 1 and note[1] is not None
        assert np.array_equal(note[1], defective)
        assert _judge(worker, frames, results, ring.put(good), 2).verdict is Verdict.ACCEPT
        second = images.recv(2000)
        assert second is not None and second[0].seq == 2 and second[1] is not None
        assert np.array_equal(second[1], good)
        # Inference fell a whole ring behind: the defective part's slot now holds a good part's frame.
        stale = ring.put(defective)
        for _ in range(SLOTS):
            ring.put(good)
        faulted = _judge(worker, frames, results, stale, 3)
        assert faulted.verdict is Verdict.FAULT and faulted.error_code is ErrorCode.FRAME
        assert "overwritten" in faulted.reasons[0]
        assert images.recv(300) is None  # no image for a part judged on no trustworthy pixels
        assert worker.counts["faults"] == 1 and worker.counts["inspected"] == 2


@pytest.mark.slow
def test_heat_maps_are_encoded_after_the_verdict_and_a_failure_costs_only_the_records_maps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.runtime.workers import inference

    order: list[str] = []

    def failing_encode(stages: object) -> dict[str, str]:
        order.append("encode")
        raise cv2.error("test: PNG encoder broken")

    monkeypatch.setattr(inference, "encode_heatmaps", failing_encode)
    with harness(tmp_path) as h:
        sent = h.worker.results.send

        def send_and_note(result: Result, *args: object, **kwargs: object) -> bool:
            order.append("result")
            return sent(result, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(h.worker.results, "send", send_and_note)
        defective = np.asarray(cv2.imread(str(tmp_path / "parts" / "part_001.png")), dtype=np.uint8)
        assert _judge(h.worker, h.frames, h.results, h.ring.put(defective), 1).verdict is Verdict.REJECT
        assert order == ["result", "encode"]  # the verdict left before any PNG was made
        note = h.images.recv(2000)
        assert note is not None and note[0].heatmaps == {} and note[1] is not None
        assert np.array_equal(note[1], defective)
        assert h.worker.counts["heatmap_errors"] == 1 and h.worker.counts["inspected"] == 1
