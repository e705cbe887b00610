"""The shared-memory frame ring between capture and inference: frames in place, never another part's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.framering import SLOTS, FrameRing, RingReader
from edge.messages import SlotRef
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


def test_a_slot_reused_under_the_reader_is_a_frame_error(tmp_path: Path) -> None:
    ring, reader = FrameRing(tmp_path), RingReader(tmp_path)
    try:
        first = ring.put(_frame(1))
        view = reader.view(first)
        for value in range(2, SLOTS + 2):  # a whole ring later, slot 0 holds another frame
            ring.put(_frame(value))
        assert not reader.still_there(first)
        assert view[5, 5, 0] != 1  # the pixels did change under the view: the check is what saves us
        with pytest.raises(FrameError, match="overwritten"):
            reader.view(first)
    finally:
        reader.close()
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
