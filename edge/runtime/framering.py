"""Frames from capture to inference through shared memory: a ring of slots in a file of the runtime dir.

A 640x480 frame through a zeromq ipc socket took 2.2 ms p50 from one process to the other (a 100-byte
message 0.25 ms; docs/performance.md): a third of the appliance's own time per part. So capture copies
each frame into the next slot of a memory-mapped ring and sends only the slot's reference; inference
reads the pixels in place. Two guards keep a part from ever being judged on another part's pixels:
- a lock per slot (an open-file-description record lock, `fcntl`): capture writes a slot only under an
  exclusive lock, inference reads one only under a shared lock, both without waiting: a slot still being
  read is not overwritten (capture FAULTs that frame instead) and a slot being written is not read. The
  kernel's lock is also the memory barrier, so this holds on weakly ordered CPUs (ARM: Jetson) too;
- a generation per slot (odd while written, even when whole), checked when inference takes its lock and
  after use: a slot reused before inference got to it (a whole ring behind) is a FrameError, so the
  part FAULTs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.runtime.messages import SlotRef
from edge.sources.base import FrameError

SLOTS = 8  # more than capture can have ahead of inference: the frames socket holds 2 each side
HEADER_BYTES = 64  # generation, height, width, channels (uint64 each), padded to a cache line
RING_PREFIX = "frames-"
RING_SUFFIX = ".ring"
# Open-file-description locks (Linux): held per open file, so they also exclude each other within one
# process (the tests), and go with the file when a process dies. Elsewhere: classic POSIX record locks.
_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)


class FrameRing:
    """Capture's side: owns the ring file (made on the first frame, remade for a larger frame)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._slots = SLOTS
        self._rings = 0
        self._name = ""
        self._map: mmap.mmap | None = None
        self._fd: int | None = None  # kept open for the slot locks
        self._slot_bytes = 0
        self._next = 0
        self._generations = [0] * SLOTS
        self.remove_stale()

    def put(self, image: npt.NDArray[np.uint8]) -> SlotRef:
        """Copy a HxWx3 uint8 frame into the next slot; the reference to send in its place."""
        if image.dtype != np.uint8 or image.ndim != 3:
            raise FrameError(f"frame ring: expected an HxWxC uint8 frame, got {image.shape} {image.dtype}")
        if self._map is None or image.nbytes > self._slot_bytes:
            self._remake(image.nbytes)
        assert self._map is not None
        assert self._fd is not None
        index = self._next
        self._next = (index + 1) % self._slots
        start, length = _slot_range(index, self._slot_bytes)
        if not _lock(self._fd, fcntl.F_WRLCK, start, length):
            raise FrameError(
                f"frame ring {self._name} slot {index}: inference is still reading it ({self._slots} frames"
                " behind); this frame is dropped"
            )
        try:
            header, pixels = _views(self._map, index, self._slot_bytes)
            generation = self._generations[index] + 1
            header[0] = generation  # odd: being written
            header[1:4] = image.shape
            pixels[: image.nbytes] = image.reshape(-1)
            generation += 1
            header[0] = generation  # even: whole
            self._generations[index] = generation
        finally:
            _lock(self._fd, fcntl.F_UNLCK, start, length)
        shape = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
        return SlotRef(ring=self._name, slot=index, generation=generation, shape=shape)

    def close(self) -> None:
        _close(self._map)
        self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._name:
            with contextlib.suppress(FileNotFoundError):
                (self._dir / self._name).unlink()

    def remove_stale(self) -> None:
        """Ring files a crashed capture left: unlinked (a reader that still maps one keeps its pages)."""
        for path in self._dir.glob(f"{RING_PREFIX}*{RING_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _remake(self, frame_bytes: int) -> None:
        self.close()
        self._rings += 1
        self._name = f"{RING_PREFIX}{os.getpid()}-{self._rings}{RING_SUFFIX}"
        self._slot_bytes = -(-frame_bytes // 64) * 64  # whole cache lines, so every slot starts on one
        path = self._dir / self._name
        size = self._slots * (HEADER_BYTES + self._slot_bytes)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                # Reserve the pages now: a full tmpfs then fails here, with a message, instead of with
                # SIGBUS on the first write into a sparse mapping.
                os.posix_fallocate(fd, 0, size)
                self._map = mmap.mmap(fd, size)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        except OSError as exc:
            raise FrameError(
                f"frame ring: cannot make {size / 1e6:.1f} MB in {self._dir} ({exc.strerror})"
            ) from None
        self._next = 0
        self._generations = [0] * self._slots


class RingReader:
    """Inference's side: maps the rings capture names and gives frames in place, checked."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._name = ""
        self._map: mmap.mmap | None = None
        self._fd: int | None = None  # kept open for the slot locks
        self._slot_bytes = 0
        self._held: tuple[int, int] | None = None  # the locked slot's byte range

    def view(self, ref: SlotRef) -> npt.NDArray[np.uint8]:
        """The frame in its slot (no copy), locked against reuse until `release()`; FrameError if the
        slot no longer holds it or is being written."""
        header, pixels = self._slot(ref)
        self.release()
        assert self._fd is not None
        held = _slot_range(ref.slot, self._slot_bytes)
        if not _lock(self._fd, fcntl.F_RDLCK, *held):
            raise FrameError(f"frame ring {ref.ring} slot {ref.slot}: being rewritten, not read")
        self._held = held
        frame = pixels[: int(np.prod(ref.shape))].reshape(ref.shape)
        if int(header[0]) != ref.generation or tuple(int(v) for v in header[1:4]) != ref.shape:
            self.release()
            raise FrameError(f"frame ring {ref.ring} slot {ref.slot}: overwritten before inference read it")
        return frame

    def release(self) -> None:
        """Done with the last view: capture may write its slot again."""
        if self._held is not None and self._fd is not None:
            _lock(self._fd, fcntl.F_UNLCK, *self._held)
        self._held = None

    def still_there(self, ref: SlotRef) -> bool:
        """True if the slot still holds this frame (check after using a view, before trusting it)."""
        header, _ = self._slot(ref)
        return int(header[0]) == ref.generation

    def close(self) -> None:
        self.release()
        _close(self._map)
        self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _slot(self, ref: SlotRef) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
        if ref.ring != self._name or self._map is None:
            self._open(ref.ring)
        assert self._map is not None
        if ref.slot >= len(self._map) // (HEADER_BYTES + self._slot_bytes):
            raise FrameError(f"frame ring {ref.ring}: no slot {ref.slot}")
        return _views(self._map, ref.slot, self._slot_bytes)

    def _open(self, name: str) -> None:
        if os.sep in name or not (name.startswith(RING_PREFIX) and name.endswith(RING_SUFFIX)):
            raise FrameError(f"frame ring: refusing ring name {name!r}")
        self.close()
        try:
            fd = os.open(self._dir / name, os.O_RDONLY)
        except OSError as exc:
            raise FrameError(f"frame ring {name}: cannot open ({exc.strerror})") from None
        try:
            size = os.fstat(fd).st_size
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        except OSError as exc:
            os.close(fd)
            raise FrameError(f"frame ring {name}: cannot map ({exc.strerror})") from None
        self._fd = fd
        self._name = name
        self._slot_bytes = size // SLOTS - HEADER_BYTES


def _close(mapped: mmap.mmap | None) -> None:
    """Unmap now, or (while a frame view still uses it) when the last view is gone."""
    if mapped is not None:
        with contextlib.suppress(BufferError):
            mapped.close()


def _slot_range(index: int, slot_bytes: int) -> tuple[int, int]:
    """(start, length) of a slot's header and pixels in the ring file: the range its lock covers."""
    return index * (HEADER_BYTES + slot_bytes), HEADER_BYTES + slot_bytes


def _lock(fd: int, kind: int, start: int, length: int) -> bool:
    """Take (F_RDLCK, F_WRLCK) or drop (F_UNLCK) a slot's lock without waiting; False if another holds it."""
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for open-file-description locks), padded.
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)
    try:
        fcntl.fcntl(fd, _SETLK, request)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise FrameError(f"frame ring: slot lock failed ({exc.strerror})") from None
    return True


def _views(
    buffer: mmap.mmap, index: int, slot_bytes: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
    offset = index * (HEADER_BYTES + slot_bytes)
    header = np.ndarray((4,), dtype=np.uint64, buffer=buffer, offset=offset)
    pixels = np.ndarray((slot_bytes,), dtype=np.uint8, buffer=buffer, offset=offset + HEADER_BYTES)
    return header, pixels
