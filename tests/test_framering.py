"""The shared-memory frame ring between capture and inference: frames in place, never another part's."""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.runtime.framering import SLOTS, FrameRing, RingReader, _lock, _slot_range
from edge.runtime.messages import SlotRef
from edge.sources.base import FrameError


def _frame(value: int, h: int = 48, w: int = 64) -> np.ndarray:
    frame = np.full((h, w, 3), value, np.uint8)
    frame[0, 0] = (value, 255 - value, 7)  # not uniform: a reshape mistake would show
    return frame


def test_a_frame_comes_back_whole_and_in_place(tmp_path: Path) -> None:
    ring, reader = FrameRing(tmp_path), RingReader(tmp_path)
    try:
        refs = [ring.put(_frame(v)) for v in (10, 20, 30)]
        for value, ref in zip((10, 20, 30), refs, strict=True):
            view = reader.view(ref)
            assert view.shape == (48, 64, 3) and np.array_equal(view, _frame(value))
            assert reader.still_there(ref)
            assert not view.flags.writeable  # inference cannot scribble on capture's slot
    finally:
        reader.close()
        ring.close()


def test_a_slot_reused_before_the_reader_took_it_is_a_frame_error(tmp_path: Path) -> None:
    ring, reader = FrameRing(tmp_path), RingReader(tmp_path)
    try:
        first = ring.put(_frame(1))
        for value in range(2, SLOTS + 2):  # a whole ring later, slot 0 holds another frame
            ring.put(_frame(value))
        assert not reader.still_there(first)
        with pytest.raises(FrameError, match="overwritten"):
            reader.view(first)
    finally:
        reader.close()
        ring.close()


def test_a_slot_being_read_is_not_overwritten_and_that_frame_is_refused(tmp_path: Path) -> None:
    ring, reader = FrameRing(tmp_path), RingReader(tmp_path)
    try:
        first = ring.put(_frame(1))
        view = reader.view(first)  # held until release()
        for value in range(2, SLOTS + 1):
            ring.put(_frame(value))
        with pytest.raises(FrameError, match=f"slot {first.slot}: inference is still reading it"):
            ring.put(_frame(99))  # the ring came round to the slot inference is on
        assert reader.still_there(first) and np.array_equal(view, _frame(1))
        reader.release()
        ring.put(_frame(100))  # the refused frame's slot was skipped, not retried: slot 1 next
        again = ring.put(_frame(101))
        assert again.slot == 2 and np.array_equal(reader.view(again), _frame(101))
    finally:
        reader.close()
        ring.close()


def test_a_slot_being_written_is_not_read(tmp_path: Path) -> None:
    ring, reader = FrameRing(tmp_path), RingReader(tmp_path)
    try:
        ref = ring.put(_frame(7))
        writer = os.open(tmp_path / ref.ring, os.O_RDWR)  # another open file: as capture's own would be
        try:
            start, length = _slot_range(ref.slot, (tmp_path / ref.ring).stat().st_size // SLOTS - 64)
            assert _lock(writer, fcntl.F_WRLCK, start, length)
            with pytest.raises(FrameError, match="being rewritten"):
                reader.view(ref)
            assert _lock(writer, fcntl.F_UNLCK, start, length)
            assert np.array_equal(reader.view(ref), _frame(7))
        finally:
            os.close(writer)
    finally:
        reader.close()
        ring.close()


def _hold_slot(directory: str, ref_json: str, held: Any, done: Any) -> None:
    reader = RingReader(Path(directory))
    reader.view(SlotRef.model_validate_json(ref_json))
    held.set()
    done.wait(10)
    reader.close()


def test_the_lock_holds_between_processes_and_goes_with_a_reader_that_exits(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ring = FrameRing(tmp_path)
    try:
        ref = ring.put(_frame(3))
        held, done = ctx.Event(), ctx.Event()
        reader = ctx.Process(target=_hold_slot, args=(str(tmp_path), ref.model_dump_json(), held, done))
        reader.start()
        try:
            assert held.wait(30), "the reader process did not take its slot"
            for value in range(1, SLOTS):
                ring.put(_frame(value))
            with pytest.raises(FrameError, match="still reading"):
                ring.put(_frame(9))
        finally:
            done.set()
            reader.join(10)
        assert reader.exitcode == 0
        for value in range(SLOTS):  # the reader is gone, and its lock with it: every slot is capture's
            ring.put(_frame(value))
    finally:
        ring.close()


def test_a_larger_frame_gets_a_new_ring_and_the_reader_follows(tmp_path: Path) -> None:
    ring, reader = FrameRing(tmp_path), RingReader(tmp_path)
    try:
        small = ring.put(_frame(5))
        assert np.array_equal(reader.view(small), _frame(5))
        big = ring.put(_frame(6, h=96, w=128))
        assert big.ring != small.ring and not (tmp_path / small.ring).exists()
        assert np.array_equal(reader.view(big), _frame(6, h=96, w=128))
        with pytest.raises(FrameError):
            reader.view(small)  # its ring is gone
    finally:
        reader.close()
        ring.close()
    assert list(tmp_path.glob("*.ring")) == []


def test_rings_a_dead_capture_left_are_removed_and_bad_names_refused(tmp_path: Path) -> None:
    (tmp_path / "frames-999-1.ring").write_bytes(b"\0" * 1024)
    ring = FrameRing(tmp_path)
    assert not (tmp_path / "frames-999-1.ring").exists()
    ring.close()
    reader = RingReader(tmp_path)
    for name in ("../frames-1-1.ring", "secrets.txt", "frames-1-1.ring"):
        with pytest.raises(FrameError):
            reader.view(SlotRef(ring=name, slot=0, generation=2, shape=(1, 1, 3)))


def test_a_frame_that_is_not_uint8_colour_is_refused(tmp_path: Path) -> None:
    ring = FrameRing(tmp_path)
    try:
        with pytest.raises(FrameError, match="uint8"):
            ring.put(np.zeros((4, 4), np.float32))
    finally:
        ring.close()


def test_a_ring_that_cannot_be_made_is_a_frame_error_naming_the_folder(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "runtime"
    not_a_folder.write_text("a file where the runtime folder should be")
    ring = FrameRing(not_a_folder)
    with pytest.raises(FrameError, match=r"frame ring: cannot make 0\.1 MB in .*runtime \(Not a directory\)"):
        ring.put(_frame(3))
