"""Thin typed wrappers over ZeroMQ sockets: one message type per socket, a timeout on every receive,
linger 0 on close, and frames carried as raw bytes beside their JSON header.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import numpy as np
import zmq

from edge.errors import LinesideError
from edge.runtime.messages import Message

M = TypeVar("M", bound=Message)


class TransportError(LinesideError):
    """A message that could not be decoded, or a socket that could not be set up."""


def _configure(sock: zmq.Socket[bytes], hwm: int) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)


class Sender(Generic[M]):
    """Sends one message type on a PUSH or PUB socket without ever blocking the caller."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        message_type: type[M],
        *,
        bind: bool = False,
        pub: bool = False,
        hwm: int = 100,
        immediate: bool = False,
    ) -> None:
        self.message_type = message_type
        self.endpoint = endpoint
        self._sock: zmq.Socket[bytes] = ctx.socket(zmq.PUB if pub else zmq.PUSH)
        _configure(self._sock, hwm)
        if immediate:
            # Queue only to connected peers: a send to a dead worker fails now instead of waiting.
            self._sock.setsockopt(zmq.IMMEDIATE, 1)
        try:
            if bind:
                self._sock.bind(endpoint)
            else:
                self._sock.connect(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise TransportError(f"{endpoint}: cannot {'bind' if bind else 'connect'} ({exc})") from None
        self.sent = 0
        self.dropped = 0

    def send(self, message: M, image: np.ndarray | None = None, wait_ms: int = 0) -> bool:
        """Queue `message` (and `image`); False if the queue is full or no peer is connected.

        With `wait_ms`, wait that long at most for room (a peer still connecting, a full queue).
        """
        if wait_ms > 0 and not self._sock.poll(wait_ms, zmq.POLLOUT):
            self.dropped += 1
            return False
        if not isinstance(message, self.message_type):
            raise TypeError(f"{self.endpoint} carries {self.message_type.__name__}, not {type(message)}")
        parts: list[bytes | memoryview] = [message.model_dump_json().encode("utf-8")]
        if image is not None:
            parts.append(_buffer(image))
        try:
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=image is None)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self, flush_ms: int = 0) -> None:
        """Close; with `flush_ms`, wait that long at most for queued messages to leave (e.g. the last
        final verdicts at shutdown) instead of dropping them."""
        self._sock.close(linger=flush_ms)


class Receiver(Generic[M]):
    """Receives one message type on a PULL or SUB socket, always with a timeout."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        message_type: type[M],
        *,
        bind: bool = True,
        sub: bool = False,
        hwm: int = 100,
        conflate: bool = False,
    ) -> None:
        self.message_type = message_type
        self.endpoint = endpoint
        self.socket: zmq.Socket[bytes] = ctx.socket(zmq.SUB if sub else zmq.PULL)
        _configure(self.socket, hwm)
        if conflate:
            # Keep only the newest message (health/state): an old state is worse than none.
            self.socket.setsockopt(zmq.CONFLATE, 1)
        if sub:
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            if bind:
                self.socket.bind(endpoint)
            else:
                self.socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise TransportError(f"{endpoint}: cannot {'bind' if bind else 'connect'} ({exc})") from None

    def recv(self, timeout_ms: int) -> tuple[M, np.ndarray | None] | None:
        """The next message and its image, or None when nothing arrived within `timeout_ms`."""
        if not self.socket.poll(timeout_ms, zmq.POLLIN):
            return None
        return self.recv_ready()

    def recv_ready(self) -> tuple[M, np.ndarray | None]:
        """Receive a message known to be waiting (after a poll)."""
        parts = self.socket.recv_multipart(copy=False)
        return self.decode([p.buffer for p in parts])

    def decode(self, parts: list[memoryview] | list[bytes]) -> tuple[M, np.ndarray | None]:
        return decode_parts(self.message_type, parts, self.endpoint)

    def close(self) -> None:
        self.socket.close(0)


def _buffer(image: np.ndarray) -> memoryview:
    """The image's bytes without a copy (zmq sends from this buffer)."""
    contiguous = np.ascontiguousarray(image)
    return memoryview(contiguous.reshape(-1).view(np.uint8))  # type: ignore[arg-type]


def decode_parts(
    message_type: type[M], parts: list[memoryview] | list[bytes], endpoint: str
) -> tuple[M, np.ndarray | None]:
    """Decode a multipart message: a JSON header, optionally followed by an image's raw bytes."""
    try:
        message = message_type.model_validate_json(bytes(parts[0]))
    except ValueError as exc:
        first_line = str(exc).splitlines()[0]
        raise TransportError(f"{endpoint}: bad {message_type.__name__}: {first_line}") from None
    image = None
    if len(parts) > 1:
        shape = getattr(message, "shape", None)
        if shape is None:
            raise TransportError(f"{endpoint}: image without a shape in {message_type.__name__}")
        image = _image_from_buffer(parts[1], tuple(shape), endpoint)
    return message, image


def _image_from_buffer(buffer: memoryview | bytes, shape: tuple[int, ...], endpoint: str) -> np.ndarray:
    flat = np.frombuffer(buffer, dtype=np.uint8)
    expected = int(np.prod(shape))
    if flat.size != expected:
        raise TransportError(f"{endpoint}: image has {flat.size} bytes, header says {shape} ({expected})")
    return flat.reshape(shape)
